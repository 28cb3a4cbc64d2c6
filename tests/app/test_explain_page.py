"""The Explain page: upload a photo and see two runs' heatmaps; bad files keep the page alive."""
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import core
from core.models import build_model
from tests.conftest import ROOT

CLASSES = ["circle", "square", "star"]


def fake_load_model(run_dir):
    """The training area's loader, per its contract: eval-mode CPU model + info from config.json."""
    config = json.loads((run_dir / "config.json").read_text())
    model = build_model(config["model"], len(config["classes"]), config["img_size"])
    model.load_state_dict(torch.load(run_dir / "best.pt", weights_only=True))
    return model.eval(), config


def write_run(runs, run_id, preset, split):
    run = runs / run_id
    run.mkdir(parents=True)
    config = {"model": {"preset": preset}, "data": str(split), "img_size": 32, "classes": CLASSES,
              "display_names": CLASSES, "mean": [0.5] * 3, "std": [0.25] * 3}
    (run / "config.json").write_text(json.dumps(config))
    torch.manual_seed(len(run_id))
    torch.save(build_model(config["model"], 3, 32).state_dict(), run / "best.pt")
    (run / "summary.json").write_text(json.dumps({"status": "finished"}))
    return run


@pytest.fixture
def runs(workspace, monkeypatch):
    monkeypatch.setitem(vars(core), "load_model", fake_load_model)
    split = workspace.splits / "shapes"
    for i, name in enumerate(CLASSES):
        (split / "test" / name).mkdir(parents=True)
        Image.fromarray(np.full((24, 24, 3), 60 * i, np.uint8)).save(split / "test" / name / f"{name}.png")
    workspace.remember(current_split=str(split))
    return [write_run(workspace.runs, "a-simple", "simple_cnn", split),
            write_run(workspace.runs, "b-cbam", "cbam_cnn", split)]


def png(size=(90, 60), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 128).save(buffer, format="PNG")
    return buffer.getvalue()


def open_page(lang="en") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = lang
    at.run()
    return at.switch_page("pages/explain.py").run()


def heatmap_captions(at) -> list[str]:
    return [c for img in at.image for c in img.captions if c.startswith("Heatmap")]


def test_upload_shows_two_heatmaps_and_their_difference(runs):
    at = open_page()
    assert not at.exception, [e.value for e in at.exception]
    at.file_uploader(key="explain_upload").set_value(("photo.png", png(), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="explain_run_a").value == "a-simple"
    assert at.selectbox(key="explain_run_b").value == "b-cbam"
    assert len(heatmap_captions(at)) == 2
    assert [m.label for m in at.metric].count("Prediction") == 2
    assert any("Where they differ" == s.value for s in at.subheader)


def test_picking_a_test_image_marks_right_or_wrong(runs):
    at = open_page()
    at.radio(key="explain_source").set_value("test").run()
    assert not at.exception, [e.value for e in at.exception]
    values = [m.value for m in at.metric if m.label == "Prediction"]
    assert len(values) == 2 and all(v.endswith(("✅", "❌")) for v in values)
    assert any("true class: circle" in c.value for c in at.caption)


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
    torch.save(build_model({"preset": "simple_cnn"}, 3, 32).state_dict(), runs[1] / "best.pt")  # wrong network
    at = open_page()
    at.file_uploader(key="explain_upload").set_value(("photo.png", png(), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("b-cbam" in e.value for e in at.error)
    assert len(heatmap_captions(at)) == 1
