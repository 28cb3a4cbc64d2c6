"""Finding a run and loading its model for explanations, with user-facing errors.

A run is named by its folder or by its id under the workspace's runs folder. Loading goes
through `core.load_model` (the training area's loader: eval mode, CPU, from the checkpoint);
anything it cannot turn into a model — a missing checkpoint, one saved for another network —
becomes a UserError that names the run, so the page and the CLI show a sentence, not a trace.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from core.errors import UserError


def find_run(run: str | Path, runs_dir: str | Path) -> Path:
    """The run folder for a path or a run id."""
    path = Path(run).expanduser()
    for candidate in (path, Path(runs_dir) / str(run)):
        if candidate.is_dir() and (candidate / "config.json").is_file():
            return candidate.resolve()
    raise UserError("explain.run_not_found", run=str(run), runs=str(runs_dir))


def load_run_model(run_dir: str | Path) -> tuple[nn.Module, Any]:
    """`core.load_model(run_dir)`, its failures turned into messages about this run."""
    import core

    run_dir = Path(run_dir)
    try:
        return core.load_model(run_dir)
    except UserError:
        raise
    except FileNotFoundError as err:
        raise UserError("explain.checkpoint_missing", run=run_dir.name, reason=str(err)) from err
    except (RuntimeError, KeyError, ValueError, EOFError, OSError) as err:
        # load_state_dict's size mismatch / missing keys, or an unreadable file.
        raise UserError("explain.checkpoint_bad", run=run_dir.name, reason=str(err).splitlines()[0][:300]) from err


CHECKPOINTS = ("best.pt", "last.pt")


def explainable_runs(runs_dir: str | Path) -> list[Path]:
    """Runs with a checkpoint to load (finished or stopped), newest first."""
    from core.explain.compare import run_folders

    return [p for p in run_folders(runs_dir) if any((p / name).is_file() for name in CHECKPOINTS)]


def checkpoint_stamp(run_dir: str | Path) -> float:
    """Changes whenever the run's checkpoints change: a cache key for loaded models."""
    stamps = [(Path(run_dir) / name).stat().st_mtime for name in CHECKPOINTS if (Path(run_dir) / name).is_file()]
    return max(stamps, default=0.0)


def default_pair(runs: list[Path]) -> list[Path]:
    """A simple CNN run and a CBAM run (newest of each) when both exist, else the newest two."""
    from core.training.runs import read_config
    from core.models import describe_ref

    def newest(word: str) -> Path | None:
        return next((p for p in runs if word in describe_ref(read_config(p).get("model", {}))), None)

    simple, cbam = newest("simple"), newest("cbam")
    if simple and cbam:
        return [simple, cbam]
    return runs[:2]


def test_split_images(split_dir: str | Path) -> list[tuple[Path, str, str]]:
    """(image, class folder name, display name) for every image of SPLIT/test, classes in the
    order people read them ("2" before "10")."""
    from core.data.files import class_folders, class_images, natural_order
    from core.data.split import read_split_info
    from core.explain.explainer import class_names

    folder = Path(split_dir) / "test"
    if not folder.is_dir():
        return []
    try:
        info = read_split_info(split_dir)
    except UserError:
        info = {}
    shown = dict(zip(info.get("classes") or [], class_names(info)))
    classes = class_folders(folder)
    ordered = [classes[i] for i in natural_order([c.name for c in classes])]
    return [(path, cls.name, shown.get(cls.name, cls.name)) for cls in ordered for path in class_images(cls)]
