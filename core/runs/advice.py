"""After training: is the model answering mostly one class? Then say so, and what to try.

A model trained on unbalanced photos with too little training often settles for the largest
class: its accuracy looks respectable (the largest class's share) while it has learned little.
Two signs, read from what a finished run leaves on disk (`predictions.csv`, the summary, the
split's class counts), shown on the Training page and on Compare:

- one class gets more than 60% of the test predictions while under 40% of the test images are
  of that class;
- the best validation accuracy is within 2 points of the majority-class rate (what always
  answering the largest validation class would score).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ONE_CLASS_PREDICTED = 0.6   # more than this share of the predictions go to one class...
ONE_CLASS_TRUTH = 0.4       # ...while fewer than this share of the images are of that class
NEAR_MAJORITY = 0.02        # best val accuracy at most this above the majority-class rate


@dataclass(frozen=True)
class Advice:
    """A translation key and its params (numbers as fractions: the texts format them)."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)


def one_class_share(true: np.ndarray, pred: np.ndarray, n_classes: int) -> tuple[int, float, float] | None:
    """(the most predicted class, its share of the predictions, its share of the truth), or None
    when there are no predictions."""
    if len(pred) == 0:
        return None
    predicted = np.bincount(pred, minlength=n_classes)
    top = int(predicted.argmax())
    return top, float(predicted[top] / len(pred)), float((true == top).sum() / len(true))


def advice(true: np.ndarray, pred: np.ndarray, names: list[str], best_val_acc: float | None,
           val_counts: list[int] | None, balance: str = "none") -> list[Advice]:
    """The warnings for one run (empty when neither sign shows), ending with what to try."""
    found = []
    share = one_class_share(np.asarray(true, int), np.asarray(pred, int), len(names))
    if share is not None:
        top, predicted, truth = share
        if predicted > ONE_CLASS_PREDICTED and truth < ONE_CLASS_TRUTH:
            found.append(Advice("training.advice.one_class", {"name": names[top], "predicted": predicted,
                                                               "truth": truth}))
    if best_val_acc is not None and val_counts and sum(val_counts) > 0:
        majority = max(val_counts) / sum(val_counts)
        if best_val_acc <= majority + NEAR_MAJORITY:
            found.append(Advice("training.advice.near_majority", {
                "acc": float(best_val_acc), "rate": majority, "name": names[int(np.argmax(val_counts))]}))
    if found:
        found.append(Advice("training.advice.try_balance" if balance == "none" else "training.advice.try"))
    return found


def run_advice(view) -> list[Advice]:
    """`advice` for a loaded run (core.runs.compare.RunView): its test predictions, its best
    validation accuracy and its split's validation class counts (when the split is still there)."""
    from core.training.balance import part_counts

    counts = part_counts(Path(view.dataset), "val") if view.dataset else {}
    val_counts = [counts.get(c, 0) for c in view.classes] if counts else None
    p = view.predictions
    return advice(p["true"].to_numpy(int), p["pred"].to_numpy(int), view.names, view.summary.get("best_val_acc"),
                  val_counts, view.config.get("balance", "none"))
