"""Time on the Compare page: each run's clock is the sum of its epochs' own seconds, so "time to
best" and "time to X% validation accuracy" say which run got there first; resumed and continued
runs count each kept epoch once; a target never reached is None, not a time."""
from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import pandas as pd
import pytest

from core import charts, runs
from core.runs import compare
from core.training.more import add_epochs
from tests.unit.test_training_core import cache, config, split, train  # noqa: F401 - fixtures


def epoch(n: int, val_acc: float | None, seconds: float | None = 1.0, **more) -> dict:
    record = {"type": "epoch", "epoch": n, "train_loss": 1 / n, "val_loss": 1.5 / n, "val_acc": val_acc, **more}
    return record if seconds is None else record | {"seconds": seconds}


def view(epochs: list[dict], run_id: str = "r1") -> compare.RunView:
    return compare.RunView(path=Path(run_id), config={"model": {"preset": "simple_cnn"}},
                           summary={"best_val_acc": max(e["val_acc"] for e in epochs)}, epochs=epochs,
                           predictions=pd.DataFrame())


def test_elapsed_is_the_running_sum_of_the_epochs_seconds_in_epoch_order():
    records = [epoch(2, 0.5, 3.0), epoch(1, 0.4, 2.5), epoch(3, 0.6, 4.25)]  # written out of order
    got = compare.timeline(records)
    assert [e["epoch"] for e in got] == [1, 2, 3]
    assert [e["elapsed"] for e in got] == [2.5, 5.5, 9.75]
    assert got[0]["val_acc"] == 0.4 and "elapsed" not in records[1]  # the records themselves are left alone


def test_an_epoch_written_twice_counts_once_the_later_record_winning():
    got = compare.timeline([epoch(1, 0.4, 2.0), epoch(2, 0.5, 9.0), epoch(2, 0.55, 3.0), epoch(3, 0.6, 1.0)])
    assert [(e["epoch"], e["val_acc"], e["elapsed"]) for e in got] == [(1, 0.4, 2.0), (2, 0.55, 5.0), (3, 0.6, 6.0)]


def test_time_is_unknown_from_the_first_epoch_without_a_recorded_time():
    got = compare.timeline([epoch(1, 0.4, 2.0), epoch(2, 0.5, None), epoch(3, 0.9, 1.0)])
    assert [e["elapsed"] for e in got] == [2.0, None, None]
    table = compare.metrics_table([view([epoch(1, 0.4, 2.0), epoch(2, 0.5, None), epoch(3, 0.9, 1.0)])], 0.85)
    # reached at epoch 3, but when is not known
    assert table["target_epoch"].tolist() == [3] and pd_none(table["time_to_target"][0])


def pd_none(value) -> bool:
    return value is None or pd.isna(value)


def test_time_to_best_is_at_the_first_epoch_with_the_highest_val_acc():
    records = [epoch(1, 0.5, 2.0), epoch(2, 0.75, 3.0), epoch(3, 0.6, 4.0), epoch(4, 0.75, 5.0)]
    best = compare.best_epoch(records)
    assert (best["epoch"], best["elapsed"]) == (2, 5.0)  # the tie at epoch 4 came later: best.pt is epoch 2's


@pytest.mark.parametrize("target, epoch_reached, elapsed", [
    (0.5, 1, 2.0), (0.6, 2, 5.0), (0.7, 3, 9.0), (0.8, 3, 9.0), (0.81, None, None)])
def test_time_to_target_is_at_the_first_epoch_reaching_it(target, epoch_reached, elapsed):
    records = [epoch(1, 0.5, 2.0), epoch(2, 0.7 - 0.1, 3.0), epoch(3, 4 / 5, 4.0), epoch(4, 0.55, 5.0)]
    reached = compare.target_epoch(records, target)
    assert (reached and (reached["epoch"], reached["elapsed"])) == (epoch_reached and (epoch_reached, elapsed))


def test_an_exact_hit_counts_as_reached():
    # 0.8 written as 8 correct of 10, and a target of 80% typed on the page
    assert compare.target_epoch([epoch(1, 8 / 10, 1.0)], 80 / 100)["epoch"] == 1
    assert compare.target_epoch([epoch(1, 0.1 * 8, 1.0)], 0.8)["epoch"] == 1  # 0.8000000000000002 and 0.8


def test_the_table_says_which_run_got_there_first_and_none_for_never():
    fast = view([epoch(1, 0.6, 10.0), epoch(2, 0.82, 10.0), epoch(3, 0.85, 10.0)], "fast")
    slow = view([epoch(1, 0.7, 30.0), epoch(2, 0.81, 30.0), epoch(3, 0.9, 30.0)], "slow")
    never = view([epoch(1, 0.3, 1.0), epoch(2, 0.4, 1.0)], "never")
    table = compare.metrics_table([fast, slow, never], target=0.8).set_index("run")
    assert table.loc["fast", "time_to_target"] == 20.0 and table.loc["slow", "time_to_target"] == 60.0
    assert table.loc["fast", "target_epoch"] == 2 and table.loc["slow", "target_epoch"] == 2
    assert pd_none(table.loc["never", "time_to_target"]) and pd_none(table.loc["never", "target_epoch"])
    assert table["time_to_best"].tolist() == [30.0, 90.0, 2.0]
    assert table["best_epoch"].tolist() == [3, 3, 2]
    # another target, another answer: the slow run reaches 70% first
    table = compare.metrics_table([fast, slow], target=0.7).set_index("run")
    assert table["target_epoch"].tolist() == [2, 1] and table["time_to_target"].tolist() == [20.0, 30.0]


def test_a_run_without_epochs_has_no_times():
    table = compare.metrics_table([compare.RunView(
        path=Path("r"), config={}, summary={}, epochs=[], predictions=None)])
    assert pd_none(table["time_to_best"][0]) and pd_none(table["time_to_target"][0])


@pytest.mark.parametrize("seconds, unit", [(None, "s"), (0.0, "s"), (90.0, "s"), (180.0, "s"), (181.0, "min"),
                                           (3 * 3600.0, "min"), (3 * 3600.0 + 1, "h")])
def test_time_unit_keeps_the_axis_numbers_readable(seconds, unit):
    name, size = compare.time_unit(seconds)
    assert name == unit and size == {"s": 1.0, "min": 60.0, "h": 3600.0}[unit]


def test_curves_against_time_put_each_epoch_at_its_elapsed_time_in_the_unit():
    records = compare.timeline([epoch(1, 0.5, 30.0), epoch(2, 0.6, 90.0), epoch(3, 0.7, None)])
    fig = charts.run_curves({"a": records}, "loss", "Loss", "train", "val", "time (min)", x="elapsed", x_scale=60)
    assert [list(t.x) for t in fig.data] == [[0.5, 2.0], [0.5, 2.0]]  # epoch 3's time unknown: left out
    assert list(fig.data[1].y) == [1.5, 0.75]
    assert fig.layout.xaxis.title.text == "time (min)" and fig.layout.xaxis.dtick is None
    by_epoch = charts.run_curves({"a": records}, "loss", "Loss", "train", "val", "epoch")
    assert list(by_epoch.data[0].x) == [1, 2, 3] and by_epoch.layout.xaxis.dtick == 1


# --- Runs the training engine wrote: stopped mid-epoch and resumed, then given more epochs ----

pytestmark = pytest.mark.usefixtures("steady_threads")  # conftest.py


def epoch_lines(run_dir) -> list[dict]:
    """The epoch records of metrics.jsonl as written, read here with json alone."""
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r.get("type") == "epoch"]


def test_a_resumed_and_continued_run_counts_each_kept_epoch_once(split, cache, tmp_path):
    stop = threading.Event()
    cfg = config(split, epochs=3)
    # stopped in the middle of epoch 2: that partial epoch leaves no record and is trained again
    run_dir, summary = train(cfg, tmp_path, cache, stop=stop,
                             on_progress=lambda p: stop.set() if (p.get("epoch"), p.get("batch")) == (2, 2) else None)
    assert summary["status"] == "stopped" and [r["epoch"] for r in epoch_lines(run_dir)] == [1]
    _, summary = train(cfg, tmp_path, cache, run_dir=run_dir, resume=True)
    assert summary["status"] == "finished"
    _, summary = train(add_epochs(run_dir, 1), tmp_path, cache, run_dir=run_dir, resume=True)
    assert summary["status"] == "finished"

    written = epoch_lines(run_dir)
    assert [r["epoch"] for r in written] == [1, 2, 3, 4]
    sums = list(itertools.accumulate(r["seconds"] for r in written))
    got = compare.timeline(compare.load_view(run_dir).epochs)
    assert [e["elapsed"] for e in got] == pytest.approx(sums)
    # the epochs' own time is less than the run's wall time, which also holds start-up and the cache
    assert sums[-1] < runs.read_summary(run_dir)["seconds"]

    accs = [r["val_acc"] for r in written]
    best = accs.index(max(accs))
    table = compare.metrics_table([compare.load_view(run_dir)], target=min(accs)).iloc[0]
    assert table["best_epoch"] == best + 1 and table["time_to_best"] == pytest.approx(sums[best])
    assert table["target_epoch"] == 1 and table["time_to_target"] == pytest.approx(sums[0])
    never = compare.metrics_table([compare.load_view(run_dir)], target=max(accs) + 0.01).iloc[0]
    assert pd_none(never["time_to_target"]) and pd_none(never["target_epoch"])
