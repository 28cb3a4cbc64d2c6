"""core.training: a run learns, stops, resumes exactly, survives a failed checkpoint write and
a NaN loss; checkpoints and configs are checked; evaluation matches scikit-learn."""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score

import core
from core.data.demo import make_demo
from core.data.split import split_dataset
from core.errors import UserError
from core.models import build_model
from core import atomic, runs
from core.training import checkpoint, engine
from core.training.config import OPTIMIZERS, SCHEDULERS, TrainConfig
from core.runs import create_run
from core.training.engine import Trainer
from core.training.evaluate import metrics

# A small network (a few thousand weights) keeps the tests fast; the presets have their own tests.
TINY = {"spec": {"name": "tiny", "blocks": [{"out": 8, "bn": True, "pool": "max"}, {"out": 16, "bn": True, "pool": "max"}],
                 "head": {"hidden": [32], "dropout": 0.2}}}
# Compared between an uninterrupted run and a stopped-then-resumed one (timings left out).
EPOCH_FIGURES = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    """5 classes x 24 demo images at 32 px: 60 train (4 batches of 16), 30 val, 30 test."""
    root = tmp_path_factory.mktemp("training-data")
    make_demo(root / "demo", classes=5, per_class=24, size=32, seed=0)
    split_dataset(root / "demo", root / "split", val=0.25, test=0.25, seed=0)
    return root / "split"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("training-cache")


def config(split: Path, **changes) -> TrainConfig:
    values = dict(data=str(split), model=TINY, img_size=32, batch_size=16, epochs=1,
                  augment="light", seed=3, log_every=2)
    return TrainConfig(**(values | changes)).validated()


def train(cfg: TrainConfig, runs_dir: Path, cache: Path, run_dir: Path | None = None, **hooks) -> tuple[Path, dict]:
    resume = hooks.pop("resume", False)
    run_dir = run_dir or create_run(cfg, runs_dir)
    summary = Trainer(cfg, run_dir, cache_dir=cache, **hooks).run(resume=resume)
    return run_dir, summary


def epoch_figures(run_dir: Path) -> list[dict]:
    return [{k: r[k] for k in EPOCH_FIGURES} for r in runs.read_metrics(run_dir, "epoch")]


@pytest.fixture(scope="module")
def full_run(split, cache, tmp_path_factory) -> Path:
    """Three uninterrupted epochs: the reference the other tests compare against."""
    cfg = config(split, epochs=3)
    run_dir, summary = train(cfg, tmp_path_factory.mktemp("runs"), cache)
    assert summary["status"] == "finished"
    return run_dir


def stop_after_epoch(n: int):
    """Hooks that set the stop event when epoch `n`'s record arrives (an epoch boundary)."""
    import threading

    stop = threading.Event()

    def on_record(record: dict) -> None:
        if record["type"] == "epoch" and record["epoch"] == n:
            stop.set()

    return {"stop": stop, "on_record": on_record}


# --- a run learns and leaves its files -------------------------------------------------------
def test_a_run_learns_and_writes_its_folder(full_run):
    epochs = runs.read_metrics(full_run, "epoch")
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    assert epochs[-1]["val_acc"] > epochs[0]["val_acc"] and epochs[-1]["val_acc"] >= 0.4  # chance is 0.2
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert all(r["img_per_s"] > 0 and r["seconds"] > 0 for r in epochs)
    iters = runs.read_metrics(full_run, "iter")
    assert iters and all(np.isfinite(r["loss"]) for r in iters) and iters[-1]["step"] == 12  # 3 epochs x 4 batches

    summary = runs.read_summary(full_run)
    assert summary["status"] == "finished" and summary["epochs_done"] == 3
    assert summary["best_val_acc"] == max(r["val_acc"] for r in epochs)
    assert 0 <= summary["test_acc"] <= 1 and summary["test_top5"] == 1.0  # 5 classes: top-5 is everything
    assert summary["params"] > 0 and summary["flops"] > 0 and summary["img_per_s"] > 0

    config_json = runs.read_config(full_run)
    assert config_json["classes"] == ["circle", "cross", "square", "star", "triangle"]
    assert TrainConfig.from_dict({k: v for k, v in config_json.items() if k in TrainConfig.__dataclass_fields__})

    rows = (full_run / "predictions.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "path,true,pred,confidence,loss" and len(rows) == 1 + 30
    evaluation = json.loads((full_run / "eval_test.json").read_text(encoding="utf-8"))
    assert evaluation["accuracy"] == pytest.approx(summary["test_acc"]) and evaluation["n"] == 30
    assert np.array(evaluation["confusion"]).sum() == 30
    assert not list(full_run.glob(".*.tmp")) and not list(full_run.glob(".*"))

    assert checkpoint.load(full_run / "last.pt")["epoch"] == 3
    assert checkpoint.load(full_run / "best.pt")["val_acc"] == pytest.approx(summary["best_val_acc"])


def test_load_model_and_predict_match_the_evaluation(full_run, split):
    model, info = core.load_model(full_run)
    assert not model.training and next(model.parameters()).device.type == "cpu"
    assert info.classes == ["circle", "cross", "square", "star", "triangle"] and info.img_size == 32
    assert info.model == TINY and info.checkpoint == "best.pt" and len(info.mean) == 3
    rows = [line.split(",") for line in (full_run / "predictions.csv").read_text(encoding="utf-8").splitlines()[1:6]]
    images = [split / "test" / row[0] for row in rows]
    probs = core.predict(model, images, info)
    assert probs.shape == (5, 5) and torch.allclose(probs.sum(1), torch.ones(5), atol=1e-5)
    # the same preprocessing as training's evaluation path: the same predictions and confidences
    assert [info.classes[i] for i in probs.argmax(1).tolist()] == [row[2] for row in rows]
    assert probs.max(1).values.tolist() == pytest.approx([float(row[3]) for row in rows], abs=1e-4)
    assert torch.allclose(core.predict(full_run, images[:2]), probs[:2], atol=1e-6)


# --- stop and resume -------------------------------------------------------------------------
def test_resume_after_a_stop_reproduces_the_uninterrupted_run(full_run, split, cache, tmp_path):
    cfg = config(split, epochs=3)
    run_dir, summary = train(cfg, tmp_path, cache, **stop_after_epoch(1))
    assert summary["status"] == "stopped" and summary["epochs_done"] == 1
    assert checkpoint.load(run_dir / "last.pt")["epoch"] == 1

    _, summary = train(cfg, tmp_path, cache, run_dir=run_dir, resume=True)
    assert summary["status"] == "finished" and summary["epochs_done"] == 3
    resumed, reference = epoch_figures(run_dir), epoch_figures(full_run)
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    for got, want in zip(resumed, reference):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert summary["test_acc"] == pytest.approx(runs.read_summary(full_run)["test_acc"])


def test_stop_mid_epoch_takes_effect_within_a_batch_and_leaves_a_loadable_last_pt(split, cache, tmp_path):
    import threading

    stop, seen = threading.Event(), []

    def on_progress(progress: dict) -> None:
        seen.append((progress["epoch"], progress["batch"]))
        if (progress["epoch"], progress["batch"]) == (2, 2):
            stop.set()

    cfg = config(split, epochs=2)
    run_dir, summary = train(cfg, tmp_path, cache, stop=stop, on_progress=on_progress)
    assert seen[-1] == (2, 2)  # no batch after the one that asked to stop
    assert summary["status"] == "stopped" and summary["epochs_done"] == 1
    state = checkpoint.load(run_dir / "last.pt")
    assert state["epoch"] == 1 and {"optimizer", "rng_torch", "rng_generator", "step"} <= set(state)
    model, info = core.load_model(run_dir, which="last")
    assert info.checkpoint == "last.pt" and not model.training
    assert not list(run_dir.glob(".*"))

    _, summary = train(cfg, tmp_path, cache, run_dir=run_dir, resume=True)
    assert summary["status"] == "finished" and summary["epochs_done"] == 2
    assert [r["epoch"] for r in runs.read_metrics(run_dir, "epoch")] == [1, 2]  # the partial epoch redone once


def test_one_cycle_resumes_after_a_mid_epoch_stop(split, cache, tmp_path):
    """A per-step scheduler must not be stepped past its end when the cut epoch is redone."""
    import threading

    stop = threading.Event()
    cfg = config(split, epochs=2, scheduler="onecycle", augment="none")
    run_dir, summary = train(cfg, tmp_path, cache, stop=stop,
                             on_progress=lambda p: stop.set() if (p["epoch"], p["batch"]) == (2, 3) else None)
    assert summary["status"] == "stopped"
    _, summary = train(cfg, tmp_path, cache, run_dir=run_dir, resume=True)
    assert summary["status"] == "finished" and summary["epochs_done"] == 2


def test_resume_needs_a_checkpoint(split, cache, tmp_path):
    cfg = config(split)
    run_dir = create_run(cfg, tmp_path)
    with pytest.raises(UserError) as err:
        Trainer(cfg, run_dir, cache_dir=cache).run(resume=True)
    assert err.value.key == "training.checkpoint_missing"
    assert runs.read_summary(run_dir)["status"] == "failed"


# --- failures --------------------------------------------------------------------------------
@pytest.mark.parametrize("failing", ["torch.save", "os.fsync"])
def test_a_checkpoint_write_killed_midway_leaves_the_previous_one(full_run, tmp_path, monkeypatch, failing):
    path = tmp_path / "last.pt"
    shutil.copy(full_run / "last.pt", path)
    before = path.read_bytes()

    def torch_save_dies(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    def fsync_dies(fd):
        raise OSError("power cut")

    if failing == "torch.save":
        monkeypatch.setattr(checkpoint.torch, "save", torch_save_dies)
    else:
        monkeypatch.setattr(atomic.os, "fsync", fsync_dies)
    with pytest.raises(OSError):
        checkpoint.save({"model": {}, "epoch": 99}, path)
    assert path.read_bytes() == before
    assert checkpoint.load(path)["epoch"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left


def test_a_failed_checkpoint_write_fails_the_run_and_keeps_the_last_good_one(split, cache, tmp_path, monkeypatch):
    real_save, calls = checkpoint.save, []

    def save_then_die(obj, path):
        calls.append(Path(path).name)
        if obj.get("epoch") == 2 and Path(path).name == "last.pt":
            raise OSError("no space left on device")
        real_save(obj, path)

    monkeypatch.setattr(checkpoint, "save", save_then_die)
    cfg = config(split, epochs=2)
    run_dir = create_run(cfg, tmp_path)
    with pytest.raises(OSError):
        Trainer(cfg, run_dir, cache_dir=cache).run()
    summary = runs.read_summary(run_dir)
    assert summary["status"] == "failed" and "no space left" in summary["message"]
    assert checkpoint.load(run_dir / "last.pt")["epoch"] == 1
    assert not list(run_dir.glob(".*"))


def test_nan_loss_stops_the_run_naming_epoch_and_step(split, cache, tmp_path, monkeypatch):
    class PoisonedLoss(torch.nn.CrossEntropyLoss):
        """Finite for the first two steps of epoch 2, then NaN (step 7 overall, 3rd of the epoch)."""
        calls = 0

        def forward(self, logits, target):
            PoisonedLoss.calls += 1
            loss = super().forward(logits, target)
            return loss * float("nan") if PoisonedLoss.calls >= 7 else loss

    monkeypatch.setattr(engine.nn, "CrossEntropyLoss", PoisonedLoss)
    cfg = config(split, epochs=2, log_every=10)
    run_dir = create_run(cfg, tmp_path)
    with pytest.raises(UserError) as err:
        Trainer(cfg, run_dir, cache_dir=cache).run()
    assert err.value.key == "training.nan_loss" and err.value.params == {"epoch": 2, "step": 7}
    summary = runs.read_summary(run_dir)
    assert summary["status"] == "failed" and summary["message_key"] == "training.nan_loss"
    assert "epoch 2" in summary["message"] and "step 7" in summary["message"] and "learning rate" in summary["message"]
    assert "7" in err.value.message("zh")
    assert checkpoint.load(run_dir / "last.pt")["epoch"] == 1


def test_a_huge_learning_rate_fails_with_the_nan_message(split, cache, tmp_path):
    cfg = config(split, epochs=1, lr=1e12, optimizer="sgd", augment="none")
    with pytest.raises(UserError) as err:
        train(cfg, tmp_path, cache)
    assert err.value.key == "training.nan_loss" and err.value.params["epoch"] == 1


# --- load_model refuses what is not this run's checkpoint -------------------------------------
@pytest.fixture
def run_copy(full_run, tmp_path) -> Path:
    """A run folder with the full run's config and no checkpoint yet."""
    run_dir = tmp_path / "copy"
    run_dir.mkdir()
    shutil.copy(full_run / "config.json", run_dir / "config.json")
    return run_dir


def foreign_files(run_copy: Path) -> dict:
    classes = runs.read_config(run_copy)["classes"]
    return {
        "another model": lambda p: checkpoint.save(
            {"model": build_model({"preset": "cbam_cnn"}, 5, 32).state_dict(), "classes": classes, "img_size": 32}, p),
        "another class count": lambda p: checkpoint.save(
            {"model": build_model({"preset": "simple_cnn"}, 3, 32).state_dict(), "classes": classes[:3],
             "img_size": 32}, p),
        "same classes, other head": lambda p: checkpoint.save(
            {"model": build_model({"preset": "simple_cnn"}, 3, 32).state_dict(), "classes": classes, "img_size": 32}, p),
        "another image size": lambda p: checkpoint.save(
            {"model": build_model({"preset": "simple_cnn"}, 5, 64).state_dict(), "classes": classes, "img_size": 64}, p),
        "random bytes": lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
        "empty file": lambda p: p.write_bytes(b""),
        "a pickle of a dict": lambda p: p.write_bytes(pickle.dumps({"weights": [1, 2, 3]})),
        "a pickle that runs code": lambda p: p.write_bytes(pickle.dumps(Exploit())),
        "a plain torch file": lambda p: torch.save({"model": {}, "note": "not ours"}, p),
        "a bare state dict": lambda p: torch.save(build_model({"preset": "simple_cnn"}, 5, 32).state_dict(), p),
    }


class Exploit:
    def __reduce__(self):
        return (Path("/tmp/cnn-studio-pwned").touch, ())


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("kind", ["another model", "another class count", "same classes, other head",
                                  "another image size", "random bytes", "empty file", "a pickle of a dict",
                                  "a pickle that runs code", "a plain torch file", "a bare state dict"])
def test_load_model_refuses_a_foreign_or_mismatched_file(run_copy, kind):
    foreign_files(run_copy)[kind](run_copy / "best.pt")
    with pytest.raises(UserError) as err:
        core.load_model(run_copy)
    assert err.value.key in ("training.checkpoint_mismatch", "training.checkpoint_unreadable",
                             "training.checkpoint_foreign")
    assert "best.pt" in err.value.message() and "Traceback" not in err.value.message()
    assert not Path("/tmp/cnn-studio-pwned").exists()


def test_load_model_refuses_a_folder_that_is_not_a_run(tmp_path, run_copy):
    with pytest.raises(UserError) as err:
        core.load_model(tmp_path / "nowhere")
    assert err.value.key == "training.not_a_run"
    with pytest.raises(UserError) as err:
        core.load_model(run_copy)  # a run that never saved a checkpoint
    assert err.value.key == "training.checkpoint_missing"


# --- interrupted runs ------------------------------------------------------------------------
def test_a_run_left_running_by_a_dead_process_is_interrupted_and_resumes(split, cache, tmp_path):
    import subprocess
    import sys

    from core.training.jobs import JobRegistry

    cfg = config(split, epochs=2, augment="none")
    run_dir, _ = train(cfg, tmp_path, cache, **stop_after_epoch(1))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runs.update_summary(run_dir, status="running", pid=dead.pid)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        other = create_run(config(split, name="elsewhere"), tmp_path, status="running")
        runs.update_summary(other, pid=alive.pid)  # trained by another live process: left alone

        registry = JobRegistry()
        registry.attach(tmp_path)
        assert runs.read_summary(run_dir)["status"] == "interrupted"
        assert runs.read_summary(other)["status"] == "running"
        assert {r.id: r.status for r in runs.list_runs(tmp_path)}[run_dir.name] == "interrupted"
    finally:
        alive.kill()
        alive.wait()

    assert registry.resume(run_dir, cache_dir=cache) == run_dir.name
    assert registry.wait(timeout=120)
    summary = runs.read_summary(run_dir)
    assert summary["status"] == "finished" and summary["epochs_done"] == 2
    assert registry.snapshot(run_dir.name)["status"] == "finished"
    assert [r["epoch"] for r in runs.read_metrics(run_dir, "epoch")] == [1, 2]
    with pytest.raises(UserError) as err:
        registry.resume(run_dir)  # finished: nothing to resume
    assert err.value.key == "training.cannot_resume"


# --- evaluation ------------------------------------------------------------------------------
def test_metrics_match_scikit_learn_on_a_hand_made_example():
    classes = ["a", "b", "c", "d", "e"]
    rng = np.random.default_rng(7)
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4])
    logits = rng.normal(size=(len(labels), 5))
    logits[np.arange(len(labels)), labels] += np.array([3, 3, -2, 3, -1, 3, 3, 0, -3, 3, 0.5, 3])
    probs = torch.softmax(torch.tensor(logits, dtype=torch.float32), 1)
    result = metrics(probs, torch.tensor(labels), classes)

    pred = probs.argmax(1).numpy()
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=range(5), zero_division=0)
    assert result["accuracy"] == pytest.approx((pred == labels).mean())
    assert result["n"] == 12 and result["classes"] == classes
    for i, row in enumerate(result["per_class"]):
        assert row["class"] == classes[i]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
    assert result["confusion"] == confusion_matrix(labels, pred, labels=range(5)).tolist()
    for k in (1, 3):
        assert result[f"top{k}"] == pytest.approx(top_k_accuracy_score(labels, probs.numpy(), k=k, labels=range(5)))
    assert 0 < result["top1"] < result["top3"] < result["top5"] == 1  # the example is not trivial


def test_metrics_count_a_class_never_predicted():
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.9, 0.0]])
    result = metrics(probs, torch.tensor([0, 2, 1]), ["x", "y", "z"])
    assert result["per_class"][2] == {"class": "z", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert result["confusion"] == [[1, 0, 0], [0, 1, 0], [1, 0, 0]] and "top5" not in result


# --- the config ------------------------------------------------------------------------------
def test_config_round_trips_through_json():
    cfg = TrainConfig(data="/data/split", model={"spec": {"name": "mine", "blocks": [{"type": "conv"}]}},
                      name="运行 1", optimizer="sgd", nesterov=True, scheduler="onecycle", lr=0.05,
                      label_smoothing=0.1, freeze_epochs=2, epochs=5, tensorboard=True, early_stop_patience=3)
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict(), ensure_ascii=False)))
    assert again == cfg and again.to_dict() == cfg.to_dict()
    assert TrainConfig.from_dict({"data": "x"}) == TrainConfig(data="x")


@pytest.mark.parametrize("changes, key", [
    ({"optimizer": "rmsprop"}, "training.config_choice"),
    ({"scheduler": "exponential"}, "training.config_choice"),
    ({"augment": "extreme"}, "training.config_choice"),
    ({"normalization": "none"}, "training.config_choice"),
    ({"early_stop_metric": "train_acc"}, "training.config_choice"),
    ({"lr": 0}, "training.config_positive"),
    ({"lr": float("nan")}, "training.config_positive"),
    ({"epochs": 0}, "training.config_positive"),
    ({"batch_size": -8}, "training.config_positive"),
    ({"img_size": 0}, "training.config_positive"),
    ({"label_smoothing": 1.0}, "training.config_range"),
    ({"label_smoothing": -0.1}, "training.config_range"),
    ({"freeze_epochs": 11}, "training.config_range"),
    ({"learning_rate": 0.1}, "training.config_unknown"),
])
def test_config_rejects_bad_values(changes, key):
    with pytest.raises(UserError) as err:
        TrainConfig.from_dict({"data": "x"} | changes)
    assert err.value.key == key
    message = err.value.message()
    assert "{" not in message and next(iter(changes)) in message


def test_a_missing_split_folder_is_refused_before_a_run_folder_exists(tmp_path):
    with pytest.raises(UserError):
        create_run(TrainConfig(data=str(tmp_path / "nowhere")), tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# --- every optimizer and scheduler -----------------------------------------------------------
@pytest.mark.parametrize("optimizer, scheduler, extra", [
    ("adam", "none", {}),
    ("adamw", "step", {"weight_decay": 0.01, "step_size": 1}),
    ("sgd", "plateau", {"lr": 0.01}),
    ("sgd", "cosine", {"lr": 0.01, "nesterov": True}),
    ("adam", "onecycle", {}),
])
def test_each_optimizer_and_scheduler_trains(split, cache, tmp_path, optimizer, scheduler, extra):
    assert optimizer in OPTIMIZERS and scheduler in SCHEDULERS
    cfg = config(split, optimizer=optimizer, scheduler=scheduler, augment="none", **extra)
    run_dir, summary = train(cfg, tmp_path, cache)
    assert summary["status"] == "finished"
    (record,) = runs.read_metrics(run_dir, "epoch")
    assert np.isfinite(record["train_loss"]) and record["lr"] > 0
    if scheduler == "step":  # decayed after the epoch
        assert checkpoint.load(run_dir / "last.pt")["optimizer"]["param_groups"][0]["lr"] == pytest.approx(
            cfg.lr * cfg.gamma)


# --- early stopping and the two transfer-learning phases ---------------------------------------
def test_early_stopping_ends_the_run_after_patience_epochs_without_progress(split, cache, tmp_path):
    cfg = config(split, epochs=6, lr=1e-12, augment="none", early_stop_patience=1)  # nothing can improve
    run_dir, summary = train(cfg, tmp_path, cache)
    assert summary["status"] == "finished" and summary["epochs_done"] == 2
    notes = runs.read_metrics(run_dir, "note")
    assert notes == [{"type": "note", "epoch": 2, "key": "training.early_stopped"}]


def test_frozen_phase_then_everything_at_a_lower_lr_and_resume_across_the_switch(split, cache, tmp_path):
    cfg = config(split, epochs=3, lr=2e-3, freeze_epochs=1, unfreeze_lr_factor=0.25)
    run_dir, summary = train(cfg, tmp_path, cache)
    assert summary["status"] == "finished"
    assert [r["lr"] for r in runs.read_metrics(run_dir, "epoch")] == pytest.approx([2e-3, 5e-4, 5e-4])
    assert summary["trainable_params"] == summary["params"]  # the second phase trains everything

    stopped, _ = train(cfg, tmp_path, cache, **stop_after_epoch(1))  # stopped right at the switch
    # The first phase trains the head only: the body is still bit-identical to the start.
    assert not any(changed(initial_model(cfg), checkpoint.load(stopped / "last.pt")["model"], "features."))
    _, summary = train(cfg, tmp_path, cache, run_dir=stopped, resume=True)
    assert summary["status"] == "finished"
    for got, want in zip(epoch_figures(stopped), epoch_figures(run_dir)):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_tensorboard_logs_scalars_lr_and_histograms(split, cache, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = config(split, epochs=2, tensorboard=True, histogram_every=2)
    run_dir, summary = train(cfg, tmp_path, cache)
    assert summary["status"] == "finished"
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"histograms": 0}).Reload()
    scalars, histograms = set(events.Tags()["scalars"]), events.Tags()["histograms"]
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "lr"} <= scalars, scalars
    assert [e.step for e in events.Scalars("val/acc")] == [1, 2]
    assert any(tag.startswith("grad") for tag in histograms) and any(not tag.startswith("grad") for tag in histograms), histograms


def initial_model(cfg: TrainConfig, classes: int = 5) -> torch.nn.Module:
    """The network a run starts from: the Trainer seeds torch with cfg.seed right before building."""
    torch.manual_seed(cfg.seed)
    return build_model(cfg.model, classes, cfg.img_size)


def changed(before: torch.nn.Module, after: dict, prefix: str) -> list[bool]:
    """For each parameter under `prefix`: did training change it at all?"""
    return [not torch.equal(p, after[name]) for name, p in before.named_parameters() if name.startswith(prefix)]


def test_the_model_pages_freeze_policy_decides_what_a_run_trains(split, cache, tmp_path):
    cfg = config(split, model={"preset": "simple_cnn", "freeze": "head"}, epochs=2, augment="none")
    run_dir, summary = train(cfg, tmp_path, cache)
    assert summary["status"] == "finished"
    start = initial_model(cfg)
    head = sum(p.numel() for p in start.classifier.parameters())
    assert summary["trainable_params"] == head < summary["params"]
    trained = checkpoint.load(run_dir / "last.pt")["model"]
    assert not any(changed(start, trained, "features."))  # bit-identical
    assert all(changed(start, trained, "classifier."))


def test_after_the_frozen_epochs_a_run_trains_what_the_freeze_policy_says_and_resumes_exactly(split, cache, tmp_path):
    cfg = config(split, model=TINY | {"freeze": "last:1"}, epochs=2, lr=2e-3, freeze_epochs=1,
                 unfreeze_lr_factor=0.5, augment="none")
    run_dir, summary = train(cfg, tmp_path, cache)
    assert [r["lr"] for r in runs.read_metrics(run_dir, "epoch")] == pytest.approx([2e-3, 1e-3])
    start = initial_model(cfg)
    last_stage = sum(p.numel() for p in start.features[1].parameters())
    head = sum(p.numel() for p in start.classifier.parameters())
    assert summary["trainable_params"] == head + last_stage < summary["params"]
    trained = checkpoint.load(run_dir / "last.pt")["model"]
    assert not any(changed(start, trained, "features.0."))
    assert all(changed(start, trained, "features.1.")) and all(changed(start, trained, "classifier."))

    stopped, _ = train(cfg, tmp_path, cache, **stop_after_epoch(1))
    assert not any(changed(start, checkpoint.load(stopped / "last.pt")["model"], "features."))
    _, summary = train(cfg, tmp_path, cache, run_dir=stopped, resume=True)
    assert summary["trainable_params"] == head + last_stage
    for got, want in zip(epoch_figures(stopped), epoch_figures(run_dir), strict=True):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("MPS backend out of memory (MPS allocated: 8.00 GB)"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 4 GB"),
])
def test_out_of_memory_on_any_device_says_so_and_suggests_smaller_batches(split, cache, tmp_path, monkeypatch, error):
    cfg = config(split, batch_size=16)

    def train_one_epoch(*_, **__):
        raise error

    monkeypatch.setattr(engine, "train_one_epoch", train_one_epoch)
    with pytest.raises(UserError) as caught:
        train(cfg, tmp_path, cache)
    assert caught.value.key == "training.oom" and caught.value.params == {"batch": 16, "size": 32}
    [run_dir] = [p for p in tmp_path.iterdir() if p.is_dir()]
    summary = runs.read_summary(run_dir)
    assert summary["status"] == "failed" and summary["message_key"] == "training.oom"
    assert "smaller batch size" in summary["message"]


def test_any_other_error_fails_the_run_with_its_message(split, cache, tmp_path, monkeypatch):
    def train_one_epoch(*_, **__):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(engine, "train_one_epoch", train_one_epoch)
    with pytest.raises(RuntimeError):
        train(config(split), tmp_path, cache)
    [run_dir] = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert runs.read_summary(run_dir)["message"] == "RuntimeError: mat1 and mat2 shapes cannot be multiplied"
