"""Files written whole or not at all: the one helper every small file and checkpoint goes through.

A write goes to a unique temporary file beside the target (so two writers never share one),
is flushed and fsynced, then renamed over the target with `os.replace`: a reader, or a process
killed at any moment, sees the old file or the new one, never half of one.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator


@contextmanager
def replacing(path: str | Path, mode: str = "w", **open_args: Any) -> Iterator[IO]:
    """An open temporary file that replaces `path` when the block ends without an error."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    if "b" not in mode:
        open_args.setdefault("encoding", "utf-8")
    try:
        with os.fdopen(fd, mode, **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as f:
        f.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def read_json(path: str | Path) -> dict[str, Any]:
    """The JSON object in `path`, or {} when the file is missing, unreadable or not an object."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
