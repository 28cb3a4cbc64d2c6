"""Datasets that come already split: `train/`, `valid/`, `test/` of the same class folders.

The flowers-102 course data (`train/` + `valid/`), every CIFAR image-folder release (`train/` +
`test/`) and the cats-vs-dogs lesson (two unrelated folders) are split by their authors; results
are only comparable when those parts are kept. `find_existing` recognises such a root (part names
in any case; `val`, `valid` and `validation` all mean validation), `from_parts` takes separate
folders, `inspect_existing` gives the health report of each part (with images found in more than
one part: leakage), and `import_existing` makes a workspace split of it without moving a file
between parts. Only without a validation part is one held out of training (seeded, stratified,
by the same planner as a new split).
"""
from __future__ import annotations

import shlex
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.data.files import class_folders, is_ignored, is_image_name
from core.data.scan import (
    CAT_TO_NAME,
    HealthReport,
    find_root,
    read_display_names,
    scan_folders,
)
from core.data.split import (
    INFO_FILE,
    SPLITS,
    guard_output,
    place,
    plan_split,
    write_split,
)
from core.errors import UserError

PART_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
DEFAULT_HOLD_OUT = 0.1  # of train, when the given split has no validation part


@dataclass(frozen=True)
class ExistingSplit:
    parts: dict[str, Path]  # "train" / "val" / "test" -> its folder, in SPLITS order
    root: Path | None = None  # the folder holding the parts; None for separate folders
    unlabeled: tuple[str, ...] = ()  # part folders without class folders (not used)

    @property
    def source(self) -> Path:
        return self.root or self.parts["train"]

    @property
    def name(self) -> str:
        """A folder name for its workspace split: the root's, the parent's of sibling part folders
        (catdog/training_set + catdog/test_set -> catdog), else the training folder's."""
        if self.root is not None:
            return self.root.name
        parents = {folder.parent for folder in self.parts.values()}
        if len(parents) == 1 and len(self.parts) > 1:
            return parents.pop().name
        return self.parts["train"].name

    def given(self, part: str) -> str:
        """The part's folder name as the user has it ("valid", "Test", "training_set")."""
        return self.parts[part].name

    def is_split(self) -> bool:
        """True when the root is a split CNN Studio made (it has split.json): nothing to import."""
        return self.root is not None and (self.root / INFO_FILE).is_file()

    def display_names(self) -> dict[str, str]:
        """cat_to_name.json beside the parts (the flowers-102 layout), or in a part folder."""
        places = [self.root] if self.root else [self.parts["train"].parent, *self.parts.values()]
        for where in places:
            if (where / CAT_TO_NAME).is_file():
                return read_display_names(where)
        return {}


def _holds_classes(folder: Path) -> bool:
    """True when a part folder holds class folders (not loose images only)."""
    return any(p.is_dir() and not is_ignored(p.name) for p in folder.iterdir())


def _has_loose_images(folder: Path) -> bool:
    return any(p.is_file() and is_image_name(p.name) and not is_ignored(p.name) for p in folder.iterdir())


def _parts_of(root: Path) -> ExistingSplit | None:
    folders = [p for p in root.iterdir() if p.is_dir() and not is_ignored(p.name)]
    named: dict[str, list[Path]] = defaultdict(list)
    for folder in folders:
        part = PART_NAMES.get(folder.name.lower())
        if part is None:
            return None  # another folder beside them: these are classes (one may be called "train")
        named[part].append(folder)
    train = named.get("train")
    if not train or len(train) == 1 and (_has_loose_images(train[0]) or not _holds_classes(train[0])):
        return None  # a class of trains, not a training part
    for part, found in named.items():
        if len(found) > 1:
            raise UserError("data.parts_ambiguous", path=str(root), names=", ".join(sorted(f.name for f in found)))
    parts = {s: named[s][0] for s in SPLITS if s in named and _holds_classes(named[s][0])}
    unlabeled = tuple(named[s][0].name for s in SPLITS if s in named and s not in parts)
    return ExistingSplit(parts, root, unlabeled)


def find_existing(path: str | Path) -> ExistingSplit | None:
    """The existing split at `path` (or inside the one folder a zip wrapped it in), else None."""
    path = Path(path).expanduser()
    if not path.is_dir():
        return None
    root = path.resolve()
    for _ in range(3):
        found = _parts_of(root)
        if found:
            return found
        entries = [p for p in root.iterdir() if not is_ignored(p.name)]
        folders = [p for p in entries if p.is_dir()]
        if len(folders) == 1 and not any(p.is_file() and is_image_name(p.name) for p in entries) \
                and not _has_loose_images(folders[0]) and folders[0].name.lower() not in PART_NAMES:
            root = folders[0]
            continue
        break
    return None


def from_parts(train: str | Path, val: str | Path | None = None, test: str | Path | None = None) -> ExistingSplit:
    """Separate folders of class folders (train here, test there) as one existing split."""
    if not train:
        raise UserError("data.parts_need_train")
    given = {"train": train, "val": val, "test": test}
    parts = {s: find_root(p) for s, p in given.items() if p}
    folders = list(parts.items())
    for i, (a, pa) in enumerate(folders):
        for b, pb in folders[i + 1:]:
            if pa == pb or pa.is_relative_to(pb) or pb.is_relative_to(pa):
                raise UserError("data.parts_overlap", a=a, b=b, path_a=str(pa), path_b=str(pb))
    return ExistingSplit(parts)


@dataclass
class ExistingReport:
    split: ExistingSplit
    reports: dict[str, HealthReport]  # the health report of each part
    leakage: list[list[str]] = field(default_factory=list)  # "part/rel" groups of identical images in 2+ parts

    @property
    def classes(self) -> list[str]:
        """Every class found in any part, in ImageFolder order."""
        return sorted({c for r in self.reports.values() for c in r.class_names})

    def missing(self) -> dict[str, list[str]]:
        """{part: classes the other parts have and this one lacks}, only parts that lack some."""
        every = set(self.classes)
        gaps = {part: sorted(every - set(r.class_names)) for part, r in self.reports.items()}
        return {part: names for part, names in gaps.items() if names}

    def totals(self) -> dict[str, int]:
        return {part: r.total_images for part, r in self.reports.items()}

    def display_of(self) -> dict[str, str]:
        return {c.name: c.display for r in self.reports.values() for c in r.classes}

    def counts(self) -> dict[str, dict[str, int]]:
        """{class: {part: usable images}} (0 where a part lacks the class)."""
        per = {part: {c.name: c.images for c in r.classes} for part, r in self.reports.items()}
        return {c: {part: per[part].get(c, 0) for part in self.reports} for c in self.classes}

    def to_dict(self) -> dict:
        return {
            "existing_split": True,
            "root": str(self.split.source),
            "parts": {part: str(path) for part, path in self.split.parts.items()},
            "given_names": {part: self.split.given(part) for part in self.split.parts},
            "unlabeled": list(self.split.unlabeled),
            "classes": self.classes,
            "missing": self.missing(),
            "totals": self.totals(),
            "counts": self.counts(),
            "leakage": self.leakage,
            "reports": {part: r.to_dict() for part, r in self.reports.items()},
        }


def inspect_existing(split: ExistingSplit, workers: int = 4) -> ExistingReport:
    """Scan each part; images with identical bytes in two parts are listed as leakage."""
    display = split.display_names()
    reports = {part: scan_folders(folder, {f.name: [f] for f in class_folders(folder)}, display=display,
                                  workers=workers)
               for part, folder in split.parts.items()}
    where: dict[str, list[str]] = defaultdict(list)
    for part, report in reports.items():
        for rel, digest in report.digests.items():
            where[digest].append(f"{split.given(part)}/{rel}")
    leakage = sorted(sorted(group) for group in where.values()
                     if len({path.split("/", 1)[0] for path in group}) > 1)
    return ExistingReport(split, reports, leakage)


def pooled(split: ExistingSplit, workers: int = 4) -> HealthReport:
    """All parts of a root as one class-folder dataset (to split again): paths are "part/class/file"."""
    if split.root is None:
        raise UserError("data.resplit_needs_root")
    folders: dict[str, list[Path]] = defaultdict(list)
    for folder in split.parts.values():
        for cls in class_folders(folder):
            folders[cls.name].append(cls)
    return scan_folders(split.root, dict(folders), loose_in=[split.root, *split.parts.values()],
                        display=split.display_names(), workers=workers)


def check_classes(report: ExistingReport, exclude: Iterable[str] = ()) -> None:
    """Refuse parts whose classes differ (naming them), unless those classes are left out."""
    exclude = set(exclude)
    unknown = sorted(exclude - set(report.classes))
    if unknown:
        raise UserError("data.exclude_unknown", names=", ".join(unknown))
    gaps = {part: [c for c in names if c not in exclude] for part, names in report.missing().items()}
    gaps = {part: names for part, names in gaps.items() if names}
    if gaps:
        every = sorted({c for names in gaps.values() for c in names})
        raise UserError("data.classes_differ",
                        details="; ".join(f"{report.split.given(part)}: {', '.join(names)}" for part, names in gaps.items()),
                        flags=" ".join(f"--exclude {shlex.quote(c)}" for c in every))


def import_existing(
    report: ExistingReport,
    out: str | Path,
    hold_out: float | None = None,
    seed: int = 42,
    mode: str = "link",
    force: bool = False,
    small: str = "refuse",
    exclude: Iterable[str] = (),
    runs_dir: str | Path | None = None,
) -> dict:
    """Make a workspace split of an existing split, keeping every file in its part.

    `hold_out` is the share of train held out for validation when there is no validation part
    (default 0.1; 0 for none); it is refused when there is one. Classes that differ between the
    parts are refused by name unless `exclude`d. Returns the split's info (`split.json`).
    """
    if mode not in ("link", "copy"):
        raise UserError("data.bad_mode", mode=mode)
    if hold_out is not None and not 0 <= hold_out < 1:
        raise UserError("data.bad_ratios", val=hold_out, test=0)
    split = report.split
    has_val = "val" in split.parts
    if hold_out is not None and hold_out > 0 and has_val:
        raise UserError("data.hold_out_has_val", name=split.given("val"))
    hold_out = 0.0 if has_val else (DEFAULT_HOLD_OUT if hold_out is None else hold_out)
    out = Path(out).expanduser().resolve()
    for folder in [split.root] if split.root else split.parts.values():
        guard_output(folder, out, force, runs_dir)
    check_classes(report, exclude)
    exclude = set(exclude)
    plan = plan_split(report.reports["train"], hold_out, 0.0, seed, small,
                      [c for c in exclude if c in report.reports["train"].class_names])
    if plan["too_small"]:
        name, have = plan["too_small"][0]
        raise UserError("data.class_too_small", name=name, count=have, needed=plan["needed"],
                        others=len(plan["too_small"]) - 1)
    if not plan["classes"]:
        raise UserError("data.no_usable_classes", path=str(split.parts["train"]))
    # (part folder, split written, {class: files}) for every part; validation from its own folder or held out
    writes = [(split.parts["train"], "train", plan["assign"]["train"]), (split.parts["train"], "val", plan["assign"]["val"])]
    skipped = [dict(s, path=f"{split.given('train')}/{s['path']}") for s in plan["skipped"]]
    for part in ("val", "test"):
        if part in split.parts:
            r = report.reports[part]
            writes.append((split.parts[part], part, {c: r.images.get(c, []) for c in plan["classes"]}))
            skipped += [{"path": f"{split.given(part)}/{p.path}", "reason": p.kind} for p in r.problems]
            skipped += [{"path": f"{split.given(part)}/{path}", "reason": "duplicate"}
                        for group in r.duplicates for path in group[1:]]
    display, every = report.display_of(), report.counts()

    def fill(tmp: Path) -> dict:
        modes = set()
        for folder, part, files in writes:
            for rel in (rel for names in files.values() for rel in names):
                modes.add(place(folder / rel, tmp / part / rel, mode))
        tally = {c: {s: 0 for s in SPLITS} for c in plan["classes"]}
        for _, part, files in writes:
            for c, names in files.items():
                tally[c][part] += len(names)
        total = sum(n for row in tally.values() for n in row.values())
        return {
            "source": str(split.source),
            "sources": {part: str(folder) for part, folder in split.parts.items()},
            "given_names": {part: split.given(part) for part in split.parts},
            "kept_as_given": True,
            "held_out": hold_out,
            "seed": seed,
            "ratios": {s: round(sum(row[s] for row in tally.values()) / total, 6) for s in SPLITS},
            "mode": "copy" if "copy" in modes else "link",
            "classes": plan["classes"],
            "display_names": [display.get(c, c) for c in plan["classes"]],
            "counts": tally,
            "skipped": sorted(skipped, key=lambda s: s["path"]),
            "left_out": plan["left_out"] + [{"class": c, "reason": "excluded", "images": sum(every[c].values())}
                                            for c in sorted(exclude - set(report.reports["train"].class_names))],
            "train_only": plan["train_only"],
            "leakage": report.leakage,
        }

    return write_split(out, fill)


def summary_params(report: ExistingReport) -> dict:
    """Parameters of the one-line summary ("train 6,552 / valid 818, 102 classes")."""
    parts = " / ".join(f"{report.split.given(p)} {n:,}" for p, n in report.totals().items())
    return {"parts": parts, "classes": len(report.classes)}


def import_command(split: ExistingSplit, out: str | Path | None = None) -> str:
    """The one command that imports this split into the workspace (for messages)."""
    from core.workspace import default_root

    words = ["python", "-m", "core", "split"]
    if split.root is not None:
        words.append(str(split.root))
    else:
        for part, folder in split.parts.items():
            words += [f"--{part}", str(folder)]
    return shlex.join([*words, str(Path(out) if out else default_root() / "splits" / split.name)])
