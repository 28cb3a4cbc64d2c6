"""Shared fixtures: a fresh workspace per test, and the real photo folder when present."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
CLOTHING = ROOT.parent / "shared" / "datasets" / "clothing-mini"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A fresh, empty workspace that the app, the CLI and core all see."""
    from core.workspace import ENV_VAR, Workspace

    root = tmp_path / "workspace"
    monkeypatch.setenv(ENV_VAR, str(root))
    return Workspace.open(root)


@pytest.fixture
def clothing() -> Path:
    if not CLOTHING.is_dir():
        pytest.skip("../shared/datasets/clothing-mini is not present")
    return CLOTHING
