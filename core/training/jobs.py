"""Background training: one process-wide registry, one worker thread, a queue of runs.

The worker thread trains one run at a time and appends plain records to the job's log under
the registry's lock; pages read copies (`snapshot`) and never touch the model. The worker
exists only while there is work, so stopping everything leaves no thread behind. A run with
`nproc` > 1 trains in processes under torchrun, which the worker thread follows and stops.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError
from core import runs
from core.training.config import TrainConfig
from core.runs import create_run
from core.training.distributed import Launcher
from core.training.engine import Trainer
from core.training.more import add_epochs

THREAD_NAME = "cnn-studio-trainer"
SAME_REQUEST_WINDOW_S = 5.0  # two tabs pressing Start with the same settings create one run


@dataclass
class Job:
    run_dir: Path
    config: TrainConfig
    cache_dir: Path | None
    resume: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    records: list[dict[str, Any]] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)
    status: str = "queued"
    message: str = ""
    message_key: str = ""
    message_params: dict[str, Any] = field(default_factory=dict)
    submitted: float = field(default_factory=time.monotonic)

    @property
    def run_id(self) -> str:
        return self.run_dir.name


class JobRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._queue: deque[Job] = deque()
        self._worker: threading.Thread | None = None
        self._checked_dirs: set[Path] = set()

    # --- what the pages and the CLI call ----------------------------------------------------
    def attach(self, runs_dir: str | Path) -> None:
        """First look at a runs folder in this process: runs left `running` by a dead process
        become `interrupted` (and can be resumed)."""
        runs_dir = Path(runs_dir).resolve()
        with self._lock:
            if runs_dir in self._checked_dirs:
                return
            self._checked_dirs.add(runs_dir)
            runs.mark_interrupted(runs_dir, set(self._jobs))

    def submit(self, config: TrainConfig, runs_dir: str | Path, cache_dir: Path | None = None) -> str:
        """Queue a new run; returns its id. The same request again within a few seconds, while
        the first is still queued or training, returns the first one's id instead of starting a
        duplicate; once that run is stopped (or over), the same settings start a new run."""
        config = config.validated()
        with self._lock:
            now = time.monotonic()
            for job in self._jobs.values():
                if (not job.resume and job.config == config and now - job.submitted < SAME_REQUEST_WINDOW_S
                        and job.status in ("queued", "running") and not job.stop.is_set()
                        and job.run_dir.parent == Path(runs_dir).resolve()):
                    return job.run_id
            run_dir = create_run(config, Path(runs_dir).resolve())
            self._enqueue(Job(run_dir, config, cache_dir))
            return run_dir.name

    def resume(self, run_dir: str | Path, cache_dir: Path | None = None) -> str:
        """Continue a stopped or interrupted run from its `last.pt`; one that never started
        training (stopped or cut off while queued) has none and starts from the beginning. It
        goes to the front of the queue: next, as soon as the run training now (if any) ends."""
        run_dir = Path(run_dir).resolve()
        with self._lock:
            job = self._jobs.get(run_dir.name)
            if job is not None and job.status in ("queued", "running"):
                return job.run_id
            from_checkpoint = runs.resume_from_checkpoint(run_dir)
            config = TrainConfig.of_run(runs.read_config(run_dir))
            runs.update_summary(run_dir, status="queued", **runs.owner())
            self._enqueue(Job(run_dir, config, cache_dir, resume=from_checkpoint), front=True)
            return run_dir.name

    def more_epochs(self, run_dir: str | Path, more: int, cache_dir: Path | None = None) -> str:
        """Train a finished run `more` epochs further, in place (core.training.more), at the
        front of the queue as Resume does."""
        run_dir = Path(run_dir).resolve()
        with self._lock:
            job = self._jobs.get(run_dir.name)
            if job is not None and job.status in ("queued", "running"):
                return job.run_id
            config = add_epochs(run_dir, more)
            self._enqueue(Job(run_dir, config, cache_dir, resume=True), front=True)
            return run_dir.name

    def stop(self, run_id: str) -> None:
        """A queued run leaves the queue; a running one stops within one batch."""
        with self._lock:
            job = self._jobs.get(run_id)
            if job is None:
                return
            if job in self._queue:
                self._queue.remove(job)
                job.status = "stopped"
                runs.update_summary(job.run_dir, status="stopped")
            job.stop.set()

    def snapshot(self, run_id: str) -> dict[str, Any] | None:
        """A copy of a job's live state (None for runs this process is not training)."""
        with self._lock:
            job = self._jobs.get(run_id)
            if job is None:
                return None
            return {"run_id": run_id, "status": job.status, "progress": dict(job.progress),
                    "records": list(job.records), "message": job.message, "message_key": job.message_key,
                    "message_params": dict(job.message_params), "ahead": self._ahead(job)}

    def _ahead(self, job: Job) -> list[str]:
        """The runs a queued job waits for: the one training now, then those before it in the queue."""
        if job not in self._queue:
            return []
        running = [j.run_id for j in self._jobs.values() if j.status == "running"]
        return running + [j.run_id for j in list(self._queue)[:self._queue.index(job)]]

    def active(self) -> str | None:
        with self._lock:
            return next((j.run_id for j in self._jobs.values() if j.status == "running"), None)

    def queued(self) -> list[str]:
        with self._lock:
            return [j.run_id for j in self._queue]

    def busy(self) -> bool:
        with self._lock:
            return self._worker is not None and self._worker.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the queue is done (tests, CLI); True if it finished in time."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
            return not worker.is_alive()
        return True

    # --- the worker ------------------------------------------------------------------------
    def _enqueue(self, job: Job, front: bool = False) -> None:
        self._jobs[job.run_id] = job
        if front:
            self._queue.appendleft(job)
        else:
            self._queue.append(job)
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name=THREAD_NAME, daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._worker = None
                    return
                job = self._queue.popleft()
                job.status = "running"
            self._train(job)

    def _train(self, job: Job) -> None:
        def on_record(record: dict[str, Any]) -> None:
            with self._lock:
                job.records.append(record)

        def on_progress(progress: dict[str, Any]) -> None:
            job.progress = progress  # one reference swap: readers copy it under the lock

        def on_history(records: list[dict[str, Any]]) -> None:
            # A resumed run's completed epochs, read after the trainer dropped the partial one
            # (read before, the redone steps would show twice).
            with self._lock:
                job.records = records + job.records

        # more than one process: torchrun's ranks train, this thread follows them (core.training.distributed)
        runner = Trainer if job.config.nproc == 1 else Launcher
        trainer = runner(job.config, job.run_dir, cache_dir=job.cache_dir, stop=job.stop,
                         on_record=on_record, on_progress=on_progress, on_history=on_history)
        try:
            summary = trainer.run(resume=job.resume)
            # A finished run may carry a note (its test evaluation could not run).
            status, message = summary["status"], summary.get("message", "")
            job.message_key = summary.get("message_key", "")
            job.message_params = dict(summary.get("message_params") or {})
        except UserError as err:
            status, message = "failed", err.message()
            job.message_key, job.message_params = err.key, dict(err.params)
        except Exception as err:  # noqa: BLE001 - the run shows the failure; the worker goes on
            status, message = "failed", f"{type(err).__name__}: {err}"
        with self._lock:
            job.status, job.message = status, message


_registry = JobRegistry()


def registry() -> JobRegistry:
    """The process-wide registry: the app's pages, the CLI and the tests share it."""
    return _registry
