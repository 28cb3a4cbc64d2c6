"""The Training page's charts: a learning-rate axis that fits the rate, train and val told apart
even with one epoch, axis titles clear of the legend."""
from __future__ import annotations

import math

import pytest

from core import charts


def lr_records(rates: list[float]) -> list[dict]:
    return [{"step": i + 1, "lr": lr} for i, lr in enumerate(rates)]


@pytest.mark.parametrize("rates, axis", [
    ([1e-3] * 50, "linear"),                                                      # constant
    ([1e-3 * (1 + math.cos(math.pi * i / 60)) / 2 + 2e-4 for i in range(50)], "linear"),  # under 10x
    ([1e-3] * 20 + [1e-4] * 20 + [1e-5] * 10, "log"),                             # step decays: 100x
])
def test_the_learning_rate_axis_is_log_only_when_the_rate_spans_ten_times(rates, axis):
    fig = charts.lr_curve(lr_records(rates), "lr", "step")
    assert fig.layout.yaxis.type == axis
    assert fig.layout.yaxis.nticks <= 5 and fig.layout.xaxis.title.text == "step"
    if axis == "linear":  # the rate is inside the axis, not on its edge
        low, high = fig.layout.yaxis.range
        assert low < min(rates) <= max(rates) < high and low >= 0


def test_a_one_epoch_run_shows_train_and_val_as_two_different_dots():
    fig = charts.run_curves({"run": [{"epoch": 1, "train_loss": 0.9, "val_loss": 0.9}]}, "loss", "Loss",
                            "train", "val", "epoch")
    train, val = fig.data
    assert train.x == val.x == (1,) and train.y == val.y
    assert train.marker.color != val.marker.color and train.marker.symbol != val.marker.symbol
    assert (train.name, val.name) == ("train", "val")


def test_several_runs_keep_a_colour_each_and_a_marker_per_split():
    records = [{"epoch": e, "train_acc": 0.5, "val_acc": 0.6} for e in (1, 2)]
    fig = charts.run_curves({"a": records, "b": records}, "acc", "Acc", "train", "val", "epoch",
                            colors={"a": "#111111", "b": "#222222"})
    assert [t.line.color for t in fig.data] == ["#111111", "#111111", "#222222", "#222222"]
    assert [t.marker.symbol for t in fig.data] == ["circle", "diamond"] * 2


def test_legends_sit_below_the_axis_titles():
    iters = [{"step": s, "loss": 1 / s} for s in range(1, 20)]
    epochs = [{"epoch": 1, "train_loss": 1, "val_loss": 1}]
    for fig in (charts.iteration_loss(iters, "t", "raw", "smooth", "step"),
                charts.run_curves({"r": epochs}, "loss", "t", "train", "val", "epoch")):
        assert fig.layout.xaxis.title.text in ("step", "epoch")
        assert fig.layout.legend.yanchor == "top" and fig.layout.legend.y <= -0.3
