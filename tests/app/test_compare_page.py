"""The Compare page with two finished runs on disk: metrics table, confusion, gallery.

Expected figures are derived from each run's own `predictions.csv` (read here with the csv
module, counted by hand), never copied from what a fixture wrote; one test uses runs the
training engine itself finished.
"""
import csv
import itertools
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
        # confidence rises with i, a mistake's loss falls with it: the two orders differ
        loss = 2 + (len(preds) - i) / 10 if true != pred else 0.1 + i / 100
        lines.append(f"{classes[true]}/{classes[true]}_{i}.png,{classes[true]},{classes[pred]},0.{60 + i},{loss:.2f}")
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
        return [{**row, "true": index(row["true"]), "pred": index(row["pred"]), "confidence": float(row["confidence"]),
                 "loss": float(row["loss"])} for row in csv.DictReader(fh)]


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
    assert list(table["Test acc"]) == [pytest.approx(100 * counted(r)[1], abs=5e-2) for r in runs]  # shown in %
    matrices = [f["data"][0]["z"] for f in plotly_figures(at) if f["data"][0]["type"] == "heatmap"]
    assert matrices == [counted(r)[0] for r in runs]
    recall_bars = next(f for f in plotly_figures(at) if f["layout"].get("title", {}).get("text") == "Recall")
    for run, trace in zip(runs, recall_bars["data"]):
        classes = json.loads((run / "config.json").read_text())["classes"]
        by_class = dict(zip(trace["x"], trace["y"]))
        assert [by_class[c] for c in classes] == pytest.approx(counted(run)[2])
    # The gallery starts with the first run's top losses: "predicted (true) · confidence", red when wrong.
    rows = csv_rows(runs[0])
    classes = json.loads((runs[0] / "config.json").read_text())["classes"]
    by_loss = sorted(rows, key=lambda r: -r["loss"])
    assert gallery_captions(at, "gallery_explain") == [
        f":{'green' if r['true'] == r['pred'] else 'red'}[{classes[r['pred']]} ({classes[r['true']]}) · {r['confidence']:.1%}]"
        for r in by_loss]


def gallery_captions(at, key: str) -> list[str]:
    """The captions of one gallery (its Explain buttons' keys start with `key`), in gallery order:
    each column holds image, caption and button for items k, k + 6, ..."""
    found = {}
    for column in at.columns:
        nodes = list(column.children.values())
        for caption, button in itertools.pairwise(nodes):
            if button.type == "button" and str(button.key or "").startswith(key + "_") and caption.type == "markdown":
                found[int(button.key.rsplit("_", 1)[1])] = caption.value
    return [found[k] for k in sorted(found)]


def test_compare_page_shows_two_runs(two_runs):
    at = open_compare_page()
    assert at.multiselect[0].value == ["r2-cbam", "r1-simple"]
    shows_what_the_predictions_say(at, [two_runs[1], two_runs[0]])
    headers = [h.value for h in at.header]
    assert "Confusion matrices" in headers and "Test images to look at" in headers
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
    # time to best: the seconds training recorded for each epoch up to the best one
    for run, seconds in zip(shown, at.dataframe[0].value["Time to best (s)"]):
        epochs = [json.loads(line) for line in (workspace.runs / run / "metrics.jsonl").read_text().splitlines()]
        epochs = [e for e in epochs if e["type"] == "epoch"]
        best = max(range(len(epochs)), key=lambda i: (epochs[i]["val_acc"], -i))
        assert seconds == pytest.approx(sum(e["seconds"] for e in epochs[:best + 1])) and seconds > 0


def test_compare_page_in_chinese_without_runs(workspace):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = "zh"
    at.run()
    at.switch_page("views/compare.py").run()
    assert not at.exception
    assert "还没有" in at.info[0].value


def test_compare_page_with_one_run_shows_its_figures_and_prediction_grid(two_runs):
    """The course shows the prediction grid for one model: one finished run is enough."""
    simple, cbam = two_runs
    shutil.rmtree(cbam)
    at = open_compare_page()
    assert at.multiselect[0].value == ["r1-simple"]
    shows_what_the_predictions_say(at, [simple])
    classes = json.loads((simple / "config.json").read_text())["classes"]
    expected = [f":{'green' if r['true'] == r['pred'] else 'red'}[{classes[r['pred']]} ({classes[r['true']]}) · "
                f"{r['confidence']:.1%}]" for r in csv_rows(simple)]
    assert len(expected) <= 12 and sorted(gallery_captions(at, "grid_explain")) == sorted(expected)


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
    at.selectbox(key="compare_gallery_run").set_value("r1").run()
    mistakes = next(s for s in at.selectbox if s.label == "Mistake").options
    assert "globe thistle (true: pink primrose)" in mistakes and "pink primrose (true: 2)" in mistakes


def test_top_losses_and_mistakes_orders(two_runs):
    """Issue 14: mistakes could only be seen most-confident-first; top losses (fastai) list every
    test image by its loss, and the mistakes can be sorted both ways."""
    view = compare.load_view(two_runs[0])
    rows = csv_rows(two_runs[0])
    assert compare.top_losses(view)["path"].tolist() == [r["path"] for r in sorted(rows, key=lambda r: -r["loss"])]
    wrong = [r for r in rows if r["true"] != r["pred"]]
    confident = compare.misclassified(view, order="confident")["path"].tolist()
    assert confident == [r["path"] for r in sorted(wrong, key=lambda r: -r["confidence"])]
    assert compare.misclassified(view, order="unsure")["path"].tolist() == confident[::-1]
    assert confident != compare.misclassified(view, order="top_losses")["path"].tolist()  # the data tells them apart

    at = open_compare_page()
    at.selectbox(key="compare_gallery_run").set_value("r1-simple").run()
    at.selectbox(key="compare_order").set_value("unsure").run()
    assert not at.exception
    classes = CLASSES
    by_path = {r["path"]: r for r in rows}
    assert gallery_captions(at, "gallery_explain") == [
        f"{classes[by_path[p]['pred']]} ({classes[by_path[p]['true']]}) · {by_path[p]['confidence']:.1%}"
        for p in confident[::-1]]


def test_confusion_numbers_readable_on_every_cell():
    """Issue 14: dark numbers on mid-to-dark blue cells could not be read."""
    from core import charts

    matrix = [[9, 1, 0], [2, 5, 3], [0, 0, 10]]
    colors = charts.cell_text_colors(matrix)
    assert colors[2][2] == colors[0][0] == charts.LIGHT_TEXT  # dark cells: white numbers
    assert colors[0][1] == colors[1][0] == colors[0][2] == charts.DARK_TEXT  # light cells: dark numbers
    fig = charts.confusion_matrix(matrix, ["a", "b", "c"], "t", "true", "pred", selected=(1, 2))
    assert list(fig.data[1].textfont.color) == [colors[i][j] for i in range(3) for j in range(3)]
    (shape,) = fig.layout.shapes  # the clicked cell stays outlined
    assert (shape.x0, shape.x1, shape.y0, shape.y1) == (1.5, 2.5, 0.5, 1.5)


def test_a_clicked_cell_shows_its_images_right_below_the_matrices(two_runs):
    at = open_compare_page()
    at.session_state["compare_cells"] = {"r2-cbam": (2, 1)}  # what a click on that cell records
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    rows = [r for r in csv_rows(two_runs[1]) if (r["true"], r["pred"]) == (2, 1)]
    assert rows and gallery_captions(at, "cell_explain_r2-cbam") == [
        f":red[square (star) · {r['confidence']:.1%}]" for r in sorted(rows, key=lambda r: -r["confidence"])]
    figure = next(f for f in plotly_figures(at) if f["data"][0]["type"] == "heatmap"
                  and f["layout"]["title"]["text"] == "cbam_cnn")
    assert figure["layout"]["shapes"][0]["x0"] == 0.5 and figure["layout"]["shapes"][0]["y0"] == 1.5
    # the cell's images come before the next section (per-class scores), not a page further down
    order = [node.type + ":" + str(getattr(node, "key", "") or getattr(node, "value", ""))[:40] for node in at.main]
    cell_at = next(i for i, o in enumerate(order) if "cell_r2-cbam" in o or o.startswith("markdown:**cbam_cnn**: 1"))
    per_class = order.index("header:Per-class precision, recall and F1")
    assert cell_at < per_class
    at.button(key="clear_cell_r2-cbam").click().run()
    assert not gallery_captions(at, "cell_explain_r2-cbam")


def test_open_in_explain_hands_over_the_runs_and_the_image(two_runs):
    at = open_compare_page()
    at.button(key="gallery_explain_0").click().run()
    assert not at.exception, [e.value for e in at.exception]
    first = max(csv_rows(two_runs[1]), key=lambda r: r["loss"])
    request = at.session_state["explain_request"]
    assert request["runs"] == ["r2-cbam", "r1-simple"]
    assert Path(request["image"]) == two_runs[1].parent.parent / "splits" / "demo" / "test" / first["path"]
    assert at.title[0].value == "Explain"  # the Explain page opened

    at = open_compare_page()
    at.button(key="compare_explain").click().run()
    assert at.session_state["explain_request"]["runs"] == ["r2-cbam", "r1-simple"]
    assert at.session_state["explain_request"]["image"] is None


def test_the_choice_of_runs_is_kept_across_pages(two_runs, workspace):
    write_run(workspace.runs, "r3-extra", "simple_cnn", two_runs[0].parent.parent / "splits" / "demo",
              [(0, 0), (1, 1)], 3_000)
    at = open_compare_page()
    assert at.multiselect(key="compare_runs").value == ["r3-extra", "r2-cbam"]
    at.multiselect(key="compare_runs").set_value(["r1-simple", "r3-extra"]).run()
    at.switch_page("views/data.py").run()
    at.switch_page("views/compare.py").run()
    assert at.multiselect(key="compare_runs").value == ["r1-simple", "r3-extra"]
    assert list(at.dataframe[0].value["Run"]) == ["r1-simple", "r3-extra"]


def test_runs_are_renamed_and_deleted_from_the_page(two_runs, workspace):
    from core.runs import read_summary

    running = write_run(workspace.runs, "r0-running", "simple_cnn", two_runs[0].parent.parent / "splits" / "demo",
                        [(0, 0)], 500)
    at = open_compare_page()
    # training now (set after the app's first look at the runs, which marks runs left running by
    # a dead process as interrupted)
    summary = json.loads((running / "summary.json").read_text()) | {"status": "running"}
    (running / "summary.json").write_text(json.dumps(summary))
    at.run()
    at.selectbox(key="manage_run").set_value("r1-simple").run()
    at.text_input(key="manage_name_r1-simple").set_value("baseline")
    at.button(key="manage_rename").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert read_summary(two_runs[0])["display_name"] == "baseline" and two_runs[0].is_dir()
    assert list(at.dataframe[0].value["Name"]) == ["cbam_cnn", "baseline"]  # short names, editable
    legend = {t["name"] for f in plotly_figures(at) for t in f["data"] if t.get("name")}
    assert "baseline · val" in legend and not any("r1-simple" in n for n in legend)

    at.selectbox(key="manage_run").set_value("r0-running").run()
    at.button(key="manage_delete").click().run()
    assert any("training" in e.value for e in at.error) and running.is_dir()  # a running run is refused

    at.selectbox(key="manage_run").set_value("r1-simple").run()
    at.button(key="manage_delete").click().run()
    assert any("baseline" in w.value for w in at.warning) and two_runs[0].is_dir()  # asks first
    at.button(key="manage_delete_no").click().run()
    assert two_runs[0].is_dir()
    at.button(key="manage_delete").click().run()
    at.button(key="manage_delete_yes").click().run()
    assert not at.exception and not two_runs[0].exists()
    assert any("baseline" in s.value for s in at.success)
    assert "r1-simple" not in (at.multiselect(key="compare_runs").value if at.multiselect else [])


def test_compare_page_in_chinese_translates_options(two_runs):
    from core import i18n

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = "zh"
    at.run()
    at.switch_page("views/compare.py").run()
    assert not at.exception
    assert at.selectbox(key="compare_order").options == [i18n.t(f"compare.order.{o}", "zh") for o in compare.ORDERS]
    curves = [f for f in plotly_figures(at) if f["data"][0]["type"] == "scatter" and f["data"][0].get("mode") == "lines+markers"]
    assert curves and all(f["layout"]["xaxis"]["title"]["text"] == "轮次" for f in curves)


def test_a_run_that_answers_one_class_is_warned_per_run(two_runs):
    """Issue 14: models that mostly predicted the largest class were shown without a word."""
    from core import i18n

    simple, _ = two_runs
    rows = (simple / "predictions.csv").read_text().splitlines()
    # the first 7 of the 9 test images (3 of them circles) predicted 'circle', the last one already was
    collapsed = [rows[0]] + [",".join(r.split(",")[:2] + ["circle" if i < 7 else r.split(",")[2]] + r.split(",")[3:])
                             for i, r in enumerate(rows[1:])]
    (simple / "predictions.csv").write_text("\n".join(collapsed) + "\n")
    rows = csv_rows(simple)
    predicted = sum(r["pred"] == 0 for r in rows) / len(rows)  # counted from the file: 8 of 9
    truth = sum(r["true"] == 0 for r in rows) / len(rows)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/compare.py").run()
    assert not at.exception
    warned = [w.value for w in at.warning if i18n.t("training.advice.try_balance", "en") in w.value]
    assert len(warned) == 1 and warned[0].startswith("**simple_cnn**")
    assert f"“circle” for {predicted:.0%}" in warned[0] and f"only {truth:.0%}" in warned[0]


def write_epochs(run, epochs: list[tuple[float, float]]) -> None:
    """Replace a run's epoch records: (val_acc, seconds) per epoch, in order."""
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"type": "epoch", "epoch": e, "train_loss": 1 / e, "train_acc": acc, "val_loss": 1.2 / e,
                    "val_acc": acc, "lr": 1e-3, "img_per_s": 900, "seconds": seconds}) + "\n"
        for e, (acc, seconds) in enumerate(epochs, 1)))


def curve_figures(at) -> list[dict]:
    return [f for f in plotly_figures(at) if f["data"] and f["data"][0].get("mode") == "lines+markers"]


def test_time_to_best_and_to_a_target_say_which_run_got_there_first(two_runs, workspace):
    """Issue 13: the table shows the epochs' time to the best and to X% val accuracy (X on the
    page, kept for the session); a run that never got there says so in words."""
    simple, cbam = two_runs
    write_epochs(simple, [(0.5, 4.0), (0.85, 4.0), (0.9, 4.0)])  # fast epochs
    write_epochs(cbam, [(0.82, 10.0), (0.84, 10.0), (0.83, 10.0)])  # slow ones, but 80% at once
    at = open_compare_page()
    table = at.dataframe[0].value.set_index("Run")
    assert at.number_input(key="compare_target").value == 80
    assert table.loc["r1-simple", "Time to best (s)"] == 12.0 and table.loc["r2-cbam", "Time to best (s)"] == 20.0
    assert table.loc["r1-simple", "Time to 80% val (s)"] == "8.0" and table.loc["r2-cbam", "Time to 80% val (s)"] == "10.0"

    at.number_input(key="compare_target").set_value(88).run()
    table = at.dataframe[0].value.set_index("Run")
    assert table.loc["r1-simple", "Time to 88% val (s)"] == "12.0"
    assert table.loc["r2-cbam", "Time to 88% val (s)"] == "not reached"
    at.switch_page("views/data.py").run()
    at.switch_page("views/compare.py").run()
    assert at.number_input(key="compare_target").value == 88  # kept for this session
    assert "Time to 88% val (s)" in at.dataframe[0].value.columns


def test_curves_against_time_put_each_epoch_at_its_summed_seconds(two_runs):
    simple, cbam = two_runs
    write_epochs(simple, [(0.5, 30.0), (0.6, 30.0), (0.7, 30.0)])
    write_epochs(cbam, [(0.5, 100.0), (0.6, 100.0), (0.7, 100.0)])  # 300 s in all: shown in minutes
    at = open_compare_page()
    assert [t["x"] for t in curve_figures(at)[0]["data"]] == [[1, 2, 3]] * 4
    at.segmented_control(key="compare_x").set_value("time").run()
    assert not at.exception
    for figure in curve_figures(at):
        assert figure["layout"]["xaxis"]["title"]["text"] == "training + validation time (min)"
        by_run = {t["name"].split(" · ")[0]: t["x"] for t in figure["data"]}
        assert by_run["cbam_cnn"] == pytest.approx([100 / 60, 200 / 60, 5.0])
        assert by_run["simple_cnn"] == pytest.approx([0.5, 1.0, 1.5])
    at.switch_page("views/data.py").run()
    at.switch_page("views/compare.py").run()
    assert at.segmented_control(key="compare_x").value == "time"  # kept for this session


def test_time_controls_in_chinese(two_runs):
    from core import i18n

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = "zh"
    at.run()
    at.switch_page("views/compare.py").run()
    control = at.segmented_control(key="compare_x")
    assert control.options == ["轮次", "时间"] and control.label == i18n.t("compare.x_axis", "zh")
    columns = list(at.dataframe[0].value.columns)
    assert i18n.t("compare.col.time_to_best", "zh") in columns
    assert i18n.t("compare.col.time_to_target", "zh", target=80) in columns
    assert set(at.dataframe[0].value[i18n.t("compare.col.time_to_target", "zh", target=80)]) == {"未达到"}
    control.set_value("time").run()
    assert all(f["layout"]["xaxis"]["title"]["text"] == "训练 + 验证用时（秒）" for f in curve_figures(at))


def test_a_run_without_epoch_times_is_named_and_drawn_only_where_known(two_runs):
    simple, _ = two_runs
    lines = [json.loads(line) for line in (simple / "metrics.jsonl").read_text().splitlines()[:3]]
    del lines[1]["seconds"]  # epoch 2's time was never written
    (simple / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    at = open_compare_page()
    at.segmented_control(key="compare_x").set_value("time").run()
    assert any("simple_cnn" in c.value and "no recorded time" in c.value for c in at.caption)
    xs = {t["name"]: t["x"] for t in curve_figures(at)[0]["data"]}
    assert xs["simple_cnn · val"] == [1.0] and xs["cbam_cnn · val"] == [1.0, 2.0, 3.0]
