"""A run is a folder: created, found, listed and read back by the pages, the CLI and after a restart.

`RUNS/<run-id>/` holds `config.json`, `metrics.jsonl` (appended as training goes),
`best.pt` / `last.pt`, `summary.json` (status and headline figures, rewritten as the run
moves on), and after the test evaluation `predictions.csv` and `eval_test.json`.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.atomic import read_json, replacing, write_json
from core.errors import UserError

if TYPE_CHECKING:
    from core.training.config import TrainConfig

STATUSES = ("queued", "running", "finished", "stopped", "failed", "interrupted")
RESUMABLE = ("stopped", "interrupted")


def new_run_dir(runs_dir: str | Path, name: str) -> Path:
    """A fresh folder named by time and the model, e.g. `20261123-101500-simple_cnn`."""
    slug = re.sub(r"[^\w\-]+", "_", name, flags=re.UNICODE).strip("_")[:40] or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        path = runs_dir / (f"{stamp}-{slug}" + (f"-{n}" if n else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a run folder in {runs_dir}")


def read_config(run_dir: Path) -> dict[str, Any]:
    return read_json(Path(run_dir) / "config.json")


def read_summary(run_dir: Path) -> dict[str, Any]:
    return read_json(Path(run_dir) / "summary.json")


def update_summary(run_dir: Path, **fields: Any) -> dict[str, Any]:
    summary = read_summary(run_dir) | fields
    write_json(Path(run_dir) / "summary.json", summary)
    return summary


def read_metrics(run_dir: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The records of `metrics.jsonl` (of one `kind`: "iter" or "epoch"); a half-written last
    line, from a run being written right now or killed mid-write, is left out."""
    records = []
    try:
        lines = (Path(run_dir) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return records
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if kind is None or record.get("type") == kind:
            records.append(record)
    return records


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    with open(Path(run_dir) / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def truncate_metrics(run_dir: Path, epochs_done: int) -> None:
    """Keep only the records of completed epochs (a resumed run redoes the partial one)."""
    kept = [r for r in read_metrics(run_dir) if r.get("epoch", 0) <= epochs_done]
    with replacing(Path(run_dir) / "metrics.jsonl") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)


def resume_from_checkpoint(run_dir: Path) -> bool:
    """Whether Resume continues a run from its `last.pt` (True) or trains it from the start
    (False: stopped or cut off before its first checkpoint). Only stopped or interrupted runs resume."""
    status = read_summary(run_dir).get("status")
    if status not in RESUMABLE:
        raise UserError("training.cannot_resume", run=Path(run_dir).name, status=status or "?")
    return (Path(run_dir) / "last.pt").is_file()


def _started(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), None when there is no such process."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:  # gone, or a zombie
        return None


def owner() -> dict[str, Any]:
    """Who is running a run: lets a restarted app tell a dead run from one another process trains.

    The process's start time goes with its id: an id the system gave to a new process after
    the owner died must not keep the dead run "running"."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "pid_started": _started(os.getpid())}


def _trained_elsewhere(summary: dict[str, Any]) -> bool:
    """True while another live process on this machine owns the run (e.g. a CLI training)."""
    import psutil

    pid = summary.get("pid")
    if summary.get("host") != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        started = _started(pid)
    except psutil.AccessDenied:  # another user's process: the owner only if nothing says otherwise
        return summary.get("pid_started") is None
    if started is None:
        return False
    recorded = summary.get("pid_started")
    # Start times are exact to the clock tick; a summary from before they were recorded has none.
    return recorded is None or abs(started - float(recorded)) < 0.05


@dataclass
class RunInfo:
    id: str
    path: Path
    name: str
    model: str
    status: str
    data: str
    epochs_done: int
    epochs: int
    best_val_acc: float | None
    test_acc: float | None
    message: str
    created: float


NAME_MAX = 60
BUSY = ("running", "queued")  # a run the trainer holds or will start: never deleted under it


def display_name(run_dir: Path, config: dict[str, Any] | None = None, summary: dict[str, Any] | None = None) -> str:
    """What a run is called on screen: the name the user gave it (renamed, or the config's
    name), else its folder id. The folder id itself never changes."""
    summary = read_summary(run_dir) if summary is None else summary
    config = read_config(run_dir) if config is None else config
    return str(summary.get("display_name") or config.get("name") or Path(run_dir).name)


def rename_run(run_dir: str | Path, name: str) -> str:
    """Give the run a new shown name (kept in its summary; the folder and its id stay)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise UserError("runs.not_found", run=run_dir.name, runs=str(run_dir.parent))
    name = " ".join(str(name or "").split())
    if not name or len(name) > NAME_MAX:
        raise UserError("runs.bad_name", name=name, most=NAME_MAX)
    update_summary(run_dir, display_name=name)
    return name


def delete_run(run_dir: str | Path) -> None:
    """Delete a run folder and its split marker. A running or queued run is refused (stop it
    first). The folder is first renamed to a hidden name, so a deletion cut short never leaves
    a half-deleted run in the run list."""
    from core.data.split import USES_DIR

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise UserError("runs.not_found", run=run_dir.name, runs=str(run_dir.parent))
    status = read_summary(run_dir).get("status")
    if status in BUSY:
        raise UserError(f"runs.delete_{status}", run=display_name(run_dir))
    data = read_config(run_dir).get("data")
    trash = run_dir.with_name(f".deleting-{run_dir.name}")
    os.replace(run_dir, trash)
    shutil.rmtree(trash, ignore_errors=True)
    if data:
        try:
            (Path(data) / USES_DIR / f"{run_dir.name}.json").unlink(missing_ok=True)
        except OSError:
            pass  # a read-only split: a marker of a deleted run does not count anyway


def run_info(run_dir: Path) -> RunInfo:
    from core.models import describe_ref

    config, summary = read_config(run_dir), read_summary(run_dir)
    return RunInfo(
        id=run_dir.name, path=run_dir, name=display_name(run_dir, config, summary),
        model=describe_ref(config.get("model", {})), status=summary.get("status", "interrupted"),
        data=str(config.get("data", "")), epochs_done=int(summary.get("epochs_done", 0)),
        epochs=int(config.get("epochs", 0)), best_val_acc=summary.get("best_val_acc"),
        test_acc=summary.get("test_acc"), message=summary.get("message", ""),
        created=float(summary.get("created", run_dir.stat().st_mtime)),
    )


def list_runs(runs_dir: str | Path) -> list[RunInfo]:
    """Every run folder (one with a config.json), newest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = [run_info(p) for p in runs_dir.iterdir() if not p.name.startswith(".") and (p / "config.json").is_file()]
    return sorted(found, key=lambda r: (r.created, r.id), reverse=True)


def mark_interrupted(runs_dir: str | Path, live_ids: set[str] = frozenset()) -> list[str]:
    """Runs left `running` or `queued` by a process that is gone become `interrupted`.

    Called once when the app (or the CLI) starts: a run another live process is training
    keeps its status (the same process id started at the same time: a reused id does not count).
    """
    marked = []
    for run in list_runs(runs_dir):
        if run.status in ("running", "queued") and run.id not in live_ids:
            if not _trained_elsewhere(read_summary(run.path)):
                update_summary(run.path, status="interrupted")
                marked.append(run.id)
    return marked


CHECKPOINTS = ("best.pt", "last.pt")


def create_run(cfg: "TrainConfig", runs_dir: Path, status: str = "queued") -> Path:
    """A new run folder holding the config, before any training happens (a queued run).

    The run is pinned to its split: the split's identity goes into the config and the summary
    (the summary keeps it when the trainer rewrites the config), and a marker in the split
    folder keeps a re-split from replacing it (core.data.split)."""
    from core.data.split import read_split_info, record_use, split_identity
    from core.models import describe_ref

    cfg = cfg.validated()
    read_split_info(cfg.data)  # a wrong folder is refused before a run folder exists
    split_id = split_identity(cfg.data)
    run_dir = new_run_dir(runs_dir, cfg.name or describe_ref(cfg.model))
    write_json(run_dir / "config.json", cfg.to_dict() | {"split_id": split_id})
    update_summary(run_dir, status=status, created=time.time(), split_id=split_id, **owner())
    record_use(cfg.data, run_dir)
    return run_dir


def find_run(run: str | Path, runs_dir: str | Path) -> Path:
    """The run folder for a path or for a run id under `runs_dir`."""
    path = Path(run).expanduser()
    for candidate in (path, Path(runs_dir) / str(run)):
        if candidate.is_dir() and (candidate / "config.json").is_file():
            return candidate.resolve()
    raise UserError("runs.not_found", run=str(run), runs=str(runs_dir))


def run_folders(runs_dir: str | Path) -> list[Path]:
    """Run folders, newest first."""
    return [r.path for r in list_runs(runs_dir)]


def runs_with_weights(runs_dir: str | Path) -> list[Path]:
    """Runs with a checkpoint to load (finished or stopped), newest first."""
    return [p for p in run_folders(runs_dir) if any((p / name).is_file() for name in CHECKPOINTS)]


def checkpoint_stamp(run_dir: str | Path) -> float:
    """Changes whenever the run's checkpoints change: a cache key for loaded models."""
    stamps = [(Path(run_dir) / name).stat().st_mtime for name in CHECKPOINTS if (Path(run_dir) / name).is_file()]
    return max(stamps, default=0.0)
