"""Small hostile or broken files a user might hand the app, made on the fly (no fixtures on disk)."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

from PIL import Image

ESCAPE_NAME = "escaped-by-zip.txt"


def small_jpeg(path: Path, color: tuple[int, int, int] = (200, 40, 40), size: int = 64) -> Path:
    Image.new("RGB", (size, size), color).save(path, "JPEG", quality=90)
    return path


def truncated_jpeg(path: Path) -> Path:
    """A real JPEG cut in half, as an interrupted download leaves it."""
    buf = io.BytesIO()
    Image.effect_noise((256, 256), 64).convert("RGB").save(buf, "JPEG", quality=95)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def not_an_image(path: Path) -> Path:
    path.write_text("these are my notes, not a photo\n", encoding="utf-8")
    return path


def decompression_bomb(path: Path) -> Path:
    """A ~20 KB PNG that would decode to 144 million pixels (over open_image's limit)."""
    Image.new("1", (12_000, 12_000)).save(path, "PNG", optimize=False)
    return path


def empty_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w"):
        pass
    return path


def zip_slip(path: Path, depth: int = 8) -> Path:
    """A zip whose entries climb out of any folder it is extracted into ("zip slip")."""
    photo = io.BytesIO()
    Image.new("RGB", (32, 32), (0, 128, 0)).save(photo, "JPEG")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cats/ok.jpg", photo.getvalue())
        for level in range(1, depth + 1):
            archive.writestr("../" * level + ESCAPE_NAME, "written outside the workspace")
        archive.writestr("/tmp/" + ESCAPE_NAME, "absolute path entry")
    return path


def not_a_zip(path: Path) -> Path:
    path.write_bytes(b"PK\x03\x04 this only starts like a zip archive" + bytes(64))
    return path


def escaped_files(*roots: Path) -> list[Path]:
    """Any file the zip-slip archive managed to write, searched where its entries point."""
    found = []
    candidates = {Path("/tmp") / ESCAPE_NAME}
    for root in roots:
        for parent in [root, *root.parents]:
            candidates.add(parent / ESCAPE_NAME)
    found += [p for p in candidates if p.exists()]
    for root in roots:
        found += list(root.rglob(ESCAPE_NAME))
    return sorted(set(found))
