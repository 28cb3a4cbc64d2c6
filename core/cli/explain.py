"""Sub-commands for this part of the app (filled in by its issue)."""
from __future__ import annotations


def register(sub) -> None:
    pass
