"""Checkpoints that are never half-written and safe to load.

Writes go through `core.atomic` (a temporary file in the same folder, fsynced, renamed over the
old file): a process killed at any moment leaves either the previous checkpoint or the new one.
Loads use `weights_only=True`, so a checkpoint file cannot run code.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from core.atomic import replacing
from core.errors import UserError

FORMAT = "cnn-studio/1"


def save(obj: dict[str, Any], path: Path) -> None:
    with replacing(path, "wb") as f:
        torch.save({"format": FORMAT, **obj}, f)


def load(path: Path) -> dict[str, Any]:
    """The checkpoint dict, or a UserError saying why this file is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise UserError("training.checkpoint_missing", path=str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0][:200]  # an empty file's error has no text
        raise UserError("training.checkpoint_unreadable", path=str(path), reason=reason) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or "model" not in obj:
        raise UserError("training.checkpoint_foreign", path=str(path))
    return obj
