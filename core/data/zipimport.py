"""Import an uploaded .zip of class folders into the workspace, safely.

A zip is untrusted input: an entry may try to write outside the target (`../x`, `/etc/x`,
a symbolic link), or be a zip bomb. Such a zip is refused as a whole with a message naming
the entry or the limit; sizes are checked both as declared and as actually written.
"""
from __future__ import annotations

import io
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from core.data.files import is_ignored
from core.data.scan import find_root
from core.errors import UserError

MAX_TOTAL_BYTES = 4 * 1024**3
MAX_FILES = 200_000
MAX_RATIO = 200  # uncompressed / compressed size; photos barely compress, bombs compress ~1000x
_CHUNK = 1024 * 1024


def _entry_path(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The entry's safe relative path, None for entries to leave out; raises for unsafe ones."""
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in path.parts:
        raise UserError("data.zip_unsafe", entry=info.filename)
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UserError("data.zip_link", entry=info.filename)
    if any(is_ignored(part) for part in path.parts):
        return None
    return path


def safe_name(name: str) -> str:
    """A folder name from an upload's file name: letters (any script), digits, - and _."""
    stem = re.sub(r"[^\w\-]+", "_", Path(name).stem, flags=re.UNICODE).strip("_")
    return stem or "dataset"


def import_zip(
    source: str | Path | bytes | BinaryIO,
    datasets_dir: str | Path,
    name: str | None = None,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_files: int = MAX_FILES,
    max_ratio: float = MAX_RATIO,
) -> Path:
    """Extract `source` into a new folder under `datasets_dir` and return that folder."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    label = name or (Path(source).name if isinstance(source, (str, Path)) else getattr(source, "name", "upload.zip"))
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as err:
        raise UserError("data.zip_bad", name=label, reason=str(err)) from None
    datasets_dir = Path(datasets_dir)
    datasets_dir.mkdir(parents=True, exist_ok=True)
    with archive:
        entries = [(info, path) for info in archive.infolist() if (path := _entry_path(info)) is not None]
        files = [(info, path) for info, path in entries if not info.is_dir()]
        if len(files) > max_files:
            raise UserError("data.zip_too_many", name=label, count=len(files), limit=max_files)
        declared = sum(info.file_size for info, _ in files)
        if declared > max_total_bytes:
            raise UserError("data.zip_too_big", name=label, size_mb=declared // 2**20, limit_mb=max_total_bytes // 2**20)
        for info, _ in files:
            if info.file_size > 1024**2 and info.file_size > max_ratio * max(info.compress_size, 1):
                raise UserError("data.zip_ratio", name=label, entry=info.filename, limit=max_ratio)

        target = _unique(datasets_dir / safe_name(label))
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=datasets_dir))
        try:
            written = 0
            for info, path in files:
                dest = tmp.joinpath(*path.parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, dest.open("wb") as out:
                    # Declared sizes can lie: count what is really written.
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        if written > max_total_bytes:
                            raise UserError("data.zip_too_big", name=label, size_mb=written // 2**20,
                                            limit_mb=max_total_bytes // 2**20)
                        out.write(chunk)
            try:  # a zip without class folders is refused before it takes a name in the workspace
                find_root(tmp)
            except UserError:
                raise UserError("data.no_classes", path=label) from None
            tmp.rename(target)
        except zipfile.BadZipFile as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UserError("data.zip_bad", name=label, reason=str(err)) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _unique(path: Path) -> Path:
    """`path`, or `path-2`, `path-3`... so an import never overwrites an earlier one."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate
