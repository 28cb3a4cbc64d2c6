"""Training in several processes: the same run launched under torchrun (DistributedDataParallel).

`Launcher` takes the place of the Trainer when a config's `nproc` is above 1 (the CLI's
`--nproc`, the Training page's "Processes / GPUs", the job registry): it starts

    python -m torch.distributed.run --nproc_per_node N --master_port <a free port> \\
        -m core.training.ddp_worker --control <a temporary folder>

in a session of its own, and follows it as the Trainer's callers expect: the records rank 0
appends to `metrics.jsonl` and the progress it writes are passed on as they come, Stop asks the
ranks to stop at the next batch (and ends every process still there after STOP_GRACE_S), and a
rank that fails makes the run `failed` with that rank's error. The ranks themselves are
core.training.ddp_worker. torchrun, not this module, starts and watches them: a rank that dies
makes torchrun end the others, and a collective that waits too long times out.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from core import runs
from core.atomic import read_json, write_json
from core.errors import UserError
from core.training import checkpoint
from core.training.config import TrainConfig
from core.training.engine import OnHistory, OnProgress
from core.training.loops import OnRecord

ROOT = Path(__file__).resolve().parents[2]  # the folder `core` is in: the ranks import it from there
STOP_GRACE_S = 30.0  # after Stop, the ranks' time to reach the next batch and write the summary
POLL_S = 0.2


def max_processes() -> int:
    """How many processes `nproc` can usefully be here: one per GPU on CUDA, else one per core."""
    import torch

    from core.training.threads import usable_cores

    return torch.cuda.device_count() if torch.cuda.is_available() else usable_cores()


def check(cfg: TrainConfig) -> None:
    """A UserError when this machine cannot train `cfg` in `cfg.nproc` processes."""
    import torch
    import torch.distributed as dist

    from core import device as devices

    if not dist.is_available():
        raise UserError("training.ddp.unavailable")
    device = devices.resolve(cfg.device)
    if device.type == "mps":
        raise UserError("training.ddp.no_mps")
    if device.type == "cuda" and cfg.nproc > torch.cuda.device_count():
        raise UserError("training.ddp.too_many_gpus", nproc=cfg.nproc, gpus=torch.cuda.device_count())


def free_port() -> int:
    """A port nothing listens on now (chosen once per launch, as Ultralytics does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(control: Path, nproc: int, port: int) -> list[str]:
    """The torchrun command line of a launch."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(port), "--max_restarts", "0",
            "-m", "core.training.ddp_worker", "--control", str(control)]


class _Tail:
    """The records appended to a run's `metrics.jsonl` since the last look (whole lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.is_file() else 0

    def records(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                self.offset = min(self.offset, f.tell())  # rewritten shorter: carry on from its end
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1
        self.offset += end
        out = []
        for line in data[:end].splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


class _Family:
    """torchrun and the ranks it started. The ranks run in sessions of their own (torchrun puts
    them there), so a signal to torchrun's process group would miss them: they are looked up
    while the launch runs and ended one by one."""

    def __init__(self, pid: int) -> None:
        self.members: dict[int, psutil.Process] = {}
        try:
            self.root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            self.root = None
        self.look()

    def look(self) -> None:
        if self.root is None:
            return
        try:
            for p in [self.root, *self.root.children(recursive=True)]:
                self.members.setdefault(p.pid, p)
        except psutil.NoSuchProcess:
            pass

    def end(self, grace_s: float = 10.0) -> None:
        """SIGTERM to every member still running, SIGKILL to those left after `grace_s`."""
        self.look()
        alive = [p for p in self.members.values() if p.is_running()]  # is_running checks a reused pid too
        for p in alive:
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, left = psutil.wait_procs(alive, timeout=grace_s)
        for p in left:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(left, timeout=5)


class Launcher:
    """Trains one run folder in `cfg.nproc` processes under torchrun. The Trainer's interface:
    `Launcher(cfg, run_dir, ...).run(resume)` returns the summary, and a failure is written to
    the summary (status `failed`) and raised as a UserError."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, *, cache_dir: Path | None = None,
                 stop: threading.Event | None = None, on_record: OnRecord | None = None,
                 on_progress: OnProgress | None = None, on_history: OnHistory | None = None) -> None:
        self.cfg, self.run_dir, self.cache_dir = cfg, Path(run_dir).resolve(), cache_dir
        self.stop = stop or threading.Event()
        self.on_record, self.on_progress, self.on_history = on_record, on_progress, on_history

    def run(self, resume: bool = False) -> dict[str, Any]:
        check(self.cfg)
        control = Path(tempfile.mkdtemp(prefix="cnn-studio-ddp-"))
        try:
            return self._run(control, resume)
        finally:
            shutil.rmtree(control, ignore_errors=True)

    def _run(self, control: Path, resume: bool) -> dict[str, Any]:
        if resume:
            # What rank 0 will do first, done here too: a live view starts from exactly these.
            runs.truncate_metrics(self.run_dir, int(checkpoint.load(self.run_dir / "last.pt")["epoch"]))
            if self.on_history is not None:
                self.on_history(runs.read_metrics(self.run_dir))
        write_json(control / "job.json", {
            "config": self.cfg.to_dict(), "run_dir": str(self.run_dir), "resume": resume,
            "cache_dir": str(Path(self.cache_dir).resolve()) if self.cache_dir is not None else None})
        seconds_before = float(runs.read_summary(self.run_dir).get("seconds", 0.0))
        started = time.time()
        tail = _Tail(self.run_dir / "metrics.jsonl")
        env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
        asked = None
        with open(control / "torchrun.log", "wb") as log:
            proc = subprocess.Popen(command(control, self.cfg.nproc, free_port()), env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            family = _Family(proc.pid)
            try:
                progress: dict[str, Any] = {}
                looked = time.monotonic()
                while proc.poll() is None:
                    progress = self._pass_on(tail, control, progress)
                    if self.stop.is_set() and asked is None:
                        (control / "stop").touch()
                        asked = time.monotonic()
                    if asked is not None and time.monotonic() - asked > STOP_GRACE_S:
                        break
                    if time.monotonic() - looked > 1.0:
                        family.look()
                        looked = time.monotonic()
                    time.sleep(POLL_S)
            finally:
                family.end()  # nothing is left running, whatever ended the loop
                proc.wait()
        self._pass_on(tail, control, progress)
        summary = runs.read_summary(self.run_dir)
        if asked is not None and summary.get("status") not in ("stopped", "finished"):
            # ended after the grace period, before rank 0 could say so
            return runs.update_summary(self.run_dir, status="stopped",
                                       seconds=round(seconds_before + time.time() - started, 2))
        if proc.returncode == 0:
            return summary
        err = self._failure(control, proc.returncode)
        runs.update_summary(self.run_dir, status="failed", message=err.message(), message_key=err.key,
                            message_params=err.params)
        raise err

    def _pass_on(self, tail: _Tail, control: Path, last: dict[str, Any]) -> dict[str, Any]:
        """New records and progress to the callbacks; returns the progress passed on."""
        if self.on_record is not None:
            for rec in tail.records():
                self.on_record(rec)
        progress = read_json(control / "progress.json")
        if progress and progress != last and self.on_progress is not None:
            self.on_progress(progress)
        return progress or last

    def _failure(self, control: Path, code: int) -> UserError:
        """The run's error: that of the rank a signal ended (killed, out of memory) when torchrun
        names one as the first failure, else the first error a rank reported (a UserError as it
        is: the message one process gives), else what torchrun says."""
        reports = [read_json(p) for p in (control / "errors").glob("rank*.json")]
        reports = sorted((r for r in reports if r), key=lambda r: r.get("time", 0.0))
        text = (control / "torchrun.log").read_text(encoding="utf-8", errors="replace")
        # A rank SIGKILL ended (killed, out of memory) is the cause, wherever torchrun lists it: the
        # others' errors (a peer's connection closed) follow from it, and may be observed first.
        # (torchrun itself ends the other ranks with SIGTERM once one has failed.)
        reported = {r.get("rank") for r in reports}
        for rank_no, code, trace in _failures(text):
            if code == -9 and rank_no not in reported:
                return UserError("training.ddp.rank_failed", rank=rank_no, processes=self.cfg.nproc, reason=trace)
        cause = text.rpartition("Root Cause")[2]
        rank, why = re.search(r"rank\s*:\s*(\d+)", cause), re.search(r"traceback\s*:\s*(.+)", cause)
        signalled = bool(rank and why and re.search(r"exitcode\s*:\s*-\d+", cause))
        if rank and why and (signalled or not reports) and int(rank.group(1)) not in {r.get("rank") for r in reports}:
            # a rank that ended before it could report (an import failed, say): its traceback's last line
            raised = re.findall(r"^(?!.*ChildFailedError)[\w.]*(?:Error|Exception)\b.*$", text, re.MULTILINE)
            return UserError("training.ddp.rank_failed", rank=int(rank.group(1)), processes=self.cfg.nproc,
                             reason=why.group(1).strip() if signalled or not raised else raised[-1].strip())
        if reports:
            first = reports[0]
            if first.get("key"):
                return UserError(first["key"], **(first.get("params") or {}))
            return UserError("training.ddp.rank_failed", rank=first.get("rank", "?"), processes=self.cfg.nproc,
                             reason=first.get("message", ""))
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return UserError("training.ddp.failed", code=code, reason=(lines[-1] if lines else "")[:300])


def _failures(log: str) -> list[tuple[int, int, str]]:
    """(rank, exit code, traceback line) of each failure in torchrun's closing report (its
    "Failures:" and "Root Cause" entries, one "[i]:" block each)."""
    report = log[log.rfind("Failures:"):] if "Failures:" in log else ""
    found = []
    for block in re.split(r"^\[\d+\]:\s*$", report, flags=re.M)[1:]:
        rank, code = re.search(r"^\s*rank\s*:\s*(\d+)", block, re.M), re.search(r"^\s*exitcode\s*:\s*(-?\d+)", block, re.M)
        trace = re.search(r"^\s*traceback\s*:\s*(.+)$", block, re.M)
        if rank and code:
            found.append((int(rank.group(1)), int(code.group(1)), trace.group(1).strip() if trace else ""))
    return found
