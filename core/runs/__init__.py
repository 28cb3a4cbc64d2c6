"""Runs: one folder each (`folder`: create, find, list, read, statuses) and their comparison (`compare`).

`from core import runs` gives the folder functions: `runs.read_config(run_dir)`, `runs.list_runs(...)`.
"""
from __future__ import annotations

from core.runs.folder import (
    CHECKPOINTS, RESUMABLE, STATUSES, RunInfo, append_metrics, checkpoint_stamp, create_run, delete_run,
    display_name, find_run, list_runs, mark_interrupted, new_run_dir, owner, read_config, read_metrics, read_summary,
    rename_run, resume_from_checkpoint, run_folders, run_info, runs_with_weights, truncate_metrics,
    update_summary,
)

__all__ = [
    "CHECKPOINTS", "RESUMABLE", "STATUSES", "RunInfo", "append_metrics", "checkpoint_stamp", "create_run",
    "delete_run", "display_name", "find_run", "list_runs", "mark_interrupted", "new_run_dir", "owner", "read_config", "read_metrics",
    "read_summary", "rename_run", "resume_from_checkpoint", "run_folders", "run_info", "runs_with_weights",
    "truncate_metrics", "update_summary",
]
