"""The workspace folder: datasets, splits, saved model specs, runs and caches live here."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from core.atomic import write_json

ENV_VAR = "CNN_STUDIO_WORKSPACE"


def default_root() -> Path:
    return Path(os.environ.get(ENV_VAR) or "workspace").expanduser().resolve()


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def open(cls, root: str | Path | None = None) -> "Workspace":
        ws = cls(Path(root).expanduser().resolve() if root else default_root())
        for folder in (ws.datasets, ws.splits, ws.models, ws.runs, ws.cache):
            folder.mkdir(parents=True, exist_ok=True)
        return ws

    @property
    def datasets(self) -> Path:
        """Class-folder datasets: the demo set, extracted zips."""
        return self.root / "datasets"

    @property
    def splits(self) -> Path:
        """train/val/test splits made from a dataset."""
        return self.root / "splits"

    @property
    def models(self) -> Path:
        """Model specs saved from the Model page, one JSON file each."""
        return self.root / "models"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def cache(self) -> Path:
        """Decoded-image caches; safe to delete."""
        return self.root / "cache"

    # Small settings that should survive a browser reload or an app restart.
    @property
    def _state_file(self) -> Path:
        return self.root / "state.json"

    def state(self) -> dict:
        try:
            return json.loads(self._state_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def remember(self, **values: object) -> None:
        write_json(self._state_file, self.state() | values)
