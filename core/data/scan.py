"""The health report of a class-folder dataset: what a user should know before training on it.

Every file is read once (its bytes hashed for duplicates, then fully decoded to catch
truncation); files that cannot be used are listed with a reason instead of being skipped
silently, and readable oddities (CMYK, 16-bit, palette, transparency, grayscale, EXIF
rotation) are reported as notes because they are converted on loading.

A class's usable count is what a split will use: problem files and the extra copies of
exact duplicates (the first path of a group is kept) are not counted, and `ClassInfo.note`
says why a class has fewer usable images than files.
"""
from __future__ import annotations

import hashlib
import io
import json
import statistics
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from core.data.files import (
    class_files,
    class_folders,
    is_ignored,
    is_image_name,
    natural_order,
)
from core.data.images import too_many_pixels
from core.errors import UserError

CAT_TO_NAME = "cat_to_name.json"
# Problems make a file unusable; notes describe a usable file that gets converted.
PROBLEMS = ("zero_bytes", "not_image", "broken", "bomb", "not_image_ext", "outside_class")
NOTES = ("cmyk", "16bit", "palette", "transparency", "grayscale", "exif_rotated")
_MODE_NOTES = {"CMYK": "cmyk", "I;16": "16bit", "I;16B": "16bit", "I;16L": "16bit", "I": "16bit",
               "P": "palette", "RGBA": "transparency", "LA": "transparency", "PA": "transparency",
               "L": "grayscale", "1": "grayscale"}
_EXIF_ORIENTATION = 0x0112


@dataclass
class FileIssue:
    path: str  # relative to the dataset root, with "/" separators
    kind: str  # one of PROBLEMS or NOTES, or "duplicate"
    detail: str = ""


@dataclass
class ClassInfo:
    name: str  # folder name (what the model's index refers to)
    display: str  # from cat_to_name.json, else the folder name
    images: int  # usable images: exactly what a split uses
    problems: int  # files that cannot be used
    copies: int = 0  # exact copies of an image kept elsewhere (left out)
    copies_of: list[str] = field(default_factory=list)  # classes holding the kept copies

    @property
    def label(self) -> str:
        """The folder name, with its display name in brackets when it has one (text listings)."""
        return self.name if self.display == self.name else f"{self.name} ({self.display})"

    @property
    def files(self) -> int:
        return self.images + self.problems + self.copies

    def note(self) -> tuple[str, dict] | None:
        """Why the usable count is below the number of files (translation key and params), or None."""
        if self.files == 0:
            return "data.class_note.empty", {}
        others = ", ".join(self.copies_of)
        if self.images == 0 and self.copies == self.files:
            return "data.class_note.all_copies", {"n": self.copies, "others": others}
        if self.images == 0:
            return "data.class_note.none_usable", {"n": self.files, "problems": self.problems, "copies": self.copies}
        if self.copies:
            return "data.class_note.some_copies", {"n": self.copies, "others": others}
        return None


@dataclass
class HealthReport:
    root: Path
    classes: list[ClassInfo]  # torchvision ImageFolder order: sorted folder names
    images: dict[str, list[str]]  # class -> usable image paths relative to root (sorted; no extra copies)
    problems: list[FileIssue]
    notes: list[FileIssue]
    duplicates: list[list[str]]  # groups of relative paths with identical bytes; the first is kept
    sizes: dict[str, dict[str, int]]  # width/height -> min/median/max
    formats: dict[str, int]
    ignored: int  # hidden and system files skipped
    digests: dict[str, str] = field(default_factory=dict, repr=False)  # rel -> sha256 of each readable image
    duplicate_classes: list[list[str]] = field(default_factory=list)  # the class of each path of `duplicates`

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def display_names(self) -> list[str]:
        return [c.display for c in self.classes]

    @property
    def total_images(self) -> int:
        return sum(c.images for c in self.classes)

    def label_conflicts(self) -> list[list[tuple[str, str]]]:
        """Duplicate groups whose copies lie in different class folders: the same photo given two
        labels, listed as (path, class) pairs. Only the first copy is used, under its own class."""
        return [list(zip(group, classes)) for group, classes in zip(self.duplicates, self.duplicate_classes)
                if len(set(classes)) > 1]

    def plain_duplicates(self) -> list[list[str]]:
        """Duplicate groups within one class folder (harmless copies: one is used)."""
        conflicts = [[path for path, _ in group] for group in self.label_conflicts()]
        return [group for group in self.duplicates if group not in conflicts]

    def listed(self) -> list[ClassInfo]:
        """Classes in the order people read them: natural order, so "2" comes before "10"."""
        return [self.classes[i] for i in natural_order(self.class_names)]

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("digests")
        data.pop("duplicate_classes")
        data["label_conflicts"] = [[{"path": path, "class": cls} for path, cls in group] for group in self.label_conflicts()]
        data["root"] = str(self.root)
        data["total_images"] = self.total_images
        return data


@dataclass
class _FileFacts:
    rel: str
    problem: str | None = None
    detail: str = ""
    notes: list[str] = field(default_factory=list)
    digest: str | None = None
    size: tuple[int, int] | None = None
    format: str | None = None


def find_root(path: str | Path) -> Path:
    """The folder whose sub-folders are the classes: `path`, or the one folder a zip wrapped it in."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError("data.not_found", path=str(path))
    if not path.is_dir():
        raise UserError("data.not_folder", path=str(path))
    root = path.resolve()
    for _ in range(3):
        entries = [p for p in root.iterdir() if not is_ignored(p.name)]
        folders = [p for p in entries if p.is_dir()]
        loose_images = [p for p in entries if p.is_file() and is_image_name(p.name)]
        if len(folders) == 1 and not loose_images and not _has_images(folders[0]):
            root = folders[0]
            continue
        break
    if not class_folders(root):
        raise UserError("data.no_classes", path=str(path))
    return root


def _has_images(folder: Path) -> bool:
    """True when the folder directly holds image files (a class), not only more folders."""
    return any(p.is_file() and is_image_name(p.name) and not is_ignored(p.name) for p in folder.iterdir())


def read_display_names(root: Path) -> dict[str, str]:
    """cat_to_name.json (folder name -> display name), as the flowers-102 course data ships; {} if absent."""
    path = root / CAT_TO_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError("data.bad_cat_to_name", path=str(path), reason=str(err)) from None
    if not isinstance(data, dict):
        raise UserError("data.bad_cat_to_name", path=str(path), reason="not an object")
    return {str(k): str(v) for k, v in data.items()}


def _inspect(path: Path, rel: str) -> _FileFacts:
    facts = _FileFacts(rel)
    if not is_image_name(path.name):
        facts.problem, facts.detail = "not_image_ext", path.suffix or path.name
        return facts
    try:
        raw = path.read_bytes()
    except OSError as err:
        facts.problem, facts.detail = "broken", err.strerror or str(err)
        return facts
    if not raw:
        facts.problem = "zero_bytes"
        return facts
    facts.digest = hashlib.sha256(raw).hexdigest()
    try:
        with Image.open(io.BytesIO(raw)) as img:
            width, height = img.size
            facts.format = img.format
            if too_many_pixels(width, height):  # refused before decoding, as open_image does
                facts.problem, facts.detail = "bomb", f"{width}x{height}"
                return facts
            img.load()
            mode_note = _MODE_NOTES.get(img.mode)
            if mode_note:
                facts.notes.append(mode_note)
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
            if orientation not in (1, None):
                facts.notes.append("exif_rotated")
                if orientation in (5, 6, 7, 8):
                    width, height = height, width
            facts.size = (width, height)
    except Image.DecompressionBombError:
        facts.problem, facts.detail = "bomb", ""
    except UnidentifiedImageError:
        facts.problem = "not_image"
    except (OSError, SyntaxError, ValueError) as err:
        facts.problem, facts.detail = "broken", str(err)
    return facts


def scan(path: str | Path, workers: int = 4) -> HealthReport:
    """Read every file of the dataset at `path` and report classes, counts and problems.

    Raises a UserError when `path` is not a folder of class folders.
    """
    root = find_root(path)
    return scan_folders(root, {f.name: [f] for f in class_folders(root)}, workers=workers)


def scan_folders(root: Path, folders: dict[str, list[Path]], loose_in: list[Path] | None = None,
                 display: dict[str, str] | None = None, workers: int = 4) -> HealthReport:
    """The health report of classes whose images lie in the given folders under `root` (one
    folder per class for a plain dataset; one per part for the parts of an existing split pooled).

    Files lying loose in `loose_in` (default: `root`) are listed as outside any class; paths in
    the report are relative to `root`.
    """
    display = read_display_names(root) if display is None else display
    jobs: list[tuple[str, Path, str]] = []
    ignored = 0
    problems: list[FileIssue] = []
    for where in loose_in or [root]:
        for entry in where.iterdir():
            if is_ignored(entry.name):
                ignored += 1
            elif entry.is_file() and entry.name != CAT_TO_NAME and entry.name != "annotations.csv":
                problems.append(FileIssue(entry.relative_to(root).as_posix(), "outside_class"))
    for cls in sorted(folders):
        for folder in folders[cls]:
            for path_ in class_files(folder):
                jobs.append((cls, path_, path_.relative_to(root).as_posix()))
            ignored += sum(1 for p in folder.rglob("*") if is_ignored(p.name))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda job: _inspect(job[1], job[2]), jobs))

    images: dict[str, list[str]] = {cls: [] for cls in sorted(folders)}
    class_of = {rel: cls for cls, _, rel in jobs}
    bad_per_class: Counter = Counter()
    notes: list[FileIssue] = []
    by_digest: dict[str, list[str]] = defaultdict(list)
    digests: dict[str, str] = {}
    widths, heights, formats = [], [], Counter()
    for (cls, _, _), facts in zip(jobs, results):
        if facts.problem:
            problems.append(FileIssue(facts.rel, facts.problem, facts.detail))
            bad_per_class[cls] += 1
            continue
        images[cls].append(facts.rel)
        notes += [FileIssue(facts.rel, note) for note in facts.notes]
        by_digest[facts.digest].append(facts.rel)
        digests[facts.rel] = facts.digest
        widths.append(facts.size[0])
        heights.append(facts.size[1])
        formats[facts.format or "?"] += 1
    duplicates = [sorted(group) for group in by_digest.values() if len(group) > 1]
    duplicates.sort()
    copies: Counter = Counter()
    copies_of: dict[str, set[str]] = defaultdict(set)
    dropped = set()
    for group in duplicates:
        for rel in group[1:]:
            dropped.add(rel)
            copies[class_of[rel]] += 1
            copies_of[class_of[rel]].add(class_of[group[0]])
    images = {cls: sorted(rel for rel in files if rel not in dropped) for cls, files in images.items()}

    classes = [ClassInfo(cls, display.get(cls, cls), len(images[cls]), bad_per_class[cls],
                         copies[cls], sorted(copies_of[cls])) for cls in sorted(folders)]
    sizes = {}
    for axis, values in (("width", widths), ("height", heights)):
        if values:
            sizes[axis] = {"min": min(values), "median": int(statistics.median(values)), "max": max(values)}
    return HealthReport(root, classes, images, problems, notes, duplicates, sizes, dict(formats), ignored, digests,
                        [[class_of[rel] for rel in group] for group in duplicates])


IMBALANCE_WARN = 3.0  # largest:smallest class above this: the page warns


@dataclass(frozen=True)
class Imbalance:
    """How uneven the classes are: the largest class over the smallest (classes with images only)."""

    largest: str
    smallest: str
    largest_n: int
    smallest_n: int

    @property
    def ratio(self) -> float:
        return self.largest_n / self.smallest_n

    @property
    def warn(self) -> bool:
        return self.ratio > IMBALANCE_WARN


def imbalance(counts: dict[str, int]) -> Imbalance | None:
    """The largest:smallest ratio of `counts` (class -> images); None with fewer than two
    classes that have images. A model trained on unbalanced classes tends to predict the largest."""
    present = {name: n for name, n in counts.items() if n > 0}
    if len(present) < 2:
        return None
    largest = max(present, key=lambda name: (present[name], name))
    smallest = min(present, key=lambda name: (present[name], name))
    return Imbalance(largest, smallest, present[largest], present[smallest])


def sample_paths(report: HealthReport, per_class: int = 6, seed: int = 0) -> dict[str, list[Path]]:
    """A few usable images of each class (seeded), for the page's sample grid."""
    import random

    picked = {}
    for c in report.listed():
        files = report.images[c.name]
        chosen = random.Random(f"{seed}/{c.name}").sample(files, min(per_class, len(files)))
        picked[c.name] = [report.root / rel for rel in sorted(chosen)]
    return picked
