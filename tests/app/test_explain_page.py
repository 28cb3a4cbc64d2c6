"""The Explain page: upload a photo and see two runs' heatmaps; bad files keep the page alive.

The runs are real: a simple CNN and a CBAM-CNN trained for one epoch on a tiny demo set by the
training engine, once per module, then copied into each test's workspace.
"""
import io
import shutil

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.data.demo import make_demo
from core.errors import UserError
from core.explain import run_class
from core.data.split import read_split_info, split_dataset
from core.data import split as split_module  # a bare split_images here would be collected as a test
from core.models import build_model
from core.training import checkpoint
from core import runs as run_files
from core.atomic import write_json
from core.training.config import TrainConfig
from core.runs import create_run
from core.training.engine import Trainer
from tests.conftest import ROOT
from tests.unit.test_data_scan import NUMBERED_READING, make_numbered_folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(split folder, [simple run, cbam run]) trained once: 3 shapes x 10 images, 32 px, 1 epoch."""
    return train_two_runs(tmp_path_factory.mktemp("trained"))


def train_two_runs(root):
    """A simple CNN and a CBAM-CNN run finished by the training engine on a tiny demo split."""
    make_demo(root / "demo", classes=3, per_class=10, size=32, seed=0)
    split = root / "split"
    split_dataset(root / "demo", split, val=0.2, test=0.3, mode="copy")
    made = []
    for preset in ("simple_cnn", "cbam_cnn"):
        cfg = TrainConfig(data=str(split), model={"preset": preset}, img_size=32, batch_size=16, epochs=1,
                          device="cpu", augment="none", seed=1)
        run_dir = create_run(cfg, root / "runs")
        Trainer(cfg, run_dir, cache_dir=root / "cache").run()
        made.append(run_dir)
    return split, made


@pytest.fixture
def runs(workspace, trained):
    split, made = trained
    workspace.remember(current_split=str(split))
    return [shutil.copytree(run, workspace.runs / run.name) for run in made]


def png(size=(90, 60), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 128).save(buffer, format="PNG")
    return buffer.getvalue()


def open_page(lang="en") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = lang
    at.run()
    return at.switch_page("views/explain.py").run()


def heatmap_captions(at) -> list[str]:
    return [c for img in at.image for c in img.captions if c.startswith("Heatmap")]


def test_upload_shows_two_heatmaps_and_their_difference(runs):
    at = open_page()
    assert not at.exception, [e.value for e in at.exception]
    at.file_uploader(key="explain_upload").set_value(("photo.png", png(), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="explain_run_a").value == runs[0].name  # a simple CNN next to a CBAM run
    assert at.selectbox(key="explain_run_b").value == runs[1].name
    assert len(heatmap_captions(at)) == 2
    assert [m.label for m in at.metric].count("Prediction") == 2
    assert any("Where they differ" == s.value for s in at.subheader)


def test_picking_a_test_image_marks_right_or_wrong(runs):
    at = open_page()
    at.radio(key="explain_source").set_value("test").run()
    assert not at.exception, [e.value for e in at.exception]
    values = [m.value for m in at.metric if m.label == "Prediction"]
    assert len(values) == 2 and all(v.endswith(("✅", "❌")) for v in values)
    assert any("true class: circle" in c.value for c in at.caption)  # the first test image


@pytest.mark.parametrize("name,content", [
    ("notes.png", b"this is not an image"),
    ("cut.png", png()[:60]),
], ids=["not-an-image", "truncated"])
def test_bad_uploads_get_a_message_and_the_page_keeps_working(runs, name, content):
    at = open_page()
    at.file_uploader(key="explain_upload").set_value((name, content, "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.error and name in at.error[0].value
    at.file_uploader(key="explain_upload").set_value(("ok.png", png((1, 1), "L"), "image/png")).run()
    assert not at.exception and not at.error
    assert len(heatmap_captions(at)) == 2
    assert at.warning  # a 1x1 photo says its prediction means little


def test_a_mismatched_checkpoint_is_reported_and_the_other_run_still_shows(runs):
    for name in ("best.pt", "last.pt"):
        shutil.copy(runs[0] / name, runs[1] / name)  # the simple CNN's weights in the CBAM run
    at = open_page()
    at.file_uploader(key="explain_upload").set_value(("photo.png", png(), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(runs[1].name in e.value for e in at.error)
    assert len(heatmap_captions(at)) == 1


@pytest.fixture
def numbered(workspace, tmp_path):
    """A split of classes 1, 2, 10 named by cat_to_name.json, and two runs on it (untrained
    weights: what is shown does not depend on what was learnt)."""
    split = workspace.splits / "flowers"
    split_dataset(make_numbered_folder(tmp_path / "flowers"), split, val=0.2, test=0.4, mode="copy")
    workspace.remember(current_split=str(split))
    info = read_split_info(split)
    for preset in ("simple_cnn", "cbam_cnn"):
        run_dir = workspace.runs / f"r-{preset}"
        run_dir.mkdir(parents=True)
        write_json(run_dir / "config.json", {
            "model": {"preset": preset}, "data": str(split), "img_size": 32, "classes": info["classes"],
            "display_names": info["display_names"], "mean": [0.5] * 3, "std": [0.25] * 3})
        run_files.update_summary(run_dir, status="finished")
        model = build_model({"preset": preset}, len(info["classes"]), 32)
        checkpoint.save({"model": model.state_dict(), "classes": info["classes"], "img_size": 32, "epoch": 1},
                        run_dir / "best.pt")
    return split


def test_test_images_come_in_natural_order_with_display_names(numbered):
    pictures = split_module.split_images(numbered)
    assert [cls for _, cls, _ in pictures] == ["1", "1", "2", "2", "10", "10"]
    assert list(dict.fromkeys(name for _, _, name in pictures)) == NUMBERED_READING


def test_class_list_and_test_image_picker_show_display_names_in_natural_order(numbered):
    at = open_page()
    at.radio(key="explain_source").set_value("test").run()
    assert not at.exception, [e.value for e in at.exception]
    picker = at.selectbox(key="explain_test_index")
    assert [o.split(" / ")[0] for o in picker.options] == [n for n in NUMBERED_READING for _ in range(2)]
    assert any("true class: pink primrose" in c.value for c in at.caption)
    target = at.selectbox(key="explain_target")
    assert target.options == ["Predicted class"] + NUMBERED_READING
    picker.set_value(4).run()  # a picture of class "10"
    assert any("true class: globe thistle" in c.value for c in at.caption)
    at.selectbox(key="explain_target").set_value("10").run()  # classes are picked by folder name
    assert not at.exception and not at.error
    assert heatmap_captions(at) and all(c.endswith("globe thistle") for c in heatmap_captions(at))


def untrained_run(workspace, run_id, preset, classes):
    """A finished run folder with untrained weights on its own class set."""
    run_dir = workspace.runs / run_id
    run_dir.mkdir(parents=True)
    write_json(run_dir / "config.json", {
        "model": {"preset": preset}, "data": str(workspace.splits / "none"), "img_size": 32, "classes": classes,
        "display_names": classes, "mean": [0.5] * 3, "std": [0.25] * 3})
    run_files.update_summary(run_dir, status="finished")
    model = build_model({"preset": preset}, len(classes), 32)
    checkpoint.save({"model": model.state_dict(), "classes": classes, "img_size": 32, "epoch": 1}, run_dir / "best.pt")
    return run_dir


def test_runs_on_different_classes_explain_a_class_by_name(workspace):
    """Run A knows circle, square, star; run B knows apple, circle. Picking "circle" must make B
    explain its own circle (its index 1, not A's index 0 = apple); picking "star", which B never
    saw, must say so in B's panel while A still explains it."""
    a = untrained_run(workspace, "r1-simple", "simple_cnn", ["circle", "square", "star"])
    b = untrained_run(workspace, "r2-cbam", "cbam_cnn", ["apple", "circle"])
    at = open_page()
    at.file_uploader(key="explain_upload").set_value(("photo.png", png(), "image/png")).run()
    at.selectbox(key="explain_run_a").set_value(a.name).run()
    at.selectbox(key="explain_run_b").set_value(b.name).run()
    target = at.selectbox(key="explain_target")
    assert target.options[1:] == ["apple", "circle", "square", "star"]  # every run's classes, by name

    target.set_value("circle").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    captions = [c for img in at.image for c in img.captions if c.startswith("Heatmap")]
    assert len(captions) == 2 and all(c.endswith("circle") for c in captions), captions

    at.selectbox(key="explain_target").set_value("star").run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c for img in at.image for c in img.captions if c.startswith("Heatmap")]
    assert len(captions) == 1 and captions[0].endswith("star")  # run A still explains
    messages = [e.value for e in at.error]
    assert len(messages) == 1 and "not trained on class" in messages[0] and "star" in messages[0]
    assert "apple, circle" in messages[0]  # what B does know
    # The same sentence in Chinese (AppTest cannot drive this page's translated radio in zh).
    with pytest.raises(UserError) as err:
        run_class({"classes": ["apple", "circle"]}, "star")
    assert "没有学过类别“star”" in err.value.message("zh") and "apple, circle" in err.value.message("zh")
