"""More epochs for a finished run: it continues in place from last.pt (epochs and metrics go on,
no duplicates; the optimizer state carries over), best.pt changes only on improvement, the
summary and Compare see the longer run; cosine and one-cycle start again over the added epochs."""
from __future__ import annotations

import math
import threading

import pytest

from core import runs
from core.cli import main
from core.errors import UserError
from core.runs import compare
from core.training import checkpoint, engine
from core.training.more import add_epochs
from tests.unit.test_training_core import cache, config, epoch_figures, split, train  # noqa: F401 - fixtures


pytestmark = pytest.mark.usefixtures("steady_threads")  # conftest.py


def continued(cfg_run, cache, more: int, **hooks) -> dict:
    """Add `more` epochs to a finished run and train them, as the page's button and the CLI do."""
    run_dir, _ = cfg_run
    cfg = add_epochs(run_dir, more)
    _, summary = train(cfg, run_dir.parent, cache, run_dir=run_dir, resume=True, **hooks)
    return summary


def test_more_epochs_continue_the_run_exactly_as_a_longer_one(split, cache, tmp_path):
    """2 epochs, then 2 more: the same figures as 4 epochs in one go (weights, optimizer state,
    step schedule and random states all carried over), each epoch and step once."""
    reference, _ = train(config(split, epochs=4, scheduler="step", step_size=3, gamma=0.5), tmp_path / "a", cache)
    run = train(config(split, epochs=2, scheduler="step", step_size=3, gamma=0.5), tmp_path / "b", cache)
    before = runs.read_summary(run[0])
    summary = continued(run, cache, 2)
    run_dir = run[0]
    assert summary["status"] == "finished" and summary["epochs_done"] == 4 and runs.read_config(run_dir)["epochs"] == 4
    assert [r["epoch"] for r in runs.read_metrics(run_dir, "epoch")] == [1, 2, 3, 4]
    steps = [r["step"] for r in runs.read_metrics(run_dir, "iter")]
    assert steps == sorted(set(steps)) and steps[-1] == 16  # 4 epochs x 4 batches, none twice
    for got, want in zip(epoch_figures(run_dir), epoch_figures(reference)):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert summary["seconds"] > before["seconds"] and summary["test_acc"] == pytest.approx(
        runs.read_summary(reference)["test_acc"])
    # Compare reads the longer run
    assert run_dir in compare.comparable_runs(tmp_path / "b")
    view = compare.load_view(run_dir)
    assert len(view.epochs) == 4 and compare.metrics_table([view])["epochs"].tolist() == [4]


def test_best_pt_changes_only_when_validation_accuracy_improves(split, cache, tmp_path, monkeypatch):
    run = train(config(split, epochs=2), tmp_path, cache)
    best = checkpoint.load(run[0] / "best.pt")
    saved = (run[0] / "best.pt").read_bytes()
    real = engine.loss_and_accuracy
    worse = {"on": True}

    def accuracy(probs, labels):
        loss = real(probs, labels)[0]
        return (loss, 0.0) if worse["on"] else (loss, 1.0)

    monkeypatch.setattr(engine, "loss_and_accuracy", accuracy)
    summary = continued(run, cache, 1)
    assert (run[0] / "best.pt").read_bytes() == saved  # no better epoch: the best weights stay
    assert summary["best_val_acc"] == pytest.approx(best["val_acc"])
    worse["on"] = False
    summary = continued(run, cache, 1)
    assert checkpoint.load(run[0] / "best.pt")["epoch"] == 4 and summary["best_val_acc"] == 1.0


def test_cosine_and_one_cycle_start_again_over_the_added_epochs(split, cache, tmp_path):
    lr = 1e-3
    run = train(config(split, epochs=2, scheduler="cosine", lr=lr), tmp_path / "cos", cache)
    continued(run, cache, 2)
    # the lr each epoch trained with: cosine over 2 epochs, then again over the 2 added
    assert [r["lr"] for r in runs.read_metrics(run[0], "epoch")] == pytest.approx([lr, lr / 2, lr, lr / 2])

    run = train(config(split, epochs=1, scheduler="onecycle", lr=lr, log_every=1), tmp_path / "one", cache)
    summary = continued(run, cache, 1)  # stepping the ended cycle further would raise
    assert summary["status"] == "finished"
    per_epoch = [[r["lr"] for r in runs.read_metrics(run[0], "iter") if r["epoch"] == e] for e in (1, 2)]
    assert len(per_epoch[0]) == 4 and per_epoch[1] == pytest.approx(per_epoch[0])  # the same cycle again


def test_a_continuation_stopped_midway_resumes_to_the_same_result(split, cache, tmp_path):
    cfg = {"epochs": 2, "scheduler": "cosine"}
    whole = train(config(split, **cfg), tmp_path / "a", cache)
    continued(whole, cache, 2)
    cut = train(config(split, **cfg), tmp_path / "b", cache)
    stop = threading.Event()
    summary = continued(cut, cache, 2, stop=stop,
                        on_progress=lambda p: stop.set() if (p.get("epoch"), p.get("batch")) == (3, 2) else None)
    assert summary["status"] == "stopped" and summary["epochs_done"] == 2
    _, summary = train(config(split, **cfg), tmp_path / "b", cache, run_dir=cut[0], resume=True)
    assert summary["status"] == "finished"
    for got, want in zip(epoch_figures(cut[0]), epoch_figures(whole[0])):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_an_early_stopped_run_trains_the_added_epochs_with_fresh_patience(split, cache, tmp_path, monkeypatch):
    real = engine.loss_and_accuracy
    monkeypatch.setattr(engine, "loss_and_accuracy", lambda p, y: (real(p, y)[0], 0.5))  # never improves
    run = train(config(split, epochs=6, early_stop_patience=2), tmp_path, cache)
    assert runs.read_summary(run[0])["epochs_done"] == 3  # epochs 2 and 3 without progress
    assert any(r["type"] == "note" for r in runs.read_metrics(run[0]))
    summary = continued(run, cache, 1)
    assert summary["epochs_done"] == 4 and runs.read_config(run[0])["epochs"] == 4
    # one more epoch without progress is within a fresh patience of 2: no new note, the old one gone
    assert not any(r["type"] == "note" for r in runs.read_metrics(run[0]))


def test_only_a_finished_run_gets_more_epochs(split, cache, tmp_path):
    from tests.unit.test_training_core import stop_after_epoch

    stopped, _ = train(config(split, epochs=3), tmp_path, cache, **stop_after_epoch(1))
    with pytest.raises(UserError) as err:
        add_epochs(stopped, 2)
    assert err.value.key == "training.more_not_finished"
    finished, _ = train(config(split), tmp_path, cache)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(UserError) as err:
            add_epochs(finished, bad)
        assert err.value.key == "training.more_count"
    assert runs.read_summary(finished)["status"] == "finished" and runs.read_config(finished)["epochs"] == 1


def test_the_cli_adds_epochs_to_a_finished_run(workspace, split, cache, capsys):
    import json

    run_dir, _ = train(config(split, epochs=1), workspace.runs, cache)
    assert main(["train", "--resume", run_dir.name, "--more-epochs", "2", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [r["epoch"] for r in lines if "epoch" in r] == [2, 3]
    assert lines[-1]["summary"]["status"] == "finished" and lines[-1]["summary"]["epochs_done"] == 3
    for argv, key in ((["--resume", run_dir.name, "--epochs", "5"], "training.cli.resume_epochs"),
                      (["--data", str(split), "--more-epochs", "2"], "training.cli.more_needs_resume")):
        assert main(["train", *argv, "--json"]) == 2
        assert json.loads(capsys.readouterr().out.splitlines()[0])["key"] == key
    assert not math.isnan(runs.read_summary(run_dir)["test_acc"])
