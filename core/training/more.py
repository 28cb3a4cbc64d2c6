"""More epochs for a finished run: how people keep training a model that was still improving.

The run continues in its own folder from `last.pt` (weights, optimizer state, random states),
its epochs numbered on from where it stopped; `best.pt` changes only when validation accuracy
beats the run's best so far, and the test evaluation is redone at the end. The schedule: step,
plateau and a constant rate carry on where they are; cosine and one-cycle, which end at a set
epoch, run again over the added epochs from the starting rate (core.training.optim.FIXED_LENGTH).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from core import runs
from core.atomic import replacing, write_json
from core.errors import UserError
from core.training.config import TrainConfig

MAX_MORE = 1000


def add_epochs(run_dir: str | Path, more: int) -> TrainConfig:
    """Give a finished run `more` epochs (its new total: the epochs it did + `more`) and mark it
    queued; returns the config to train it with (Trainer.run(resume=True) continues it).

    The summary's `continued_from` (the epoch it continues from) tells the trainer to restart
    the patience count and a fixed-length schedule, also when the continuation is resumed
    after a stop before its first new epoch."""
    run_dir = Path(run_dir)
    summary = runs.read_summary(run_dir)
    status = summary.get("status")
    if status != "finished":
        raise UserError("training.more_not_finished", run=run_dir.name, status=status or "?")
    if isinstance(more, bool) or not isinstance(more, int) or not 1 <= more <= MAX_MORE:
        raise UserError("training.more_count", value=more, most=MAX_MORE)
    if not (run_dir / "last.pt").is_file():
        raise UserError("training.checkpoint_missing", path=str(run_dir / "last.pt"))
    done = int(summary.get("epochs_done", 0))
    saved = runs.read_config(run_dir)
    config = dataclasses.replace(TrainConfig.of_run(saved), epochs=done + more).validated()
    write_json(run_dir / "config.json", saved | {"epochs": config.epochs})
    _drop_notes(run_dir)
    runs.update_summary(run_dir, status="queued", continued_from=done, message="", message_key="",
                        message_params={}, **runs.owner())
    return config


def _drop_notes(run_dir: Path) -> None:
    """An "early stopped" note no longer holds once the run trains on."""
    records = runs.read_metrics(run_dir)
    if any(r.get("type") == "note" for r in records):
        with replacing(run_dir / "metrics.jsonl") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records if r.get("type") != "note")
