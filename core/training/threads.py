"""Torch's CPU threads follow the cores that other programs leave free, while a run trains.

OpenMP's threads meet at a barrier after every op, so one of them losing its core to another
program stalls the others: on a 2-core machine with one busy process beside it, simple_cnn
trained at 720 img/s with 2 threads and at 1,400 with 1 (bench/bench_load.py is the end-to-end
measure: eight browser tabs watching). Every few seconds the governor reads how much CPU the
rest of the machine used (psutil's CPU times for the machine less this process's own, on
Linux, macOS and Windows alike) and sets a thread for each core other programs leave at least
half free, at least one. Where those times cannot be read the count stays at the cores this
process may use. A change of count mid-run may change float sums in their last bits: CPU runs
stay reproducible to rounding, not bit for bit.
"""
from __future__ import annotations

import os
import time

import psutil
import torch

# Linux counts a guest's virtual CPU time inside user and nice as well: left out, not counted twice.
NOT_BUSY = ("idle", "iowait", "guest", "guest_nice")


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def cpu_seconds() -> tuple[float, float] | None:
    """(busy CPU seconds of the whole machine, CPU seconds of this process); None where the
    system does not tell.

    Programs at a lower priority (niced) count as busy too: with its threads at OpenMP's barriers,
    training leaves them enough gaps that they still take their share (measured with a niced
    Chromium: 0.73 cores taken, and 2 threads trained slower than 1 did beside a normal one)."""
    try:
        machine = psutil.cpu_times()
        own = psutil.Process().cpu_times()
    except (psutil.Error, OSError):
        return None
    times = machine._asdict()
    busy = sum(v for k, v in times.items() if k not in NOT_BUSY)  # steal (taken by the host) is busy
    return busy, own.user + own.system


def threads_for(cores: int, others: float) -> int:
    """Threads for `cores` when other programs keep `others` cores busy: a thread for each core at
    least half free. Measured on 2 cores beside a process busy in bursts for a share d of the time
    (simple_cnn, 2 threads vs 1): d=0.35 1.23-1.49x, d=0.5 1.03-1.19x, d=0.7 0.97x, d=1 0.51x."""
    return max(1, min(cores, int(cores - others + 0.5)))


class ThreadGovernor:
    """Made and updated by the training thread: with OpenMP, the count is set for the calling thread."""

    def __init__(self, every_s: float = 2.0) -> None:
        self.cores, self.every_s = usable_cores(), every_s
        self.threads = self.cores
        torch.set_num_threads(self.threads)
        self._last = (time.monotonic(), cpu_seconds())

    def update(self) -> int:
        """Call often (every batch); looks at the machine every `every_s` seconds. The thread count."""
        now = time.monotonic()
        then, before = self._last
        if now - then < self.every_s or before is None:
            return self.threads
        after = cpu_seconds()
        self._last = (now, after)
        if after is None:
            return self.threads
        others = ((after[0] - before[0]) - (after[1] - before[1])) / (now - then)
        threads = threads_for(self.cores, others)
        if threads != self.threads:
            self.threads = threads
            torch.set_num_threads(threads)
        return threads
