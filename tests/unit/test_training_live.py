"""What keeps training fast while people watch: torch threads follow the cores other programs leave
free, and the live charts stay a bounded size."""
import pytest
import torch

from core import charts
from core.training import threads


@pytest.mark.parametrize("cores, others, expected", [
    (2, 0.0, 2), (2, 0.4, 2), (2, 0.55, 1), (2, 1.05, 1), (2, 5.0, 1), (8, 2.4, 6), (8, 2.6, 5), (1, 0.0, 1)])
def test_a_thread_for_each_core_at_least_half_free(cores, others, expected):
    assert threads.threads_for(cores, others) == expected


def test_governor_follows_other_programs_every_few_seconds(monkeypatch):
    clock = {"now": 100.0}
    machine = {"busy": 0.0, "own": 0.0}
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(threads, "cpu_seconds", lambda: (machine["busy"], machine["own"]))
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    before = torch.get_num_threads()
    try:
        governor = threads.ThreadGovernor(every_s=2.0)
        assert governor.threads == torch.get_num_threads() == 2

        def seconds_pass(seconds, others_cores, own_cores=2.0):
            clock["now"] += seconds
            machine["busy"] += seconds * (others_cores + own_cores)
            machine["own"] += seconds * own_cores
            return governor.update()

        assert seconds_pass(1.0, 1.0) == 2  # not yet looked: every 2 s
        assert seconds_pass(1.5, 1.0) == 1 == torch.get_num_threads()  # a browser took a core
        assert seconds_pass(2.0, 0.9, own_cores=1.0) == 1
        assert seconds_pass(2.0, 0.4, own_cores=1.0) == 2 == torch.get_num_threads()  # it went quieter
    finally:
        torch.set_num_threads(before)


def test_governor_without_proc_keeps_the_usable_cores(monkeypatch):
    monkeypatch.setattr(threads, "cpu_seconds", lambda: None)
    monkeypatch.setattr(threads.time, "monotonic", iter(range(0, 1000, 10)).__next__)
    before = torch.get_num_threads()
    try:
        governor = threads.ThreadGovernor()
        assert governor.update() == governor.update() == threads.usable_cores()
    finally:
        torch.set_num_threads(before)


def test_cpu_seconds_reads_this_machine():
    sample = threads.cpu_seconds()
    if sample is None:
        pytest.skip("no /proc here")
    busy, own = sample
    assert busy > 0 and 0 < own <= busy


def test_live_charts_are_thinned_to_a_bounded_size_keeping_both_ends():
    short = list(range(100))
    assert charts.thin(short) is short
    for n in (601, 1000, 1201, 10_000, 12_345):
        values = list(range(n))
        thinned = charts.thin(values)
        assert len(thinned) <= charts.LIVE_POINTS + 1
        assert thinned[0] == 0 and thinned[-1] == n - 1 and thinned == sorted(set(thinned))
    records = [{"step": i, "loss": 1.0 / (i + 1), "lr": 1e-3} for i in range(5000)]
    fig = charts.iteration_loss(records, "t", "raw", "smoothed")
    assert all(len(trace.x) <= charts.LIVE_POINTS + 1 for trace in fig.data)
    assert fig.data[1].y[0] == pytest.approx(1.0)  # the average starts at the data
    assert len(charts.lr_curve(records, "lr").data[0].x) <= charts.LIVE_POINTS + 1


@pytest.mark.parametrize("epochs, tick_per_epoch", [(3, True), (charts.EPOCH_TICKS, True), (150, False)])
def test_epoch_curves_label_every_epoch_only_while_few(epochs, tick_per_epoch):
    records = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e} for e in range(1, epochs + 1)]
    fig = charts.run_curves({"run": records}, "loss", "Loss", "train", "val")
    assert [len(t.x) for t in fig.data] == [epochs, epochs]
    # a label per epoch on a long run: Plotly measured 150 labels per chart at every live redraw
    assert (fig.layout.xaxis.dtick == 1) is tick_per_epoch
