"""Training survives what real use does to it, driven from a real browser on the real server.

- The server is SIGKILLed mid-training: a new server on the same workspace lists the run as
  interrupted, its `last.pt` loads, and Resume finishes it with every epoch once.
- Two tabs press Start with the same settings at the same moment: one run, not two.
- Start then Stop, again and again: every run ends `stopped` and the server is left with no
  thread more than it had before (counted from outside, in /proc/<pid>/task).

Training is kept tiny (32 px, a few dozen images) and every wait polls the run folders on
disk with a generous deadline, so the tests hold on a shared, busy 2-core machine.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import pytest
import torch
from playwright.sync_api import expect

from core import i18n
from core import runs
from core.training import checkpoint
from tests.e2e.conftest import make_split
from tests.e2e.streamlit_ui import (
    RECORD_TOASTS, assert_no_exception, click, fill_number, main, open_page, runs_started, select,
    wait_idle,
)

LIVE = ("queued", "running")


def en(key: str, **params) -> str:
    return i18n.t(key, "en", **params)


def wait_for(condition: Callable[[], object], what: str, timeout: float = 180, every: float = 0.1):
    """Poll `condition` until it returns something truthy (which is returned)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def run_dirs(workspace: Path) -> list[Path]:
    """Every run folder on disk (with or without its config yet)."""
    folder = workspace / "runs"
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def status(run_dir: Path) -> str | None:
    return runs.read_summary(run_dir).get("status")


def epoch_numbers(run_dir: Path) -> list[int]:
    return [r["epoch"] for r in runs.read_metrics(run_dir, "epoch")]


def set_form(page, epochs: int) -> None:
    """The same small settings in every tab: simple_cnn, 32 px, batch 16."""
    select(page, en("training.model"), "simple_cnn", rerun=False)
    fill_number(page, en("training.img_size"), 32)
    fill_number(page, en("training.batch_size"), 16)
    fill_number(page, en("training.epochs"), epochs)


def expect_run(page, run_dir: Path, state: str, timeout: float = 300) -> None:
    """The page shows the run under its status (the live view leaves once the run, its test
    evaluation included, is over)."""
    heading = f"{run_dir.name} · {en('training.status.' + state)}"
    expect(main(page).get_by_text(heading, exact=True)).to_be_visible(timeout=timeout * 1000)


def training_page(browser, server):
    """A new tab opened straight on the Training page (a bookmark), once its first run has ended."""
    page = browser.new_page()
    page.add_init_script(RECORD_TOASTS)
    open_page(page, server.url, "training")
    assert_no_exception(page)
    return page


def test_sigkill_mid_training_then_resume_on_a_new_server(start_server, browser, tmp_path):
    epochs = 4
    workspace = tmp_path / "workspace"
    make_split(workspace, classes=3, per_class=20, size=32)
    server = start_server(workspace)
    page = training_page(browser, server)
    set_form(page, epochs)
    click(page, en("training.start"))
    assert_no_exception(page)
    [run_dir] = wait_for(lambda: run_dirs(workspace), "the run folder")

    # At least one epoch's checkpoint written, the run still training: kill the server.
    def mid_training() -> bool:
        summary = runs.read_summary(run_dir)
        return summary.get("status") == "running" and 1 <= summary.get("epochs_done", 0) < epochs
    wait_for(mid_training, "one epoch done while the run still trains", every=0.05)
    server.kill()
    page.close()
    assert status(run_dir) == "running"  # as the killed process left it
    saved = checkpoint.load(run_dir / "last.pt")
    done = saved["epoch"]
    assert 1 <= done < epochs, done
    kept = [r for r in runs.read_metrics(run_dir, "epoch") if r["epoch"] <= done]
    assert [r["epoch"] for r in kept] == list(range(1, done + 1))

    # A new server on the same workspace: the run is interrupted, its last.pt loads.
    server = start_server(workspace)
    page = training_page(browser, server)
    expect_run(page, run_dir, "interrupted", timeout=5)
    assert status(run_dir) == "interrupted"
    from core import load_model

    model, info = load_model(run_dir, "last")
    assert info.checkpoint == "last.pt" and len(info.classes) == 3
    with torch.no_grad():
        assert model(torch.zeros(1, 3, info.img_size, info.img_size)).shape == (1, 3)

    # Resume: it continues from the checkpoint and finishes with every epoch exactly once.
    click(page, en("training.resume"))
    assert_no_exception(page)
    expect_run(page, run_dir, "finished")
    assert_no_exception(page)
    summary = runs.read_summary(run_dir)
    assert summary["status"] == "finished", summary
    assert summary["epochs_done"] == epochs
    records = runs.read_metrics(run_dir, "epoch")
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    assert records[:done] == kept  # the epochs before the kill were not trained again
    steps = [r["step"] for r in runs.read_metrics(run_dir, "iter")]
    assert steps == sorted(set(steps)), steps  # no step of the cut epoch left twice
    assert checkpoint.load(run_dir / "last.pt")["epoch"] == epochs


@pytest.fixture(scope="module")
def split_server(server):
    """The module's shared server (one start less to wait for), its workspace holding a split."""
    make_split(server.workspace, classes=3, per_class=20, size=32)
    return server


def test_two_tabs_pressing_start_together_make_one_run(split_server, browser):
    server, workspace = split_server, split_server.workspace
    earlier = run_dirs(workspace)
    tabs = [training_page(browser, server) for _ in range(2)]
    for tab in tabs:
        set_form(tab, epochs=1)
    buttons = [tab.get_by_role("button", name=en("training.start"), exact=True) for tab in tabs]
    for button in buttons:
        button.wait_for()
    before = [runs_started(tab) for tab in tabs]
    for button in buttons:  # both clicks go out back to back, nothing waited for in between
        button.click(no_wait_after=True)
    for tab, runs_before in zip(tabs, before):
        wait_idle(tab, after=runs_before)
        assert_no_exception(tab)
    found = [p for p in run_dirs(workspace) if p not in earlier]
    assert len(found) == 1, found
    [run_dir] = found
    # Both Starts reached the app and were given that one run, which both tabs now watch (the
    # page's status line says what it does; Start shows no toast).
    for tab in tabs:
        wait_for(lambda: f"run={run_dir.name}" in tab.url, "the tab to watch the run", timeout=30)
    for tab in tabs:
        expect_run(tab, run_dir, "finished")
    assert status(run_dir) == "finished"
    assert epoch_numbers(run_dir) == [1]
    assert [p for p in run_dirs(workspace) if p not in earlier] == [run_dir]


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_start_stop_repeatedly_leaves_no_thread_behind(split_server, browser):
    """Start, wait until it trains, Stop; four times from the page. Every run ends `stopped`
    (none failed, none left queued or running) and no thread is left behind.

    Threads are counted from outside, honestly and for every kind: the entries of
    /proc/<server pid>/task. Python 3.11 gives the kernel no thread names, so the count is of
    the whole process; Streamlit's own threads come and go (a closed tab's session ends a
    little later), so the reference is the count after the first cycle, once its run has
    stopped and the page is idle. After more cycles the count must come back to it: a trainer
    thread (or its OpenMP workers, or a decoding pool) left behind by each cycle would keep it
    above. While a run trains the count is higher, which shows the count does see those
    threads. (In-process, tests/unit/test_training_jobs.py counts the threads by name.)
    """
    cycles = 4
    server, workspace = split_server, split_server.workspace
    pid = server.proc.pid
    page = training_page(browser, server)
    earlier = {p.name for p in run_dirs(workspace)}
    training, stopped, mine = [], [], []
    stop = page.get_by_role("button", name=en("training.stop"), exact=True)
    for cycle in range(cycles):
        set_form(page, epochs=50)
        click(page, en("training.start"))
        assert_no_exception(page)
        # Start made its run folder before its rerun ended (a stopped run is not handed back).
        new = [p for p in run_dirs(workspace) if p.name not in earlier and p not in mine]
        assert len(new) == 1, f"cycle {cycle + 1}: Start made {len(new)} new runs, not one: {new}"
        [run_dir] = new
        mine.append(run_dir)
        wait_for(lambda: status(run_dir) == "running", "the run to train")
        training.append(thread_count(pid))
        click(page, en("training.stop"))
        assert_no_exception(page)
        wait_for(lambda: status(run_dir) == "stopped", "the run to stop", timeout=120)
        wait_for(lambda: stop.count() == 0, "the page to leave the live view", timeout=60)
        wait_idle(page)
        stopped.append(thread_count(pid))
    statuses = {p.name: status(p) for p in mine}
    assert set(statuses.values()) == {"stopped"}, statuses
    assert [p for p in run_dirs(workspace) if p.name not in earlier] == sorted(mine)
    baseline = stopped[0]
    deadline = time.monotonic() + 60
    while (now := thread_count(pid)) > baseline and time.monotonic() < deadline:
        time.sleep(0.5)
    counts = f"while training {training}, after each stop {stopped}, now {now}"
    assert now <= baseline, f"threads left behind: {counts}"
    assert max(training) > now, f"the count does not see the training threads: {counts}"
    assert_no_exception(page)
    assert en("training.status.failed") not in main(page).inner_text()
