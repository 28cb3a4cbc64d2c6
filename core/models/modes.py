"""Using a model that others may hold too: one user at a time, and its modes handed back.

A loaded model can be shared (the Explain page caches one per checkpoint for every browser
tab). Anything that changes it while it runs - train/eval mode, hooks, `requires_grad`,
in-place flags - does so under the model's own lock (`exclusive`), and `evaluating` is the one
rule for "eval mode for a while, then each module's own mode back".
"""
from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from typing import Iterator

from torch import nn

_locks: "weakref.WeakKeyDictionary[nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The model's own re-entrant lock (created on first use, gone with the model)."""
    with _locks_guard:
        lock = _locks.get(model)
        if lock is None:
            lock = _locks[model] = threading.RLock()
        return lock


@contextmanager
def exclusive(model: nn.Module) -> Iterator[nn.Module]:
    """Hold `model` alone for the block: whatever it changes and restores, no other thread sees."""
    with model_lock(model):
        yield model


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """`model` in eval mode for the block (held exclusively), every module's own mode restored after.

    Restoring per module keeps a mixed model mixed (a frozen BatchNorm kept in eval inside a
    training network), which `model.train(was_training)` would flatten.
    """
    with model_lock(model):
        modes = [(module, module.training) for module in model.modules()]
        model.eval()
        try:
            yield model
        finally:
            for module, training in modes:
                module.training = training
