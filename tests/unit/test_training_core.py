"""core.training: a run learns, stops, resumes exactly, survives a failed checkpoint write and
a NaN loss; checkpoints and configs are checked; evaluation matches scikit-learn."""
from __future__ import annotations

import json
import math
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
from core.training.config import SCHEDULERS, TrainConfig
from core.runs import create_run
from core.training.engine import Trainer
from core.training.evaluate import evaluate_run, metrics

# A small network (a few thousand weights) keeps the tests fast; the presets have their own tests.
TINY = {"spec": {"name": "tiny", "blocks": [{"out": 8, "bn": True, "pool": "max"}, {"out": 16, "bn": True, "pool": "max"}],
                 "head": {"hidden": [32], "dropout": 0.2}}}
# Compared between an uninterrupted run and a stopped-then-resumed one (timings left out).
EPOCH_FIGURES = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")


pytestmark = pytest.mark.usefixtures("steady_threads")  # conftest.py


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
        if progress["phase"] != "training":  # reading the images, building the model
            return
        seen.append((progress["epoch"], progress["batch"]))
        if (progress["epoch"], progress["batch"]) == (2, 2):
            stop.set()

    cfg = config(split, epochs=2)
    run_dir, summary = train(cfg, tmp_path, cache, stop=stop, on_progress=on_progress)
    assert seen[-1] == (2, 2)  # no batch after the one that asked to stop
    assert summary["status"] == "stopped" and summary["epochs_done"] == 1
    state = checkpoint.load(run_dir / "last.pt")
    assert state["epoch"] == 1 and {"optimizer", "rng_torch", "rng_generator", "rng_cuda", "step"} <= set(state)
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
                             on_progress=lambda p: stop.set() if (p.get("epoch"), p.get("batch")) == (2, 3) else None)
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

    import psutil

    from core.training.jobs import JobRegistry

    cfg = config(split, epochs=2, augment="none")
    run_dir, _ = train(cfg, tmp_path, cache, **stop_after_epoch(1))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runs.update_summary(run_dir, status="running", pid=dead.pid)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        other = create_run(config(split, name="elsewhere"), tmp_path, status="running")
        # trained by another live process (its id and start time): left alone
        runs.update_summary(other, pid=alive.pid, pid_started=psutil.Process(alive.pid).create_time())

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


def test_a_reused_process_id_does_not_keep_a_dead_run_running(split, tmp_path):
    """The system may give a dead trainer's process id to a new process: the start time tells them apart."""
    import subprocess
    import sys

    import psutil

    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = psutil.Process(alive.pid).create_time()
        reused = create_run(config(split, name="reused"), tmp_path, status="running")
        runs.update_summary(reused, pid=alive.pid, pid_started=started - 3600)  # the id's owner an hour ago
        owned = create_run(config(split, name="owned"), tmp_path, status="running")
        runs.update_summary(owned, pid=alive.pid, pid_started=started)
        assert runs.mark_interrupted(tmp_path) == [reused.name]
        assert runs.read_summary(owned)["status"] == "running"
    finally:
        alive.kill()
        alive.wait()
    assert runs.owner()["pid_started"] == psutil.Process().create_time()


# --- a run needs only its own folder -----------------------------------------------------------
def test_a_fine_tuned_run_loads_predicts_and_resumes_once_its_weights_file_is_gone(split, cache, tmp_path):
    from torchvision import models as tvm

    torch.manual_seed(1)
    start = tvm.resnet18(weights=None).state_dict()
    weights = tmp_path / "resnet18.pth"
    torch.save(start, weights)
    cfg = config(split, model={"backbone": "resnet18", "weights_path": str(weights), "freeze": "head"},
                 epochs=2, augment="none")
    run_dir, summary = train(cfg, tmp_path / "runs", cache, **stop_after_epoch(1))
    assert summary["status"] == "stopped"
    # Frozen layers keep their BatchNorm statistics as well as their weights.
    trained = checkpoint.load(run_dir / "last.pt")["model"]
    for name in ("bn1.running_mean", "layer4.1.bn2.running_var", "layer1.0.bn1.num_batches_tracked", "conv1.weight"):
        assert torch.equal(trained[name], start[name]), name

    weights.unlink()
    with pytest.raises(UserError) as err:
        build_model(cfg.model, 5, 32)
    assert err.value.key == "models.weights_missing"
    model, info = core.load_model(run_dir)
    assert torch.equal(model.fc.weight, checkpoint.load(run_dir / "best.pt")["model"]["fc.weight"])
    images = sorted((split / "test").glob("*/*"))[:3]
    assert core.predict(model, images, info).shape == (3, 5)

    _, summary = train(cfg, tmp_path / "runs", cache, run_dir=run_dir, resume=True)
    assert summary["status"] == "finished" and summary["epochs_done"] == 2 and 0 <= summary["test_acc"] <= 1


# --- the test split: counted while training, evaluated at the end (or later) --------------------
def test_the_test_split_is_counted_not_decoded_while_training(split, cache, tmp_path, monkeypatch):
    from core.training import batches

    loaded, real = [], batches.load_images

    def load_images(data, part, *args, **kwargs):
        loaded.append(part)
        return real(data, part, *args, **kwargs)

    monkeypatch.setattr(batches, "load_images", load_images)
    run_dir, summary = train(config(split), tmp_path, cache)
    assert loaded == ["train", "val"] and runs.read_config(run_dir)["n_test"] == 30
    assert summary["status"] == "finished" and 0 <= summary["test_acc"] <= 1  # evaluated at the end


def test_a_split_deleted_during_training_leaves_a_finished_run_to_evaluate_later(split, cache, tmp_path, workspace,
                                                                              capsys):
    from core.cli import main
    from core.i18n import t
    from core.runs.compare import comparable_runs

    data, away, other = tmp_path / "split", tmp_path / "away", tmp_path / "other-copy"
    shutil.copytree(split, data)

    def delete_the_split(record: dict) -> None:
        if record["type"] == "epoch" and record["epoch"] == 1:
            shutil.move(data, away)

    cfg = config(data, epochs=2)
    run_dir, summary = train(cfg, tmp_path / "runs", cache, on_record=delete_the_split)
    assert summary["status"] == "finished" and summary["epochs_done"] == 2 and "test_acc" not in summary
    assert (run_dir / "best.pt").is_file() and summary["best_val_acc"] > 0
    assert summary["message_key"] == "training.test_split_missing"
    assert summary["message_params"] == {"path": str(data / "test"), "run": run_dir.name}
    assert str(data / "test") in summary["message"] and f"python -m core evaluate {run_dir.name}" in summary["message"]
    assert "测试" in t(summary["message_key"], "zh", **summary["message_params"])
    assert run_dir not in comparable_runs(tmp_path / "runs")  # no test predictions yet

    # Evaluated on another copy of the data: a result, but not the run's own test accuracy.
    shutil.copytree(split, other)
    result = evaluate_run(run_dir, data=other, split="test", cache_dir=cache)
    assert result["n"] == 30 and "test_acc" not in runs.read_summary(run_dir)
    assert main(["evaluate", str(run_dir), "--data", str(other), "--json"]) == 0

    # Its own split back: the note goes, the test accuracy comes, and Compare lists the run.
    shutil.move(away, data)
    assert main(["evaluate", str(run_dir), "--json"]) == 0  # what the note tells the user to do
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    summary = runs.read_summary(run_dir)
    assert summary["test_acc"] == pytest.approx(result["accuracy"]) and summary["message_key"] == ""
    assert summary["status"] == "finished" and run_dir in comparable_runs(tmp_path / "runs")


def test_a_split_without_a_test_part_trains_without_a_test_evaluation(split, cache, tmp_path):
    data = tmp_path / "split"
    shutil.copytree(split, data, ignore=lambda folder, names: ["test"] if Path(folder) == split else [])
    run_dir, summary = train(config(data), tmp_path / "runs", cache)
    assert summary["status"] == "finished" and not summary.get("message_key") and "test_acc" not in summary
    assert runs.read_config(run_dir)["n_test"] == 0 and not (run_dir / "eval_test.json").exists()


# --- random states -----------------------------------------------------------------------------
def test_checkpoints_save_and_restore_every_gpus_rng_state(tmp_path, monkeypatch):
    """Without a GPU: torch.cuda stands in, the dict goes through a real checkpoint file."""
    gpus = [torch.tensor([1, 2, 3], dtype=torch.uint8), torch.tensor([4, 5, 6], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.append(list(states)))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # resumed on a machine with one GPU

    generator = torch.Generator().manual_seed(5)
    checkpoint.save({"model": {}, **checkpoint.rng_state(generator)}, tmp_path / "last.pt")
    want = (torch.rand(3), torch.rand(3, generator=generator))
    state = checkpoint.load(tmp_path / "last.pt")
    checkpoint.restore_rng(state, generator)
    assert torch.equal(torch.rand(3), want[0]) and torch.equal(torch.rand(3, generator=generator), want[1])
    assert len(restored) == 1 and len(restored[0]) == 1 and torch.equal(restored[0][0], gpus[0])

    checkpoint.restore_rng(state | {"rng_cuda": []}, generator)  # saved on a machine without CUDA
    assert len(restored) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_gpu_rng_state_survives_a_checkpoint(tmp_path):
    generator = torch.Generator().manual_seed(0)
    torch.cuda.manual_seed_all(7)
    checkpoint.save({"model": {}, **checkpoint.rng_state(generator)}, tmp_path / "last.pt")
    want = torch.rand(4, device="cuda")
    torch.cuda.manual_seed_all(8)
    checkpoint.restore_rng(checkpoint.load(tmp_path / "last.pt"), generator)
    assert torch.equal(torch.rand(4, device="cuda"), want)


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


@pytest.mark.parametrize("seed", range(20))
def test_per_class_scores_and_confusion_match_scikit_learn_on_random_cases(seed):
    """Classes absent from the labels, never predicted, or both: scikit-learn's zero_division=0."""
    rng = np.random.default_rng(seed)
    n, size = int(rng.integers(2, 8)), int(rng.integers(1, 30))
    labels = rng.integers(0, n, size) if seed % 3 else rng.integers(0, max(1, n - 2), size)
    probs = torch.softmax(torch.tensor(rng.normal(size=(size, n)) * 3, dtype=torch.float32), 1)
    result = metrics(probs, torch.tensor(labels), [str(i) for i in range(n)])
    pred = probs.argmax(1).numpy()
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=range(n), zero_division=0)
    got = [v for row in result["per_class"] for v in (row["precision"], row["recall"], row["f1"], row["support"])]
    assert got == pytest.approx([float(v) for row in zip(p, r, f, s) for v in row])
    assert result["confusion"] == confusion_matrix(labels, pred, labels=range(n)).tolist()
    assert result["accuracy"] == pytest.approx((pred == labels).mean())


def test_metrics_count_a_class_never_predicted():
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.9, 0.0]])
    result = metrics(probs, torch.tensor([0, 2, 1]), ["x", "y", "z"])
    assert result["per_class"][2] == {"class": "z", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert result["confusion"] == [[1, 0, 0], [0, 1, 0], [1, 0, 0]] and "top5" not in result


# --- the config ------------------------------------------------------------------------------
def test_config_round_trips_through_json():
    cfg = TrainConfig(data="/data/split", model={"spec": {"name": "mine", "blocks": [{"type": "conv"}]}},
                      name="运行 1", optimizer="sgd", nesterov=True, scheduler="onecycle", lr=0.05,
                      label_smoothing=0.1, freeze_epochs=2, epochs=5, tensorboard=True, early_stop_patience=3,
                      frozen_bn="train")
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict(), ensure_ascii=False)))
    assert again == cfg and again.to_dict() == cfg.to_dict()
    assert TrainConfig.from_dict({"data": "x"}) == TrainConfig(data="x")


@pytest.mark.parametrize("changes, key", [
    ({"optimizer": "rmsprop"}, "training.config_choice"),
    ({"scheduler": "exponential"}, "training.config_choice"),
    ({"augment": "extreme"}, "training.config_choice"),
    ({"normalization": "none"}, "training.config_choice"),
    ({"early_stop_metric": "train_acc"}, "training.config_choice"),
    ({"frozen_bn": "frozen"}, "training.config_choice"),
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


# --- every optimizer and scheduler, against their formulas --------------------------------------
GRAD = torch.tensor([0.3, -0.1, 2.0])   # the loss (GRAD * w).sum() has this gradient everywhere
W0 = torch.tensor([1.0, -2.0, 0.5])


def optimizer_steps(name: str, n: int, lr: float, **changes) -> torch.Tensor:
    """The weights after `n` steps of the optimizer the table builds for these settings."""
    from core.training import optim

    w = torch.nn.Parameter(W0.clone())
    opt = optim.OPTIMIZERS[name]([w], TrainConfig(data="x", optimizer=name, **changes).validated(), lr)
    for _ in range(n):
        opt.zero_grad()
        (GRAD * w).sum().backward()
        opt.step()
    return w.detach()


@pytest.mark.parametrize("momentum, nesterov, weight_decay", [
    (0.9, False, 0.0), (0.9, True, 0.01), (0.5, True, 0.0), (0.0, False, 0.05), (0.0, True, 0.0),
])
def test_sgd_follows_the_momentum_nesterov_and_weight_decay_formula(momentum, nesterov, weight_decay):
    lr, w, buf = 0.1, W0.clone(), None
    for _ in range(3):
        g = GRAD + weight_decay * w                       # L2 weight decay joins the gradient
        buf = g.clone() if buf is None else momentum * buf + g
        w = w - lr * (g + momentum * buf if nesterov else buf)
    got = optimizer_steps("sgd", 3, lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    assert torch.allclose(got, w, atol=1e-6), (got, w)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_couples_weight_decay_and_adamw_decouples_it(name):
    lr, wd, eps = 0.01, 0.5, 1e-8
    # One step: the bias-corrected moments are g and g*g, so the step is lr * g / (|g| + eps).
    if name == "adam":
        g = GRAD + wd * W0
        want = W0 - lr * g / (g.abs() + eps)
    else:
        want = W0 * (1 - lr * wd) - lr * GRAD / (GRAD.abs() + eps)
    assert torch.allclose(optimizer_steps(name, 1, lr, weight_decay=wd), want, atol=1e-7)
    assert torch.allclose(optimizer_steps(name, 1, lr), W0 - lr * GRAD / (GRAD.abs() + eps), atol=1e-7)


def one_cycle(i: int, max_lr: float, total: int, pct: float = 0.3, div: float = 25.0, final_div: float = 1e4) -> float:
    """OneCycleLR's lr at step i: cosine up from max_lr/div for 30% of the steps, then down to max_lr/div/final_div."""
    def anneal(start: float, end: float, frac: float) -> float:
        return end + (start - end) / 2 * (math.cos(math.pi * frac) + 1)

    low, end_up, end_down = max_lr / div, pct * total - 1, total - 1
    if i <= end_up:
        return anneal(low, max_lr, i / end_up)
    return anneal(max_lr, low / final_div, (i - end_up) / (end_down - end_up))


def scheduled_lrs(name: str, epochs: int, steps: int, metric=lambda e: 0.5, **changes) -> list[float]:
    """The lr of each epoch (or each step, for per-step schedules), and after the last one."""
    from core.training import optim

    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.1)
    factory, per_step = optim.SCHEDULERS[name]
    sched = factory(opt, TrainConfig(data="x", scheduler=name, **changes).validated(), epochs, steps)
    lrs = [opt.param_groups[0]["lr"]]
    for e in range(epochs * steps if per_step else epochs):
        opt.step()
        sched.step(metric(e)) if name == "plateau" else sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def test_each_scheduler_follows_its_formula():
    from core.training import optim

    assert optim.SCHEDULERS["none"][0](None, None, 3, 4) is None
    assert [optim.SCHEDULERS[name][1] for name in SCHEDULERS] == [name in ("onecycle", "triangle")
                                                                  for name in SCHEDULERS]
    assert scheduled_lrs("step", 6, 4, step_size=2, gamma=0.5) == pytest.approx(
        [0.1 * 0.5 ** (e // 2) for e in range(7)])
    assert scheduled_lrs("cosine", 4, 4) == pytest.approx(
        [0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(5)], abs=1e-12)
    # plateau (mode max, patience 2): the third epoch in a row without a better val accuracy cuts the lr
    assert scheduled_lrs("plateau", 7, 4, gamma=0.5) == pytest.approx([0.1] * 4 + [0.05] * 3 + [0.025])
    assert scheduled_lrs("plateau", 7, 4, metric=lambda e: e / 10, gamma=0.5) == pytest.approx([0.1] * 8)
    lrs = scheduled_lrs("onecycle", 2, 5)
    assert lrs[:10] == pytest.approx([one_cycle(i, 0.1, 10) for i in range(10)], rel=1e-6)
    assert lrs[0] == pytest.approx(0.1 / 25) and max(lrs) == pytest.approx(0.1) and lrs[9] == pytest.approx(0.1 / 25e4)
    # triangle (100 steps): 0.2 -> 1 over the first 23 steps, then down to 0.07 at the last
    lrs = scheduled_lrs("triangle", 10, 10)
    assert lrs[0] == pytest.approx(0.02) and lrs[23] == pytest.approx(0.1) and lrs[99] == pytest.approx(0.1 * (
        1 - 0.93 * 76 / 77))
    assert lrs[11] == pytest.approx(0.1 * (0.2 + 0.8 * 11 / 23)) and lrs[100] == pytest.approx(0.007)


def test_the_engine_passes_optimizer_settings_and_steps_the_schedule_per_epoch(split, cache, tmp_path):
    cfg = config(split, epochs=3, optimizer="sgd", lr=0.01, momentum=0.8, nesterov=True, weight_decay=0.01,
                 scheduler="cosine", augment="none")
    run_dir, summary = train(cfg, tmp_path, cache)
    assert summary["status"] == "finished"
    assert [r["lr"] for r in runs.read_metrics(run_dir, "epoch")] == pytest.approx([0.01, 0.0075, 0.0025])
    (group,) = checkpoint.load(run_dir / "last.pt")["optimizer"]["param_groups"]
    assert (group["momentum"], group["nesterov"], group["weight_decay"]) == (0.8, True, 0.01)


def test_the_engine_steps_one_cycle_per_batch(split, cache, tmp_path):
    cfg = config(split, epochs=2, scheduler="onecycle", log_every=1, augment="none")
    run_dir, _ = train(cfg, tmp_path, cache)
    iters = runs.read_metrics(run_dir, "iter")
    assert [r["step"] for r in iters] == list(range(1, 9))  # 2 epochs x 4 batches
    # an iteration record carries the lr of the next step (the scheduler has just stepped)
    assert [r["lr"] for r in iters[:-1]] == pytest.approx([one_cycle(r["step"], cfg.lr, 8) for r in iters[:-1]])


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
    """For each parameter and buffer (BatchNorm statistics) under `prefix`: did training change it?"""
    return [not torch.equal(t, after[name]) for name, t in before.state_dict().items() if name.startswith(prefix)]


def test_the_model_pages_freeze_policy_decides_what_a_run_trains(split, cache, tmp_path):
    cfg = config(split, model=TINY | {"freeze": "head"}, epochs=2, augment="none")
    run_dir, summary = train(cfg, tmp_path, cache)
    assert summary["status"] == "finished"
    start = initial_model(cfg)
    head = sum(p.numel() for p in start.classifier.parameters())
    assert summary["trainable_params"] == head < summary["params"]
    trained = checkpoint.load(run_dir / "last.pt")["model"]
    assert any("running_mean" in name for name in start.state_dict() if name.startswith("features."))
    assert not any(changed(start, trained, "features."))  # bit-identical, BatchNorm statistics included
    assert all(changed(start, trained, "classifier."))


def test_frozen_bn_train_lets_frozen_batchnorm_statistics_follow_the_data(split, cache, tmp_path):
    """The course's behaviour, as a setting: frozen weights, BatchNorm statistics still updated."""
    cfg = config(split, model=TINY | {"freeze": "head"}, epochs=1, augment="none", frozen_bn="train")
    run_dir, _ = train(cfg, tmp_path, cache)
    start, trained = initial_model(cfg), checkpoint.load(run_dir / "last.pt")["model"]
    moved = {name for name, t in start.state_dict().items()
             if name.startswith("features.") and not torch.equal(t, trained[name])}
    assert moved == {f"features.{i}.bn.{b}" for i in (0, 1) for b in ("running_mean", "running_var",
                                                                      "num_batches_tracked")}


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


def test_a_run_resumes_with_the_settings_it_trained_with(split, cache, tmp_path):
    from core.data.split import read_split_info

    run_dir, _ = train(config(split, epochs=1), tmp_path / "runs", cache)
    saved = runs.read_config(run_dir)
    # The trainer's config rewrite keeps the identity of the split the run was pinned to.
    assert saved["split_id"] == read_split_info(split)["id"] == runs.read_summary(run_dir)["split_id"]
    assert TrainConfig.of_run(saved) == config(split, epochs=1)
    # A run saved before frozen_bn existed resumes as it trained: frozen BatchNorm followed the data.
    del saved["frozen_bn"]
    assert TrainConfig.of_run(saved).frozen_bn == "train"
