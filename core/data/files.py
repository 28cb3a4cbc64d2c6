"""Which files of a class folder count, and in what order: shared by scan, split and cache."""
from __future__ import annotations

import re
from pathlib import Path

from core.data.images import IMAGE_EXTENSIONS

# Files and folders that operating systems and archivers leave behind; never data.
SYSTEM_NAMES = {".ds_store", "thumbs.db", "desktop.ini", "__macosx", ".spotlight-v100", ".trashes", "@eadir"}


def is_ignored(name: str) -> bool:
    """Hidden (dot, AppleDouble `._x`) and system files are not part of a dataset."""
    return name.startswith(".") or name.lower() in SYSTEM_NAMES


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def natural_key(name: str) -> list:
    """Sort key that puts "2" before "10" (flowers-102 numbers its class folders)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name) if part]


def natural_order(names: list[str]) -> list[int]:
    """Indices of `names` in the order people read them ("2" before "10").

    Class indices keep ImageFolder's plain sorted order; lists shown to a user go through this.
    """
    return sorted(range(len(names)), key=lambda i: natural_key(names[i]))


def class_folders(root: Path) -> list[Path]:
    """Class folders of `root` in torchvision ImageFolder order (plain sorted names)."""
    return sorted((p for p in root.iterdir() if p.is_dir() and not is_ignored(p.name)), key=lambda p: p.name)


def class_files(folder: Path) -> list[Path]:
    """Every non-hidden file under a class folder (recursively, as ImageFolder), sorted."""
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).parts
        if any(is_ignored(part) for part in rel) or not path.is_file():
            continue
        found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def class_images(folder: Path) -> list[Path]:
    """The files of a class folder with an image extension."""
    return [p for p in class_files(folder) if is_image_name(p.name)]


def folder_signature(root: str | Path) -> str:
    """A cheap fingerprint that changes when files are added, removed or renamed in the class folders.

    Directory mtimes change on every such edit, so the page can re-scan only when needed.
    """
    root = Path(root)
    if not root.is_dir():
        return "missing"
    stamps = [f"{root.stat().st_mtime_ns}"]
    for entry in sorted(root.iterdir()):
        if entry.is_dir():
            stamps.append(f"{entry.name}:{entry.stat().st_mtime_ns}")
    return "|".join(stamps)
