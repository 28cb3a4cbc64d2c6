"""Which test images the Explain page offers: a split's test folder, by class, only a run's
mistakes, one page at a time; and where a request from another page (Compare) points.

A split may hold thousands of test images: listing is one pass over file names, filtering
is set look-ups, and only the images of the page shown are ever decoded (by the caller).
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.data.split import split_images
from core.errors import UserError

PAGE_SIZE = 24


@dataclass(frozen=True)
class Picture:
    path: Path
    folder: str  # the class folder it sits in (what predictions and runs call the class)
    name: str  # the class as people read it (cat_to_name.json, else the folder name)


def listed(split_dir: str | Path | None) -> list[Picture]:
    """Every image of the split's test folder, classes in reading order; [] without one."""
    if not split_dir or not Path(split_dir, "test").is_dir():
        return []
    return [Picture(path, folder, name) for path, folder, name in split_images(split_dir)]


def _key(path: str | Path) -> str:
    return os.path.normcase(os.path.abspath(path))


def mistakes(run_dir: str | Path) -> set[str] | None:
    """The test images run `run_dir` got wrong (normalised absolute paths), read from its
    `predictions.csv`; None when it has none (no test evaluation yet) or it cannot be read."""
    from core.runs import read_config
    from core.runs.compare import read_predictions

    run_dir = Path(run_dir)
    config = read_config(run_dir)
    path = run_dir / "predictions.csv"
    if not config or not path.is_file():
        return None
    try:
        frame = read_predictions(path, list(config.get("classes") or []), Path(str(config.get("data", ""))))
    except UserError:
        return None
    wrong = frame[frame["true"] != frame["pred"]]
    return {_key(f) for f in wrong["file"]}


def filtered(images: Sequence[Picture], folder: str | None = None,
             only: set[str] | None = None) -> list[Picture]:
    """The images of class `folder` (None: every class), only those in `only` when given."""
    return [im for im in images
            if (folder is None or im.folder == folder) and (only is None or _key(im.path) in only)]


def pages(count: int, size: int = PAGE_SIZE) -> int:
    """How many pages `count` images fill (at least one, so an empty list still has page 1)."""
    return max(1, math.ceil(count / size))


def page(images: Sequence[Picture], number: int, size: int = PAGE_SIZE) -> list[Picture]:
    """Page `number` (1-based, clamped to the pages there are) of `images`."""
    number = min(max(1, int(number)), pages(len(images), size))
    return list(images[(number - 1) * size:number * size])


def page_of(images: Sequence[Picture], path: str | Path, size: int = PAGE_SIZE) -> int | None:
    """The page on which `path` is shown, None when it is not among `images`."""
    wanted = _key(path)
    index = next((i for i, im in enumerate(images) if _key(im.path) == wanted), None)
    return None if index is None else index // size + 1


def find(images: Sequence[Picture], path: str | Path) -> Picture | None:
    wanted = _key(path)
    return next((im for im in images if _key(im.path) == wanted), None)


def outside_image(path: str | Path, classes: dict[str, str]) -> Picture:
    """An image that is not in the listed split (e.g. from another run's split): its class is
    the folder it sits in when a shown run knows that class (`classes`: folder -> shown name)."""
    path = Path(path)
    folder = path.parent.name
    return Picture(path, folder if folder in classes else "", classes.get(folder, ""))


def requested_runs(wanted: Sequence[Any], runs: Sequence[Path]) -> list[Path]:
    """The runs a request names, by folder id or folder path, in its order; unknown ones left out."""
    by_id = {run.name: run for run in runs}
    found = []
    for item in wanted or []:
        run = by_id.get(Path(str(item)).name)
        if run is not None and run not in found:
            found.append(run)
    return found
