"""The Compare page with two finished runs on disk: metrics table, confusion, gallery."""
import json

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.runs import compare
from core.data.scan import scan
from tests.conftest import ROOT
from tests.unit.test_data_scan import NUMBERED, NUMBERED_READING, make_numbered_folder

CLASSES = ["circle", "square", "star"]


def write_run(runs, run_id, preset, split, preds, test_acc, mtime, classes=CLASSES, display_names=CLASSES):
    """A finished run folder as training leaves it (the files Compare reads)."""
    run = runs / run_id
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({
        "model": {"preset": preset}, "data": str(split), "img_size": 32, "classes": classes,
        "display_names": display_names, "mean": [0.5] * 3, "std": [0.25] * 3}))
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"type": "epoch", "epoch": e, "train_loss": 1 / e, "train_acc": 0.5 + e / 10,
                    "val_loss": 1.2 / e, "val_acc": 0.4 + e / 10, "lr": 1e-3, "img_per_s": 900, "seconds": 1}) + "\n"
        for e in (1, 2, 3)) + '{"type": "epo')  # a half-written line, as in a live run
    (run / "summary.json").write_text(json.dumps({
        "status": "finished", "best_val_acc": 0.7, "test_acc": test_acc, "test_top5": 1.0,
        "params": 12345, "flops": 2.5e6, "seconds": 3.0, "img_per_s": 900.0, "message": "", "created": mtime}))
    lines = ["path,true,pred,confidence,loss"]
    for i, (true, pred) in enumerate(preds):
        lines.append(f"{classes[true]}/{classes[true]}_{i}.png,{classes[true]},{classes[pred]},0.{60 + i},0.5")
    (run / "predictions.csv").write_text("\n".join(lines) + "\n")
    return run


@pytest.fixture
def two_runs(workspace):
    split = workspace.splits / "demo"
    truths = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for i, true in enumerate(truths):
        folder = split / "test" / CLASSES[true]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((20, 30, 3), 25 * i, np.uint8)).save(folder / f"{CLASSES[true]}_{i}.png")
    simple = write_run(workspace.runs, "r1-simple", "simple_cnn", split,
                       list(zip(truths, [0, 1, 0, 1, 2, 1, 2, 2, 0])), 0.667, 1_000)
    cbam = write_run(workspace.runs, "r2-cbam", "cbam_cnn", split,
                     list(zip(truths, [0, 0, 0, 1, 1, 1, 2, 2, 1])), 0.889, 2_000)
    return simple, cbam


def test_core_comparison_figures(two_runs):
    simple, cbam = two_runs
    runs = compare.comparable_runs(simple.parent)
    assert runs == [cbam, simple] and compare.default_selection(runs) == [cbam, simple]
    view = compare.load_view(simple)
    assert len(view.epochs) == 3  # the half-written line is skipped
    assert compare.confusion(view).tolist() == [[2, 1, 0], [0, 2, 1], [1, 0, 2]]
    assert np.allclose(compare.confusion(view, normalise=True).sum(1), 1)
    scores = compare.per_class_scores(view)
    assert scores["recall"].round(3).tolist() == [0.667] * 3
    pairs = compare.most_confused(view)
    assert len(pairs) == 3 and set(pairs["count"]) == {1}
    wrong = compare.misclassified(view, true=0, pred=1)
    assert len(wrong) == 1 and wrong.iloc[0]["file"].endswith("circle/circle_1.png")
    assert compare.metrics_table([view])["test_acc"].tolist() == [0.667]


def open_compare_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = "en"
    at.run()
    at.switch_page("views/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_compare_page_shows_two_runs(two_runs):
    at = open_compare_page()
    assert at.multiselect[0].value == ["r2-cbam", "r1-simple"]
    table = at.dataframe[0].value
    assert list(table["Run"]) == ["r2-cbam", "r1-simple"]
    assert list(table["Test acc"]) == [0.889, 0.667]
    headers = [h.value for h in at.header]
    assert "Confusion matrices" in headers and "Misclassified test images" in headers
    # choosing a mistake type filters the gallery
    pair_box = next(s for s in at.selectbox if s.label == "Mistake")
    pair_box.select_index(1).run()
    assert not at.exception
    assert any("1 of 9 test images" in c.value for c in at.caption)
    markdown = " ".join(m.value for m in at.markdown)
    assert ":green[" in markdown and ":red[" in markdown  # the prediction grid


def test_compare_page_in_chinese_with_one_run(workspace):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = "zh"
    at.run()
    at.switch_page("views/compare.py").run()
    assert not at.exception
    assert "至少需要两个" in at.info[0].value


@pytest.fixture
def numbered_runs(workspace, tmp_path):
    """Two runs on classes 1, 10, 2 (index order) named by a cat_to_name.json."""
    names = scan(make_numbered_folder(tmp_path / "flowers", per_class=1)).display_names
    split = workspace.splits / "flowers"
    truths = [0, 0, 1, 1, 2, 2]
    for i, true in enumerate(truths):
        folder = split / "test" / NUMBERED[true]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((20, 30, 3), 25 * i, np.uint8)).save(folder / f"{NUMBERED[true]}_{i}.png")
    preds = [(list(zip(truths, [0, 1, 1, 1, 2, 0])), 0.667), (list(zip(truths, [0, 0, 1, 1, 2, 2])), 1.0)]
    return [write_run(workspace.runs, f"r{k}", preset, split, p, acc, 1_000 * k, NUMBERED, names)
            for k, (preset, (p, acc)) in enumerate(zip(("simple_cnn", "cbam_cnn"), preds), 1)]


def test_per_class_scores_read_in_natural_order_with_display_names(numbered_runs):
    view = compare.load_view(numbered_runs[0])
    assert view.names == ["pink primrose", "globe thistle", "2"]  # index order
    scores = compare.per_class_scores(view)
    assert scores["class"].tolist() == NUMBERED_READING and scores["index"].tolist() == [0, 2, 1]
    assert scores["recall"].tolist() == [0.5, 0.5, 1.0]  # "10" (index 1) is always right
    assert compare.most_confused(view)["true"].tolist() == ["pink primrose", "2"]


def plotly_figures(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def test_compare_page_labels_classes_by_display_name(numbered_runs):
    at = open_compare_page()
    figures = plotly_figures(at)
    matrices = [f for f in figures if f["data"][0]["type"] == "heatmap"]
    assert len(matrices) == 2
    for matrix in matrices:  # index order on the axes, display names on the labels
        assert matrix["data"][0]["x"] == matrix["data"][0]["y"] == ["pink primrose", "globe thistle", "2"]
    bars = [f for f in figures if f["data"][0]["type"] == "bar"]
    assert bars and all(trace["x"] == NUMBERED_READING for f in bars for trace in f["data"])
    next(s for s in at.selectbox if s.label == "Run").set_value("r1 · simple_cnn").run()
    mistakes = next(s for s in at.selectbox if s.label == "Mistake").options
    assert "globe thistle (true: pink primrose)" in mistakes and "pink primrose (true: 2)" in mistakes
