"""The Explain page: upload a photo and see two runs' heatmaps; bad files keep the page alive.

The runs are real: a simple CNN and a CBAM-CNN trained for one epoch on a tiny demo set by the
training engine, once per module, then copied into each test's workspace.
"""
import io
import shutil

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core import runs as run_files
from core.atomic import write_json
from core.data import (
    split as split_module,  # a bare split_images here would be collected as a test
)
from core.data.demo import make_demo
from core.data.split import read_split_info, split_dataset
from core.errors import UserError
from core.explain import run_class
from core.models import build_model
from core.runs import create_run
from core.training import checkpoint
from core.training.config import TrainConfig
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
    assert any(m.value == "**Where they differ**" for m in at.markdown)


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


def open_grid(at) -> AppTest:
    """Unfold the thumbnails (a click on the expander, as the browser sends it)."""
    at.session_state["explain_pick_open"] = True
    return at.run()


def grid(at) -> list:
    """The thumbnails' buttons in reading order (the tree lists the grid's columns one by one)."""
    cells = [b for b in at.button if (b.key or "").startswith("explain_pick_")]
    return sorted(cells, key=lambda b: int(b.key.rsplit("_", 1)[1]))


def grid_files(at) -> list[str]:
    """The file names of the thumbnails shown (each button's tooltip ends with it)."""
    return [b.help.split(" · ")[-1] for b in grid(at)]


def test_class_list_and_test_image_picker_show_display_names_in_natural_order(numbered):
    at = open_page()
    at.radio(key="explain_source").set_value("test").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("true class: pink primrose" in c.value for c in at.caption)  # the first test image at once
    classes = at.selectbox(key="explain_pick_class")
    assert classes.options == ["All classes"] + NUMBERED_READING
    open_grid(at)
    pictures = split_module.split_images(numbered)
    assert grid_files(at) == [p.name for p, _, _ in pictures]  # "1", "1", "2", "2", "10", "10"
    assert [b.help.split(" · ")[0] for b in grid(at)] == [n for n in NUMBERED_READING for _ in range(2)]
    at.selectbox(key="explain_pick_class").set_value("10").run()
    assert grid_files(at) == [p.name for p, cls, _ in pictures if cls == "10"]
    grid(at)[0].click().run()  # a picture of class "10"
    assert not at.exception and at.session_state["explain_pick_open"] is False  # the grid folds away
    assert any("true class: globe thistle" in c.value for c in at.caption)
    at.selectbox(key="explain_target").set_value("10").run()  # classes are picked by folder name
    assert not at.exception and not at.error
    assert heatmap_captions(at) and all(c.endswith("globe thistle") for c in heatmap_captions(at))
    target = at.selectbox(key="explain_target")
    assert target.options == ["Predicted class"] + NUMBERED_READING


def write_predictions(run, split, wrong_every=3):
    """Run `run`'s predictions.csv in the training engine's format: every `wrong_every`-th test
    image predicted as another class. Returns the file names it gets wrong, in listing order."""
    import csv

    pictures = split_module.split_images(split)
    classes = sorted({cls for _, cls, _ in pictures})
    wrong = []
    with open(run / "predictions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "true", "pred", "confidence", "loss"])
        for k, (path, cls, _) in enumerate(pictures):
            pred = classes[(classes.index(cls) + 1) % len(classes)] if k % wrong_every == 0 else cls
            writer.writerow([path.relative_to(split / "test").as_posix(), cls, pred, "0.8", "0.2"])
            if pred != cls:
                wrong.append(path.name)
    return wrong


def test_only_mistakes_shows_exactly_the_test_images_run_a_got_wrong(runs, trained):
    split = trained[0]
    wrong = write_predictions(runs[0], split)
    at = open_page()
    at.radio(key="explain_source").set_value("test").run()
    open_grid(at)
    assert len(grid(at)) == len(split_module.split_images(split))
    at.toggle(key="explain_pick_mistakes").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert wrong and grid_files(at) == wrong
    assert any(c.value == f"{len(wrong)} of {len(split_module.split_images(split))} test images" for c in at.caption)
    grid(at)[-1].click().run()
    assert any(c.value.startswith(wrong[-1]) for c in at.caption)
    # Run B has no predictions: with it on the left, "only mistakes" cannot be asked for
    (runs[1] / "predictions.csv").unlink(missing_ok=True)
    at.selectbox(key="explain_run_a").set_value(runs[1].name).run()
    assert at.toggle(key="explain_pick_mistakes").disabled


def test_five_pages_of_test_images_one_at_a_time(workspace, tmp_path):
    """120 test images: 24 thumbnails a page, a class filter shrinks the pages and the page number."""
    make_demo(tmp_path / "demo", classes=2, per_class=200, size=16, seed=0)
    split = workspace.splits / "many"
    split_dataset(tmp_path / "demo", split, val=0.1, test=0.3, mode="copy")
    workspace.remember(current_split=str(split))
    untrained_run(workspace, "r1-simple", "simple_cnn", ["circle", "square"], data=split)
    untrained_run(workspace, "r2-cbam", "cbam_cnn", ["circle", "square"], data=split)
    pictures = split_module.split_images(split)
    assert len(pictures) == 120
    at = open_page()
    at.radio(key="explain_source").set_value("test").run()
    open_grid(at)
    assert grid_files(at) == [p.name for p, _, _ in pictures[:24]]
    at.number_input(key="explain_pick_page").set_value(5).run()
    assert grid_files(at) == [p.name for p, _, _ in pictures[96:120]]
    at.selectbox(key="explain_pick_class").set_value("square").run()  # 60 images: 3 pages
    squares = [p.name for p, cls, _ in pictures if cls == "square"]
    assert at.number_input(key="explain_pick_page").value == 3 and grid_files(at) == squares[48:]
    assert not at.exception, [e.value for e in at.exception]


def untrained_run(workspace, run_id, preset, classes, data=None):
    """A finished run folder with untrained weights on its own class set."""
    run_dir = workspace.runs / run_id
    run_dir.mkdir(parents=True)
    write_json(run_dir / "config.json", {
        "model": {"preset": preset}, "data": str(data or workspace.splits / "none"), "img_size": 32, "classes": classes,
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


def test_layer_picker_offers_each_map_once_by_a_friendly_name_and_the_course_layer(runs):
    at = open_page()
    at.file_uploader(key="explain_upload").set_value(("photo.png", png(), "image/png")).run()
    layer = at.selectbox(key="explain_layer")
    assert layer.options[:2] == ["Last conv block (default)", "Course layer (each model's last convolution)"]
    named = layer.options[2:]
    assert len(set(named)) == len(named) and not [o for o in named if o.startswith("features")]  # no raw names
    assert "block 2 output, 8x8" in named and "block 1 · conv, 32x32" in named  # 32 px runs
    assert not [o for o in named if "pool" in o]  # each block's pooling is its output: offered once
    captions = heatmap_captions(at)  # by default each model's last block
    assert captions[0].startswith("Heatmap · block 2 output, 8x8") and captions[1].startswith("Heatmap · block 3 output")
    at.selectbox(key="explain_layer").set_value("course").run()  # each model's last convolution
    assert not at.exception and not at.error, [e.value for e in at.error]
    captions = heatmap_captions(at)
    assert captions[0].startswith("Heatmap · block 2 · conv, 16x16")  # simple CNN: 2 blocks
    assert captions[1].startswith("Heatmap · block 3 · conv, 8x8")  # CBAM-CNN: 3 blocks
    at.selectbox(key="explain_layer").set_value("features.0").run()
    assert all(c.startswith("Heatmap · block 1 output, 16x16") for c in heatmap_captions(at))
    assert "`features.0`" in at.selectbox(key="explain_layer").help  # the raw name, for the curious


def test_starting_from_compare_shows_its_runs_and_image_once(runs, trained):
    split = trained[0]
    path, _, name = split_module.split_images(split)[-1]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = "en"
    at.run()
    at.session_state["explain_request"] = {"runs": [runs[1].name, runs[0].name], "image": str(path), "id": 1}
    at.switch_page("views/explain.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [at.selectbox(key=k).value for k in ("explain_run_a", "explain_run_b")] == [runs[1].name, runs[0].name]
    assert at.radio(key="explain_source").value == "test"
    assert any(c.value.startswith(path.name) and f"true class: {name}" in c.value for c in at.caption)
    assert len(heatmap_captions(at)) == 2
    at.selectbox(key="explain_run_a").set_value(runs[0].name).run()  # the request is applied once
    at.selectbox(key="explain_run_b").set_value(runs[1].name).run()
    assert at.selectbox(key="explain_run_a").value == runs[0].name
    # A new request (Compare's next click) is applied again, once.
    at.session_state["explain_request"] = {"runs": [runs[1].name], "image": None, "id": 2}
    at.run()
    assert at.selectbox(key="explain_run_a").value == runs[1].name


def test_the_page_in_chinese_shows_no_english_of_its_own(runs):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = "zh"
    at.run()
    at.session_state["explain_source"] = "test"
    at.switch_page("views/explain.py").run()
    open_grid(at)
    assert not at.exception, [e.value for e in at.exception]
    shown = [w.label for w in (*at.selectbox, *at.radio, *at.toggle, *at.slider, *at.number_input, *at.metric)]
    shown += [o for w in (*at.selectbox, *at.radio) for o in w.options]
    shown += [x.value for x in (*at.caption, *at.markdown, *at.subheader, *at.header, *at.title, *at.info)]
    shown += [c for img in at.image for c in img.captions] + [e.label for e in at.expander]
    text = "\n".join(str(s) for s in shown)
    from core.i18n import table
    english = {entry["en"] for key, entry in table().items()
               if key.startswith(("explain.page.", "explain.layer.")) and "{" not in entry["en"]
               and len(entry["en"]) > 4 and entry["en"] != entry["zh"]}
    import re
    # as whole words: "Layer" inside the method name "Layer-CAM" (a proper noun) does not count
    assert not [e for e in english if re.search(rf"(?<![\w-]){re.escape(e)}(?![\w-])", text)]
    layers = at.selectbox(key="explain_layer").options
    assert layers[:2] == ["最后一个卷积块（默认）", "课程层（各模型的最后一个卷积层）"]
    assert "第 2 块输出，8x8" in layers
    assert not [o for o in layers if re.search(r"[A-Za-z]", re.sub(r"\d+x\d+", "", o))]
    assert at.radio(key="explain_source").options == ["上传图片", "摄像头", "测试图片"]


def test_each_heatmap_has_its_colour_scale_below_it(runs):
    at = open_page()
    at.file_uploader(key="explain_upload").set_value(("photo.png", png(), "image/png")).run()
    captions = [c for img in at.image for c in img.captions]
    heat = [i for i, c in enumerate(captions) if c.startswith("Heatmap")]
    assert len(heat) == 2
    assert all(captions[i + 1] == "0: not used for this class · 1: used the most" for i in heat)
