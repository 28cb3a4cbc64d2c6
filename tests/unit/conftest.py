"""Fixtures shared by the unit tests of training: a job registry of its own, Ctrl-C given back, and
the thread count held still (`pytestmark = pytest.mark.usefixtures("steady_threads")`)."""
from __future__ import annotations

import signal

import pytest


@pytest.fixture
def registry():
    """A registry of its own (not the app's process-wide one), waited for after the test."""
    from core.training.jobs import JobRegistry

    reg = JobRegistry()
    yield reg
    for run_id in reg.queued() + [reg.active()]:
        if run_id:
            reg.stop(run_id)
    assert reg.wait(timeout=60)


@pytest.fixture
def keep_ctrl_c():
    """`train` installs its own Ctrl-C handler; give pytest its own back."""
    previous = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def steady_threads():
    """Runs compared to 1e-5 (an uninterrupted one with a resumed one, say): the thread governor,
    which follows the other programs' load, would change float sums mid-run, so it holds still."""
    from core.training import engine

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.ThreadGovernor, "update", lambda self: self.threads)
        yield
