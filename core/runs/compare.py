"""Several runs side by side: curves, a metrics table, confusion matrices, per-class scores,
the most confused pairs and the misclassified test images.

Everything is computed from what a finished run leaves on disk (`config.json`,
`metrics.jsonl`, `summary.json`, `predictions.csv` with one row per test image; read through
`core.runs`), so the
Compare page and any script see the same numbers. Confusion matrices and per-class scores are
recomputed from the predictions with scikit-learn, which also makes them agree by
construction with the misclassified gallery.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from core.data.files import natural_order
from core.errors import UserError
from core.data.labels import class_names
from core.runs.folder import display_name, list_runs, read_config, read_json, read_metrics, read_summary


@dataclass
class RunView:
    """What the Compare page needs from one run folder."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    epochs: list[dict[str, Any]]
    predictions: pd.DataFrame  # path, true, pred (class indices), confidence, loss, file (absolute)
    evaluation: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def model_label(self) -> str:
        from core.models import describe_ref

        return describe_ref(self.config.get("model", {}))

    @property
    def label(self) -> str:
        return f"{self.run_id} · {self.model_label}"

    @property
    def name(self) -> str:
        """The run's shown name: the one it was given (renamed, or its config's), else its model."""
        given = display_name(self.path, self.config, self.summary)
        return given if given != self.run_id else self.model_label

    @property
    def classes(self) -> list[str]:
        return list(self.config.get("classes") or [])

    @property
    def names(self) -> list[str]:
        """What to show for each class index: display names (cat_to_name.json) when known."""
        return class_names(self.config)

    @property
    def dataset(self) -> str:
        return str(self.config.get("data", ""))


def short_names(views: list[RunView]) -> dict[str, str]:
    """A short, unique legend name per run id: its name, with its folder's date and time
    ("my-cbam · 11-30 08:52") only where two compared runs share a name."""
    names = {v.run_id: v.name for v in views}
    clashes = {name for name in names.values() if list(names.values()).count(name) > 1}
    short = {}
    for v in views:
        name = names[v.run_id]
        if name in clashes:
            stamp = v.run_id[4:13] if len(v.run_id) >= 15 and v.run_id[8] == "-" else v.run_id
            name = f"{name} · {_when(stamp)}"
        short[v.run_id] = name
    if len(set(short.values())) < len(short):  # still equal (same minute): the folder id tells them apart
        short = {rid: f"{name} · {rid}" if list(short.values()).count(name) > 1 else name for rid, name in short.items()}
    return short


def _when(stamp: str) -> str:
    """'1130-0852' (from a run id's yyyymmdd-hhmmss) as '11-30 08:52'."""
    digits = stamp.replace("-", "")
    if len(digits) >= 8 and digits.isdigit():
        return f"{digits[0:2]}-{digits[2:4]} {digits[4:6]}:{digits[6:8]}"
    return stamp


def comparable_runs(runs_dir: str | Path) -> list[Path]:
    """Finished runs that have test predictions: the ones a comparison can show, newest first."""
    return [r.path for r in list_runs(runs_dir) if r.status == "finished" and (r.path / "predictions.csv").is_file()]


def default_selection(runs: list[Path]) -> list[Path]:
    """The newest two runs trained on the same dataset (or the newest two, or what there is)."""
    for i, newest in enumerate(runs):
        data = read_config(newest).get("data")
        same = [p for p in runs[i:] if read_config(p).get("data") == data]
        if len(same) >= 2:
            return same[:2]
    return runs[:2]


def default_pair(runs: list[Path]) -> list[Path]:
    """For Explain: a simple CNN run and a CBAM run (newest of each) when both exist, else the newest two."""
    from core.models import describe_ref

    def newest(word: str) -> Path | None:
        return next((p for p in runs if word in describe_ref(read_config(p).get("model", {}))), None)

    simple, cbam = newest("simple"), newest("cbam")
    if simple and cbam:
        return [simple, cbam]
    return runs[:2]


def load_view(run_dir: str | Path) -> RunView:
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if not config:
        raise UserError("compare.run_unreadable", run=run_dir.name)
    classes = list(config.get("classes") or [])
    return RunView(
        path=run_dir, config=config, summary=read_summary(run_dir), epochs=read_metrics(run_dir, "epoch"),
        predictions=read_predictions(run_dir / "predictions.csv", classes, Path(str(config.get("data", "")))),
        evaluation=read_json(run_dir / "eval_test.json"),
    )


def read_predictions(path: Path, classes: list[str], split_dir: Path) -> pd.DataFrame:
    """`predictions.csv` with classes as indices (the file may hold names or numbers) and each
    image's absolute path (`file`), for the gallery."""
    columns = ["path", "true", "pred", "confidence", "loss", "file"]
    if not path.is_file():
        return pd.DataFrame(columns=columns)
    try:
        frame = pd.read_csv(path, dtype={"path": str, "true": str, "pred": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        raise UserError("compare.predictions_unreadable", path=str(path)) from None
    index = {name: i for i, name in enumerate(classes)}

    def to_index(value: str) -> int:
        if value in index:
            return index[value]
        if str(value).lstrip("-").isdigit() and 0 <= int(value) < len(classes):
            return int(value)
        raise UserError("compare.predictions_unreadable", path=str(path))

    frame["true"] = frame["true"].map(to_index).astype(int)
    frame["pred"] = frame["pred"].map(to_index).astype(int)
    frame["file"] = [_image_file(p, split_dir) for p in frame["path"]]
    return frame


def _image_file(path: str, split_dir: Path) -> str:
    p = Path(path)
    if p.is_absolute():
        return str(p)
    for base in (split_dir / "test", split_dir):
        if (base / p).exists():
            return str(base / p)
    return str(split_dir / "test" / p)


# --- Time: which run got there first ---------------------------------------------------------
# A run's clock is the sum of its epochs' own "seconds" (training plus validation of that epoch,
# as the engine records it): start-up, the decode cache, checkpoint writes and the test
# evaluation are left out, so two runs are compared on the time their epochs took. A resumed run
# keeps only its completed epochs' records (runs.truncate_metrics), so the sum covers exactly the
# epochs its curves show; the time of an epoch cut off by a stop is not in it.

DEFAULT_TARGET = 0.8  # "time to X% validation accuracy": X as a fraction
TIME_UNITS = (("s", 1.0, 180.0), ("min", 60.0, 3 * 3600.0), ("h", 3600.0, math.inf))  # unit, seconds, up to


def timeline(epochs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The epoch records in epoch order, one per epoch (a later record of the same epoch wins),
    each with `elapsed`: the seconds of this epoch and every one before it, None from the first
    epoch whose time was not recorded on."""
    by_epoch = {e["epoch"]: e for e in epochs if isinstance(e.get("epoch"), int)}
    total: float | None = 0.0
    out = []
    for number in sorted(by_epoch):
        record = by_epoch[number]
        seconds = record.get("seconds")
        total = total + seconds if total is not None and isinstance(seconds, (int, float)) else None
        out.append(record | {"elapsed": total})
    return out


def _scored(epochs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in timeline(epochs) if isinstance(e.get("val_acc"), (int, float))]


def best_epoch(epochs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first epoch with the highest validation accuracy (the one best.pt holds), with `elapsed`."""
    scored = _scored(epochs)
    return max(scored, key=lambda e: e["val_acc"]) if scored else None  # max keeps the first of equals


def target_epoch(epochs: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The first epoch whose validation accuracy is at least `target` (a fraction), None if none is.
    (A tolerance of 1e-9: 80 / 100 and 4 / 5 are the same float, 0.1 * 8 is not quite.)"""
    return next((e for e in _scored(epochs) if e["val_acc"] >= target - 1e-9), None)


def time_unit(seconds: float | None) -> tuple[str, float]:
    """The unit ("s", "min" or "h") and its length in seconds to show times up to `seconds` in."""
    return next((name, size) for name, size, limit in TIME_UNITS if (seconds or 0.0) <= limit)


def metrics_table(views: list[RunView], target: float = DEFAULT_TARGET) -> pd.DataFrame:
    """One row per run: the figures a learner compares (raw numbers; the page formats them).
    `time_to_best` and `time_to_target` (validation accuracy `target` or more) are seconds of
    the run's epochs (see `timeline`); None when never reached or not recorded."""
    rows = []
    for v in views:
        s = v.summary
        best, reached = best_epoch(v.epochs), target_epoch(v.epochs, target)
        rows.append({
            "run": v.run_id, "model": v.model_label, "params": s.get("params"), "flops": s.get("flops"),
            "best_val_acc": s.get("best_val_acc"), "test_acc": s.get("test_acc"), "test_top5": s.get("test_top5"),
            "epochs": len(v.epochs), "seconds": s.get("seconds"),
            "time_to_best": best and best["elapsed"], "best_epoch": best and best["epoch"],
            "time_to_target": reached and reached["elapsed"], "target_epoch": reached and reached["epoch"],
            "img_per_s": s.get("img_per_s"),
        })
    return pd.DataFrame(rows)


def confusion(view: RunView, normalise: bool = False) -> np.ndarray:
    """Counts (true class down, predicted across), or each row divided by its total."""
    n = len(view.classes)
    p = view.predictions
    matrix = confusion_matrix(p["true"], p["pred"], labels=list(range(n))) if len(p) else np.zeros((n, n), int)
    if normalise:
        totals = matrix.sum(1, keepdims=True)
        return np.divide(matrix, totals, out=np.zeros(matrix.shape, float), where=totals > 0)
    return matrix


def per_class_scores(view: RunView) -> pd.DataFrame:
    """One row per class, in the order people read them ("2" before "10"); `index` is the class index."""
    n = len(view.classes)
    p = view.predictions
    if len(p):
        precision, recall, f1, support = precision_recall_fscore_support(
            p["true"], p["pred"], labels=list(range(n)), zero_division=0)
    else:
        precision = recall = f1 = np.zeros(n)
        support = np.zeros(n, int)
    frame = pd.DataFrame({"class": view.names, "index": range(n), "precision": precision, "recall": recall,
                          "f1": f1, "support": support})
    return frame.iloc[natural_order(view.classes)].reset_index(drop=True)


def most_confused(view: RunView, top: int = 10) -> pd.DataFrame:
    """The off-diagonal cells with the most images: which class is taken for which."""
    matrix = confusion(view)
    totals = matrix.sum(1)
    rows = [(i, j, int(matrix[i, j]), matrix[i, j] / totals[i]) for i in range(len(matrix))
            for j in range(len(matrix)) if i != j and matrix[i, j] > 0]
    rows.sort(key=lambda r: (-r[2], -r[3]))
    return pd.DataFrame(
        [{"true": view.names[i], "pred": view.names[j], "count": c, "share": s, "true_index": i, "pred_index": j}
         for i, j, c, s in rows[:top]],
        columns=["true", "pred", "count", "share", "true_index", "pred_index"])


ORDERS = ("top_losses", "confident", "unsure")  # how the images to look at are sorted


def misclassified(view: RunView, true: int | None = None, pred: int | None = None,
                  order: str = "confident") -> pd.DataFrame:
    """Wrong test predictions, optionally of one (true, pred) cell, in `order` (see `ranked`)."""
    p = view.predictions
    wrong = p[p["true"] != p["pred"]]
    if true is not None:
        wrong = wrong[wrong["true"] == true]
    if pred is not None:
        wrong = wrong[wrong["pred"] == pred]
    return ranked(wrong, order)


def top_losses(view: RunView) -> pd.DataFrame:
    """Every test prediction, highest loss first (fastai's "top losses"): confident mistakes lead,
    then unsure ones, then right answers given with little confidence."""
    return ranked(view.predictions, "top_losses")


def ranked(frame: pd.DataFrame, order: str) -> pd.DataFrame:
    """`frame` sorted: "top_losses" by loss (highest first; the loss of the true class, -log p),
    "confident" by the predicted class's confidence (highest first), "unsure" lowest first.
    Ties keep the file order, so the order is the same on every run of the page."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}")
    if order == "top_losses":
        return frame.sort_values(["loss", "confidence"], ascending=[False, False], kind="stable")
    return frame.sort_values("confidence", ascending=order == "unsure", kind="stable")


def prediction_sample(view: RunView, count: int = 16, seed: int = 0) -> pd.DataFrame:
    """A fixed random batch of test predictions, as the course's prediction grid shows them."""
    p = view.predictions
    return p.sample(n=min(count, len(p)), random_state=seed) if len(p) else p
