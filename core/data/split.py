"""Split a class-folder dataset into OUT/{train,val,test}/<class>/ without touching the source.

Stratified per class and seeded, so the same seed gives a byte-identical split; hard links
cost no disk space and fall back to copies across file systems. The split is built in a
temporary folder next to OUT and renamed into place, so a split folder is never half-written
and two splits are never mixed.

A split is immutable once a run used it: `split.json` carries its identity (`id`, a hash of
the file lists of train/val/test), each run records the id it trained on, and each run leaves
a marker in `SPLIT/.runs/`; re-splitting into a folder that runs use is refused, naming the
runs and the next free version folder (`name-2`).

Every class of a split has at least one training image. A class without any usable image is
left out with a note; a class too small for every part is refused, left out, or kept in
training only, as the caller chooses (`small`).
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from core.atomic import read_json, write_json
from core.data.files import class_folders, class_images
from core.data.scan import HealthReport, scan
from core.errors import UserError

SPLITS = ("train", "val", "test")
INFO_FILE = "split.json"
ANNOTATIONS = "annotations.csv"
USES_DIR = ".runs"  # one marker file per run trained on the split (hidden: never a class or a part)
SMALL_CLASSES = ("refuse", "leave_out", "train_only")  # what to do with a class too small for every part


def read_split_info(split_dir: str | Path) -> dict:
    """The split's `split.json` (source, seed, ratios, classes, display names, counts, skipped)."""
    path = Path(split_dir) / INFO_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _not_split(Path(split_dir)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError("data.bad_split_info", path=str(path), reason=str(err)) from None


def _not_split(folder: Path) -> UserError:
    """Why `folder` cannot be trained on, with the one command that imports it when it is an
    existing split or CIFAR batches (never re-split silently)."""
    from core.data import cifar as batches
    from core.data.existing import find_existing, import_command

    try:
        cifar = batches.find_cifar(folder)
        existing = None if cifar else find_existing(folder)
    except UserError:
        cifar = existing = None
    if cifar is not None:
        return UserError("data.not_split_cifar", path=str(folder), command=batches.import_command(cifar))
    if existing is not None:
        return UserError("data.not_split_existing", path=str(folder), command=import_command(existing))
    return UserError("data.not_split", path=str(folder))


def _check_ratios(val: float, test: float) -> None:
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise UserError("data.bad_ratios", val=val, test=test)


def _class_seed(seed: int, name: str) -> int:
    """One stable random stream per class: adding a class does not reshuffle the others."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:8], "big")


def _sizes(n: int, val: float, test: float) -> tuple[int, int, int]:
    """(train, val, test) for a class of n >= needed images: each within one image of its share,
    a part with a share above 0 gets at least one, and training keeps at least one."""
    n_val = max(1, round(n * val)) if val > 0 else 0
    n_test = max(1, round(n * test)) if test > 0 else 0
    while n - n_val - n_test < 1:  # a tiny class: training keeps one image, taken from the larger part
        if n_val > n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def plan_split(report: HealthReport, val: float = 0.2, test: float = 0.2, seed: int = 42,
               small: str = "refuse", exclude: Iterable[str] = ()) -> dict:
    """Which file goes to which split, without writing anything.

    Returns {"assign": {split: {class: [rel paths]}}, "classes": classes of the split (index order),
    "skipped": files left out with the reason, "left_out": classes left out with the reason,
    "train_only": classes kept in training only, "too_small": [(class, usable)] refused under
    small="refuse", "needed": images a class needs for every part}.
    Pure and cheap, so the page can preview counts live while the sliders move. The report's
    images are the usable ones (problem files and extra copies of duplicates are not), and
    those are listed in "skipped".
    """
    _check_ratios(val, test)
    if small not in SMALL_CLASSES:
        raise UserError("data.bad_small_classes", value=small, choices=", ".join(SMALL_CLASSES))
    exclude = set(exclude)
    unknown = sorted(exclude - set(report.class_names))
    if unknown:
        raise UserError("data.exclude_unknown", names=", ".join(unknown))
    skipped = [{"path": p.path, "reason": p.kind} for p in report.problems]
    skipped += [{"path": path, "reason": "duplicate"} for group in report.duplicates for path in group[1:]]
    skipped.sort(key=lambda item: item["path"])
    needed = 1 + (val > 0) + (test > 0)
    assign: dict[str, dict[str, list[str]]] = {s: {} for s in SPLITS}
    classes, left_out, train_only, too_small = [], [], [], []
    for info in report.classes:
        files = list(report.images[info.name])
        if info.name in exclude:
            left_out.append({"class": info.name, "reason": "excluded", "images": len(files)})
            continue
        if not files:
            reason = "empty" if info.files == 0 else "no_usable"
            left_out.append({"class": info.name, "reason": reason, "images": 0})
            continue
        if len(files) < needed:
            if small == "leave_out":
                left_out.append({"class": info.name, "reason": "too_small", "images": len(files)})
                continue
            if small == "refuse":
                too_small.append((info.name, len(files)))
                continue
            train_only.append(info.name)
            sizes = (len(files), 0, 0)
        else:
            sizes = _sizes(len(files), val, test)
        classes.append(info.name)
        random.Random(_class_seed(seed, info.name)).shuffle(files)
        _, n_val, n_test = sizes
        assign["test"][info.name] = sorted(files[:n_test])
        assign["val"][info.name] = sorted(files[n_test:n_test + n_val])
        assign["train"][info.name] = sorted(files[n_test + n_val:])
    return {"assign": assign, "classes": classes, "skipped": skipped, "left_out": left_out,
            "train_only": train_only, "too_small": too_small, "needed": needed}


def left_out_note(item: dict, report: HealthReport) -> tuple[str, dict]:
    """Why a class is not in the split (translation key and params), from a "left_out" entry."""
    if item["reason"] in ("empty", "no_usable"):
        info = next(c for c in report.classes if c.name == item["class"])
        return info.note() or ("data.class_note.empty", {})
    return f"data.left_out.{item['reason']}", {"n": item["images"]}


def counts(plan: dict, classes: list[str]) -> dict[str, dict[str, int]]:
    """{class: {train: n, val: n, test: n}} from a plan."""
    return {c: {s: len(plan["assign"][s].get(c, [])) for s in SPLITS} for c in classes}


def place(src: Path, dst: Path, mode: str) -> str:
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


def guard_output(src: Path, out: Path, force: bool, runs_dir: str | Path | None) -> None:
    """Refuse an OUT that overlaps the source, is not a split, is a split runs use, or (without
    `force`) is any split."""
    if out == src or out.is_relative_to(src) or src.is_relative_to(out):
        raise UserError("data.split_inside_source", out=str(out), src=str(src))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not (out / INFO_FILE).is_file():
            raise UserError("data.split_target_not_split", out=str(out))
        used = runs_using(out, runs_dir)
        if used:
            raise UserError("data.split_in_use", out=str(out), n=len(used), runs=_names(used),
                            new=str(next_version(out)))
        if not force:
            raise UserError("data.split_exists", out=str(out))


def _names(paths: list[Path], most: int = 5) -> str:
    names = ", ".join(p.name for p in paths[:most])
    return names + (f" (+{len(paths) - most})" if len(paths) > most else "")


def split_dataset(
    src: str | Path,
    out: str | Path,
    val: float = 0.2,
    test: float = 0.2,
    seed: int = 42,
    mode: str = "link",
    force: bool = False,
    report: HealthReport | None = None,
    small: str = "refuse",
    exclude: Iterable[str] = (),
    runs_dir: str | Path | None = None,
) -> dict:
    """Write the split and return its info (what `split.json` holds).

    `report` may be passed when the caller has just scanned `src` (the page has). `force`
    replaces a split no run uses; one that runs use (a marker in it, or a run of `runs_dir`
    naming it) is never replaced: the error names the runs and the next version folder.
    """
    if mode not in ("link", "copy"):
        raise UserError("data.bad_mode", mode=mode)
    _check_ratios(val, test)
    report = report or scan(src)
    root = report.root
    out = Path(out).expanduser().resolve()
    guard_output(root, out, force, runs_dir)
    plan = plan_split(report, val, test, seed, small, exclude)
    if plan["too_small"]:
        name, have = plan["too_small"][0]
        raise UserError("data.class_too_small", name=name, count=have, needed=plan["needed"],
                        others=len(plan["too_small"]) - 1)
    if not plan["classes"]:
        raise UserError("data.no_usable_classes", path=str(root))

    display = dict(zip(report.class_names, report.display_names))

    def fill(tmp: Path) -> dict:
        modes = set()
        for split in SPLITS:  # a part with a share of 0 gets no folder: readers test for it
            for cls, files in plan["assign"][split].items():
                for rel in files:
                    modes.add(place(root / rel, tmp / split / _dest(rel, cls), mode))
        _write_annotations(root, tmp, plan)
        return {
            "source": str(root),
            "seed": seed,
            "ratios": {"train": round(1 - val - test, 6), "val": val, "test": test},
            "mode": "copy" if "copy" in modes else "link",
            "classes": plan["classes"],
            "display_names": [display[c] for c in plan["classes"]],
            "counts": counts(plan, plan["classes"]),
            "skipped": plan["skipped"],
            "left_out": plan["left_out"],
            "train_only": plan["train_only"],
        }

    return write_split(out, fill)


def _dest(rel: str, cls: str) -> str:
    """Where a file goes under its part: as it lies under its class folder ("daisy/x.jpg"), or,
    pooled from the parts of an existing split ("train/daisy/x.jpg"), under its class with the part
    kept as a sub-folder ("daisy/train/x.jpg"), so equal names in two parts never collide."""
    parts = rel.split("/")
    if parts[0] == cls:
        return rel
    if len(parts) > 2 and parts[1] == cls:
        return "/".join([cls, parts[0], *parts[2:]])
    raise ValueError(f"{rel} is not under class {cls}")


def write_split(out: Path, fill: Callable[[Path], dict]) -> dict:
    """Build a split with `fill(folder)` (which writes the parts and returns the info) in a
    temporary folder beside OUT, add its identity, write `split.json` and rename it into place:
    a split folder is never half-written. Any previous OUT must have been checked by
    `guard_output` (only a split no run uses is replaced)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fields = fill(tmp)
        info = {"id": split_identity(tmp), **fields}
        write_json(tmp / INFO_FILE, info)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


# --- identity and use ------------------------------------------------------------------------
def _identity(files: dict[str, list[str]]) -> str:
    """A hash of which file (path under its part) is in which part: the split's identity."""
    digest = hashlib.sha256()
    for split in SPLITS:
        for rel in sorted(files.get(split, [])):
            digest.update(f"{split}/{rel}\n".encode())
    return digest.hexdigest()[:16]


def split_identity(split_dir: str | Path) -> str:
    """The identity of the files a split folder holds now (equal to `split.json`'s `id` while
    nothing in it changed); any folder with train/val/test parts has one."""
    split_dir = Path(split_dir)
    files = {}
    for split in SPLITS:
        folder = split_dir / split
        if folder.is_dir():
            files[split] = [p.relative_to(folder).as_posix() for cls in class_folders(folder) for p in class_images(cls)]
    return _identity(files)


def record_use(split_dir: str | Path, run_dir: str | Path) -> None:
    """Mark `split_dir` as used by the run, so a re-split never replaces it (even when the run
    lives outside the workspace). A read-only split is used without a marker."""
    folder = Path(split_dir) / USES_DIR
    try:
        folder.mkdir(exist_ok=True)
        write_json(folder / f"{Path(run_dir).name}.json", {"run": str(Path(run_dir).resolve())})
    except OSError:
        pass


def runs_using(split_dir: str | Path, runs_dir: str | Path | None = None) -> list[Path]:
    """Run folders trained (or queued) on this split folder: those its markers name, and those of
    `runs_dir` whose config names it (runs made before markers). A deleted run does not count."""
    split_dir = Path(split_dir).expanduser().resolve()
    candidates = []
    if (split_dir / USES_DIR).is_dir():
        for marker in sorted((split_dir / USES_DIR).glob("*.json")):
            run = read_json(marker).get("run")
            if run:
                candidates.append(Path(run))
    if runs_dir is not None and Path(runs_dir).is_dir():
        candidates += sorted(p for p in Path(runs_dir).iterdir() if (p / "config.json").is_file())
    found = {}
    for run in candidates:
        data = read_json(run / "config.json").get("data")
        if data and Path(data).expanduser().resolve() == split_dir:
            found[str(run.resolve())] = run.resolve()
    return sorted(found.values(), key=lambda p: p.name)


def next_version(out: str | Path) -> Path:
    """The first free version folder of a split: `demo` -> `demo-2`, `demo-2` -> `demo-3`."""
    out = Path(out)
    name = out.name
    match = re.fullmatch(r"(.+)-(\d+)", name)
    if match and (out.parent / match.group(1) / INFO_FILE).is_file():
        name = match.group(1)
    k = 2
    while (out.parent / f"{name}-{k}").exists():
        k += 1
    return out.parent / f"{name}-{k}"


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
