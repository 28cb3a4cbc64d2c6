"""Saved model specs: `WORKSPACE/models/<name>.json`, holding `{"name": ..., <reference>}`.

The Training page and the CLI pick models by these names, so a saved file must always be a
valid reference: it is checked before it is written, and written atomically.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.atomic import write_json
from core.errors import UserError
from core.models.zoo import check_ref, load_ref

NAME_PATTERN = re.compile(r"[\w][\w\- .]{0,63}")


def check_name(name: str) -> str:
    """A spec name safe as a file name (letters in any script, digits, - _ . and spaces)."""
    name = (name or "").strip()
    if not NAME_PATTERN.fullmatch(name) or name.endswith("."):
        raise UserError("models.bad_name", name=name)
    return name


def save_spec(models_dir: str | Path, name: str, ref: dict[str, Any], overwrite: bool = False) -> Path:
    name = check_name(name)
    ref = {k: v for k, v in ref.items() if k != "name"}
    check_ref(ref)
    path = Path(models_dir) / f"{name}.json"
    if path.exists() and not overwrite:
        raise UserError("models.spec_exists", name=name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"name": name, **ref})
    return path


def list_specs(models_dir: str | Path) -> list[str]:
    """Names of the saved specs, sorted; unreadable files are left out (the user may be editing)."""
    names = []
    for path in sorted(Path(models_dir).glob("*.json")):
        try:
            load_ref(path)
            names.append(path.stem)
        except UserError:
            continue
    return names


def load_spec(models_dir: str | Path, name: str) -> dict[str, Any]:
    path = Path(models_dir) / f"{check_name(name)}.json"
    if not path.is_file():
        raise UserError("models.ref_not_found", name=name)
    return load_ref(path) | {"name": name}


def duplicate_spec(models_dir: str | Path, name: str, new_name: str) -> Path:
    return save_spec(models_dir, new_name, load_spec(models_dir, name))


def delete_spec(models_dir: str | Path, name: str) -> None:
    path = Path(models_dir) / f"{check_name(name)}.json"
    if not path.is_file():
        raise UserError("models.ref_not_found", name=name)
    path.unlink()


def rename_spec(models_dir: str | Path, name: str, new_name: str) -> Path:
    """Save the spec under `new_name` and remove the old file; an existing `new_name` is refused.
    Runs already trained keep their own copy of the model in their config: nothing else changes."""
    new_name = check_name(new_name)
    if new_name == check_name(name):
        return Path(models_dir) / f"{new_name}.json"
    path = save_spec(models_dir, new_name, load_spec(models_dir, name))
    delete_spec(models_dir, name)
    return path
