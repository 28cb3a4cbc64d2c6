"""The Compare page with two finished runs on disk: metrics table, confusion, gallery.

Expected figures are derived from each run's own `predictions.csv` (read here with the csv
module, counted by hand), never copied from what a fixture wrote; one test uses runs the
training engine itself finished.
"""
import csv
import json

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.runs import compare
from core.data.scan import scan
from tests.app.test_explain_page import train_two_runs
from tests.conftest import ROOT
from tests.unit.test_data_scan import NUMBERED, NUMBERED_READING, make_numbered_folder

CLASSES = ["circle", "square", "star"]


def write_run(runs, run_id, preset, split, preds, mtime, classes=CLASSES, display_names=CLASSES):
    """A finished run folder as training leaves it (the files Compare reads); its summary's
    test accuracy is that of its predictions, as training writes it."""
    test_acc = round(sum(t == p for t, p in preds) / len(preds), 3)
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
                       list(zip(truths, [0, 1, 0, 1, 2, 1, 2, 2, 0])), 1_000)
    cbam = write_run(workspace.runs, "r2-cbam", "cbam_cnn", split,
                     list(zip(truths, [0, 0, 0, 1, 1, 1, 2, 2, 1])), 2_000)
    return simple, cbam


def csv_rows(run) -> list[dict]:
    """The run's predictions.csv as written, classes turned into indices (names or numbers)."""
    classes = json.loads((run / "config.json").read_text())["classes"]
    index = lambda v: classes.index(v) if v in classes else int(v)  # noqa: E731
    with (run / "predictions.csv").open(newline="", encoding="utf-8") as fh:
        return [{**row, "true": index(row["true"]), "pred": index(row["pred"]), "confidence": float(row["confidence"])}
                for row in csv.DictReader(fh)]


def counted(run) -> tuple[list[list[int]], float, list[float]]:
    """Confusion counts (true down, predicted across), accuracy and per-class recall, by hand."""
    rows = csv_rows(run)
    n = len(json.loads((run / "config.json").read_text())["classes"])
    matrix = [[sum(r["true"] == i and r["pred"] == j for r in rows) for j in range(n)] for i in range(n)]
    accuracy = sum(matrix[i][i] for i in range(n)) / len(rows)
    recall = [matrix[i][i] / sum(matrix[i]) if sum(matrix[i]) else 0.0 for i in range(n)]
    return matrix, accuracy, recall


def test_core_comparison_figures(two_runs):
    simple, cbam = two_runs
    runs = compare.comparable_runs(simple.parent)
    assert runs == [cbam, simple] and compare.default_selection(runs) == [cbam, simple]
    view = compare.load_view(simple)
    assert len(view.epochs) == 3  # the half-written line is skipped
    matrix, accuracy, recall = counted(simple)
    assert compare.confusion(view).tolist() == matrix
    assert np.allclose(compare.confusion(view, normalise=True).sum(1), 1)
    scores = compare.per_class_scores(view)
    assert scores["recall"].tolist() == pytest.approx(recall)
    pairs = compare.most_confused(view)
    off_diagonal = {(i, j): c for i, row in enumerate(matrix) for j, c in enumerate(row) if i != j and c}
    assert {(t, p): c for t, p, c in zip(pairs["true_index"], pairs["pred_index"], pairs["count"])} == off_diagonal
    wrong = compare.misclassified(view, true=0, pred=1)
    expected = [r["path"] for r in csv_rows(simple) if (r["true"], r["pred"]) == (0, 1)]
    assert sorted(Path(f).relative_to(simple.parent.parent / "splits" / "demo" / "test").as_posix()
                  for f in wrong["file"]) == sorted(expected)
    assert compare.metrics_table([view])["test_acc"].tolist() == [pytest.approx(accuracy, abs=5e-4)]


def open_compare_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = "en"
    at.run()
    at.switch_page("views/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shows_what_the_predictions_say(at, runs):
    """The page's test accuracies, confusion matrices, recall bars and mistake gallery agree
    with each run's predictions.csv."""
    table = at.dataframe[0].value
    assert list(table["Run"]) == [r.name for r in runs]
    assert list(table["Test acc"]) == [pytest.approx(counted(r)[1], abs=5e-4) for r in runs]
    matrices = [f["data"][0]["z"] for f in plotly_figures(at) if f["data"][0]["type"] == "heatmap"]
    assert matrices == [counted(r)[0] for r in runs]
    recall_bars = next(f for f in plotly_figures(at) if f["layout"].get("title", {}).get("text") == "Recall")
    for run, trace in zip(runs, recall_bars["data"]):
        classes = json.loads((run / "config.json").read_text())["classes"]
        by_class = dict(zip(trace["x"], trace["y"]))
        assert [by_class[c] for c in classes] == pytest.approx(counted(run)[2])
    # The gallery starts with all of the first run's mistakes: "predicted (true) · confidence".
    rows = csv_rows(runs[0])
    classes = json.loads((runs[0] / "config.json").read_text())["classes"]
    wrong = [r for r in rows if r["true"] != r["pred"]]
    assert any(f"{len(wrong)} of {len(rows)} test images" in c.value for c in at.caption)
    captions = [m.value for m in at.markdown if "(" in m.value and not m.value.startswith(":")]
    assert sorted(captions) == sorted(f"{classes[r['pred']]} ({classes[r['true']]}) · {r['confidence']:.0%}"
                                      for r in wrong)


def test_compare_page_shows_two_runs(two_runs):
    at = open_compare_page()
    assert at.multiselect[0].value == ["r2-cbam", "r1-simple"]
    shows_what_the_predictions_say(at, [two_runs[1], two_runs[0]])
    headers = [h.value for h in at.header]
    assert "Confusion matrices" in headers and "Misclassified test images" in headers
    # choosing a mistake type filters the gallery to the images of that cell
    pair_box = next(s for s in at.selectbox if s.label == "Mistake")
    predicted, true = pair_box.options[1].removesuffix(")").split(" (true: ")
    pair_box.select_index(1).run()
    assert not at.exception
    rows = csv_rows(two_runs[1])
    cell = [r for r in rows if (CLASSES[r["pred"]], CLASSES[r["true"]]) == (predicted, true)]
    assert cell and predicted != true
    assert any(f"{len(cell)} of {len(rows)} test images" in c.value for c in at.caption)
    markdown = " ".join(m.value for m in at.markdown)
    assert ":green[" in markdown and ":red[" in markdown  # the prediction grid


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_two_runs(tmp_path_factory.mktemp("trained"))


def test_compare_page_shows_what_training_wrote(workspace, trained):
    """Runs finished by the training engine: the summary's test accuracy and every figure on
    the page are those of the predictions the run wrote."""
    split, made = trained
    runs = [shutil.copytree(run, workspace.runs / run.name) for run in made]
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["test_acc"] == pytest.approx(counted(run)[1], abs=5e-4)
    at = open_compare_page()
    shown = [v for v in at.multiselect[0].value]
    assert sorted(shown) == sorted(r.name for r in runs)
    shows_what_the_predictions_say(at, [next(r for r in runs if r.name == rid) for rid in shown])


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
    preds = [list(zip(truths, [0, 1, 1, 1, 2, 0])), list(zip(truths, [0, 0, 1, 1, 2, 2]))]
    return [write_run(workspace.runs, f"r{k}", preset, split, p, 1_000 * k, NUMBERED, names)
            for k, (preset, p) in enumerate(zip(("simple_cnn", "cbam_cnn"), preds), 1)]


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
