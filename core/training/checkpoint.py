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


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every random state a resumed run needs to continue exactly: torch's CPU generator, the
    batch order's generator and, on CUDA, each GPU's (dropout and augmentation on the device)."""
    return {"rng_torch": torch.get_rng_state(), "rng_generator": generator.get_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    """Put back what `rng_state` saved; a checkpoint from a machine with more GPUs restores the
    ones this machine has, one without CUDA states leaves the GPUs' as they are."""
    torch.set_rng_state(state["rng_torch"])
    generator.set_state(state["rng_generator"])
    cuda = list(state.get("rng_cuda") or [])
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])
