"""Split a class-folder dataset into OUT/{train,val,test}/<class>/ without touching the source.

Stratified per class and seeded, so the same seed gives a byte-identical split; hard links
cost no disk space and fall back to copies across file systems. The split is built in a
temporary folder next to OUT and renamed into place, so a split folder is never half-written
and two splits are never mixed.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

from core.data.scan import HealthReport, scan
from core.errors import UserError

SPLITS = ("train", "val", "test")
INFO_FILE = "split.json"
ANNOTATIONS = "annotations.csv"


def read_split_info(split_dir: str | Path) -> dict:
    """The split's `split.json` (source, seed, ratios, classes, display names, counts, skipped)."""
    path = Path(split_dir) / INFO_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError("data.not_split", path=str(split_dir)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError("data.bad_split_info", path=str(path), reason=str(err)) from None


def _check_ratios(val: float, test: float) -> None:
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise UserError("data.bad_ratios", val=val, test=test)


def _class_seed(seed: int, name: str) -> int:
    """One stable random stream per class: adding a class does not reshuffle the others."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:8], "big")


def plan_split(report: HealthReport, val: float = 0.2, test: float = 0.2, seed: int = 42) -> dict:
    """Which file goes to which split: {"assign": {split: {class: [rel paths]}}, "skipped": [...]}.

    Pure and cheap, so the page can preview counts live while the sliders move. Duplicates
    (same bytes) keep only their first copy, so no image is in two splits; problem files are
    left out; both are listed in "skipped".
    """
    _check_ratios(val, test)
    skipped = [{"path": p.path, "reason": p.kind} for p in report.problems]
    extra_copies = {path for group in report.duplicates for path in group[1:]}
    skipped += [{"path": path, "reason": "duplicate"} for path in sorted(extra_copies)]
    needed = 1 + (val > 0) + (test > 0)
    assign: dict[str, dict[str, list[str]]] = {s: {} for s in SPLITS}
    too_small = []
    for info in report.classes:
        files = [f for f in report.images[info.name] if f not in extra_copies]
        if len(files) < needed:
            too_small.append((info.name, len(files)))
            continue
        random.Random(_class_seed(seed, info.name)).shuffle(files)
        n_val = max(1, round(len(files) * val)) if val > 0 else 0
        n_test = max(1, round(len(files) * test)) if test > 0 else 0
        n_train = len(files) - n_val - n_test
        if n_train < 1:  # tiny class: keep one image for training
            n_val, n_test = (n_val - 1, n_test) if n_val > n_test else (n_val, n_test - 1)
            n_train = 1
        assign["test"][info.name] = sorted(files[:n_test])
        assign["val"][info.name] = sorted(files[n_test:n_test + n_val])
        assign["train"][info.name] = sorted(files[n_test + n_val:])
    return {"assign": assign, "skipped": skipped, "too_small": too_small, "needed": needed}


def counts(plan: dict, classes: list[str]) -> dict[str, dict[str, int]]:
    """{class: {train: n, val: n, test: n}} from a plan."""
    return {c: {s: len(plan["assign"][s].get(c, [])) for s in SPLITS} for c in classes}


def _place(src: Path, dst: Path, mode: str) -> str:
    """Hard-link (or copy) one file; returns the mode actually used."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "link":
        try:
            os.link(src, dst)
            return "link"
        except OSError:
            pass  # another file system, or links not allowed: copy instead
    shutil.copy2(src, dst)
    return "copy"


def _guard_output(src: Path, out: Path, force: bool) -> None:
    if out == src or out.is_relative_to(src) or src.is_relative_to(out):
        raise UserError("data.split_inside_source", out=str(out), src=str(src))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not (out / INFO_FILE).is_file():
            raise UserError("data.split_target_not_split", out=str(out))
        if not force:
            raise UserError("data.split_exists", out=str(out))


def split_dataset(
    src: str | Path,
    out: str | Path,
    val: float = 0.2,
    test: float = 0.2,
    seed: int = 42,
    mode: str = "link",
    force: bool = False,
    report: HealthReport | None = None,
) -> dict:
    """Write the split and return its info (what `split.json` holds).

    `report` may be passed when the caller has just scanned `src` (the page has).
    """
    if mode not in ("link", "copy"):
        raise UserError("data.bad_mode", mode=mode)
    _check_ratios(val, test)
    report = report or scan(src)
    root = report.root
    out = Path(out).expanduser().resolve()
    _guard_output(root, out, force)
    plan = plan_split(report, val, test, seed)
    if plan["too_small"]:
        name, have = plan["too_small"][0]
        raise UserError("data.class_too_small", name=name, count=have, needed=plan["needed"],
                        others=len(plan["too_small"]) - 1)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        modes = set()
        for split in SPLITS:  # a part with a share of 0 gets no folder: readers test for it
            for files in plan["assign"][split].values():
                for rel in files:
                    modes.add(_place(root / rel, tmp / split / rel, mode))
        _write_annotations(root, tmp, plan)
        info = {
            "source": str(root),
            "seed": seed,
            "ratios": {"train": round(1 - val - test, 6), "val": val, "test": test},
            "mode": "copy" if "copy" in modes else "link",
            "classes": report.class_names,
            "display_names": report.display_names,
            "counts": counts(plan, report.class_names),
            "skipped": plan["skipped"],
        }
        (tmp / INFO_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)  # only ever a previous split (checked by _guard_output)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _write_annotations(root: Path, out: Path, plan: dict) -> None:
    """Carry the demo set's boxes along: each split gets rows for its own files, paths relative to it."""
    source = root / ANNOTATIONS
    if not source.is_file():
        return
    with source.open(newline="", encoding="utf-8") as fh:
        rows = {row["path"]: row for row in csv.DictReader(fh)}
    for split in SPLITS:
        if not (out / split).is_dir():
            continue
        with (out / split / ANNOTATIONS).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["path", "class", "x0", "y0", "x1", "y1"])
            writer.writeheader()
            for files in plan["assign"][split].values():
                writer.writerows(rows[rel] for rel in files if rel in rows)


def split_images(split_dir: str | Path, split: str = "test") -> list[tuple[Path, str, str]]:
    """(image, class folder name, display name) for every image of SPLIT/<split>, classes in the
    order people read them ("2" before "10"); [] when the split has no such folder."""
    from core.data.files import class_folders, class_images, natural_order
    from core.data.labels import class_names

    folder = Path(split_dir) / split
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
