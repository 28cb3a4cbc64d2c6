"""Renaming and deleting runs (Compare page's run management, and any script)."""
from __future__ import annotations

import json

import pytest

from core import runs
from core.data.split import USES_DIR, record_use
from core.errors import UserError


def make_run(runs_dir, run_id: str, status: str, split=None, name: str = ""):
    run = runs_dir / run_id
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": {"preset": "simple_cnn"}, "name": name,
                                                 "data": str(split or "")}))
    (run / "summary.json").write_text(json.dumps({"status": status, "created": 1.0}))
    (run / "best.pt").write_bytes(b"weights")
    if split is not None:
        record_use(split, run)
    return run


def test_rename_changes_the_shown_name_not_the_folder(tmp_path):
    run = make_run(tmp_path, "20261130-085209-simple_cnn", "finished", name="from config")
    assert runs.run_info(run).name == "from config"
    assert runs.rename_run(run, "  my   best  run ") == "my best run"
    info = runs.run_info(run)
    assert (info.name, info.id) == ("my best run", "20261130-085209-simple_cnn") and run.is_dir()
    runs.update_summary(run, status="finished", test_acc=0.9)  # training's later writes keep it
    assert runs.display_name(run) == "my best run"
    for bad in ("", "   ", "x" * 61):
        with pytest.raises(UserError):
            runs.rename_run(run, bad)
    assert runs.display_name(run) == "my best run"


@pytest.mark.parametrize("status", ["running", "queued"])
def test_a_running_or_queued_run_is_never_deleted(tmp_path, status):
    run = make_run(tmp_path, "r1", status)
    with pytest.raises(UserError) as err:
        runs.delete_run(run)
    assert err.value.key == f"runs.delete_{status}"
    assert (run / "best.pt").read_bytes() == b"weights"


def test_delete_removes_the_folder_and_its_split_marker(tmp_path):
    split = tmp_path / "splits" / "demo"
    split.mkdir(parents=True)
    keep = make_run(tmp_path / "runs", "r1", "finished", split)
    gone = make_run(tmp_path / "runs", "r2", "stopped", split)
    runs.delete_run(gone)
    assert not gone.exists() and keep.is_dir()
    assert sorted(p.name for p in (split / USES_DIR).iterdir()) == ["r1.json"]
    assert [r.id for r in runs.list_runs(tmp_path / "runs")] == ["r1"]
    with pytest.raises(UserError):
        runs.delete_run(gone)


def test_a_deletion_cut_short_is_not_listed(tmp_path):
    make_run(tmp_path, "r1", "finished")
    half = make_run(tmp_path, ".deleting-r2", "finished")  # what a crash in the middle of a deletion leaves
    assert half.is_dir() and [r.id for r in runs.list_runs(tmp_path)] == ["r1"]
