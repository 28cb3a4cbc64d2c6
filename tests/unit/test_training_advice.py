"""After training: a model that answers mostly one class, or scores about what always answering
the largest class would, is named with what to try (core.runs.advice)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from core import i18n
from core.runs import advice, compare

CLASSES = ["coat", "hat", "shoe"]


def fake_run(tmp_path: Path, rows: list[tuple[str, str]], best_val_acc: float, val_counts: dict[str, int],
             balance: str = "none") -> Path:
    """A finished run folder with a synthetic predictions.csv (true, predicted) and a split whose
    split.json gives the validation counts."""
    split = tmp_path / "split"
    split.mkdir()
    (split / "split.json").write_text(json.dumps({
        "classes": CLASSES, "counts": {c: {"train": 10, "val": val_counts[c], "test": 5} for c in CLASSES}}))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": str(split), "classes": CLASSES, "balance": balance,
                                                 "model": {"preset": "simple_cnn"}}))
    (run / "summary.json").write_text(json.dumps({"status": "finished", "best_val_acc": best_val_acc}))
    with open(run / "predictions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "true", "pred", "confidence", "loss"])
        for i, (true, pred) in enumerate(rows):
            writer.writerow([f"{true}/{i}.jpg", true, pred, "0.9", "0.1"])
    return run


def keys(found: list[advice.Advice]) -> list[str]:
    return [a.key for a in found]


def test_a_model_that_answers_one_class_is_warned_with_what_to_try(tmp_path):
    # 20 test images, 6 of them coats (30%), 15 predicted coat (75%)
    rows = ([("coat", "coat")] * 6 + [("hat", "coat")] * 5 + [("shoe", "coat")] * 4
            + [("hat", "hat")] * 3 + [("shoe", "shoe")] * 2)
    run = fake_run(tmp_path, rows, best_val_acc=0.62, val_counts={"coat": 6, "hat": 2, "shoe": 2})
    found = advice.run_advice(compare.load_view(run))
    assert keys(found) == ["training.advice.one_class", "training.advice.near_majority", "training.advice.try_balance"]
    assert found[0].params == {"name": "coat", "predicted": 0.75, "truth": 0.3}
    assert found[1].params == {"acc": 0.62, "rate": 0.6, "name": "coat"}
    text = i18n.t(found[0].key, "en", **found[0].params)
    assert "75%" in text and "30%" in text and "coat" in text
    assert "75%" in i18n.t(found[0].key, "zh", **found[0].params)


def test_a_healthy_model_gets_no_warning(tmp_path):
    rows = [(c, c) for c in CLASSES for _ in range(5)] + [("hat", "coat")] * 2
    run = fake_run(tmp_path, rows, best_val_acc=0.85, val_counts={"coat": 6, "hat": 2, "shoe": 2})
    assert advice.run_advice(compare.load_view(run)) == []


@pytest.mark.parametrize("predicted_share, truth_share, warned", [
    (0.61, 0.39, True), (0.60, 0.2, False), (0.9, 0.4, False),  # the borders: > 60% while < 40%
])
def test_the_one_class_rule_borders(predicted_share, truth_share, warned):
    n = 100
    pred = np.array([0] * round(predicted_share * n) + [1] * (n - round(predicted_share * n)))
    true = np.array([0] * round(truth_share * n) + [1] * (n - round(truth_share * n)))
    found = advice.advice(true, pred, ["a", "b"], best_val_acc=None, val_counts=None)
    assert ("training.advice.one_class" in keys(found)) is warned


def test_near_the_majority_rate_within_two_points(tmp_path):
    counts = [50, 30, 20]  # always answering the first class scores 50%
    for acc, warned in ((0.52, True), (0.525, False), (0.3, True)):
        found = advice.advice(np.array([]), np.array([]), ["a", "b", "c"], acc, counts, balance="weights")
        assert keys(found) == (["training.advice.near_majority", "training.advice.try"] if warned else [])
