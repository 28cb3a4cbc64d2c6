"""What keeps training fast while people watch: torch threads follow the cores other programs leave
free, the live charts redraw less often as more tabs watch, and stay a bounded size."""
import time

import pytest
import torch

from core import charts
from core.training import threads
from core.training.live import WatchingTabs


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


def test_cpu_seconds_reads_this_machine_and_grows_with_work():
    """The real reading (psutil, on every system): both figures grow while this process computes."""
    before = threads.cpu_seconds()
    assert before is not None
    busy, own = before
    assert busy > 0 and 0 < own <= busy
    deadline = time.monotonic() + 60
    while threads.cpu_seconds()[1] < own + 0.5 and time.monotonic() < deadline:
        sum(i * i for i in range(20_000))
    after = threads.cpu_seconds()
    assert after[1] >= own + 0.5 and after[0] > busy
    # The machine's busy time includes this process's (both counted in clock ticks, read at
    # slightly different moments: a margin, not equality).
    assert after[0] - busy >= (after[1] - own) * 0.5


def test_one_tab_redraws_every_2_s_and_each_more_tab_adds_2_s():
    tabs = WatchingTabs()
    assert tabs.every("a", now=0.0) == 2.0
    assert tabs.every("a", now=1.0) == 2.0  # the same tab again is still one tab
    assert tabs.every("b", now=2.0) == 4.0 and tabs.every("a", now=3.0) == 4.0
    for n in range(3, 9):
        every = tabs.every(f"tab{n}", now=4.0)
    assert every == 16.0 and len(tabs) == 8  # eight tabs together redraw as often as one alone
    for n in range(9, 40):
        every = tabs.every(f"tab{n}", now=5.0)
    assert every == 30.0  # at most every 30 s, however many watch


def test_a_tab_not_seen_for_a_minute_stops_counting():
    tabs = WatchingTabs()
    tabs.every("closed", now=0.0)
    tabs.every("open", now=50.0)
    assert tabs.every("open", now=59.0) == 4.0  # "closed" was seen 59 s ago: it may just be slow
    assert tabs.every("open", now=61.0) == 2.0 and len(tabs) == 1
    assert tabs.every("closed", now=62.0) == 4.0  # back again: counted again


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
