"""What a class is called on screen: the one rule for display names everywhere."""
from __future__ import annotations

from typing import Any


def field_of(info: Any, key: str, default: Any = None) -> Any:
    """`info[key]` whether `info` is a dict (a run's config, a split's info) or an object (ModelInfo)."""
    if isinstance(info, dict):
        return info.get(key, default)
    return getattr(info, key, default)


def class_names(info: Any) -> list[str]:
    """What to show for each class index: the display names (cat_to_name.json) when the split or
    run has one for every class, else the folder names."""
    classes = list(field_of(info, "classes") or [])
    shown = list(field_of(info, "display_names") or [])
    return shown if len(shown) == len(classes) else classes
