"""Training in several processes (core.training.distributed, core.training.ddp_worker): torchrun's
ranks (gloo, on the CPU) share every batch, learn what one process learns, write one run folder
that resumes in any number of processes, stop together and leave no process behind, and a rank
that fails or is killed fails the run with its error instead of hanging."""
from __future__ import annotations

import dataclasses
import json
import threading
import time

import psutil
import pytest
import torch

from core import runs
from core.cli import main
from core.data.cache import load_images
from core.errors import UserError
from core.runs import create_run
from core.training import checkpoint
from core.training.batches import Batches
from core.training.config import TrainConfig
from core.training.ddp_worker import FAIL_ENV, ShardedBatches
from core.training.distributed import Launcher
from core.training.engine import Trainer
from tests.unit.test_training_core import cache, config, split, stop_after_epoch  # noqa: F401 - shared fixtures

# No BatchNorm (each rank would normalise its half of a batch with that half's statistics) and
# no dropout (drawn per rank): what is left is the same computation, summed in another order.
PLAIN = {"spec": {"name": "plain", "blocks": [{"out": 8, "bn": False, "pool": "max"},
                                              {"out": 16, "bn": False, "pool": "max"}],
                  "head": {"hidden": [32], "dropout": 0.0}}}
LOSS_TOLERANCE = 1e-4  # per-step losses, 1 vs 2 processes, first 8 steps (measured: below 1e-6)
RANK_COMMANDS = ("torch.distributed.run", "core.training.ddp_worker")


def ranks_left() -> list[psutil.Process]:
    """torchrun or rank processes still running anywhere on the machine (an orphan included)."""
    left = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        if any(c in cmdline for c in RANK_COMMANDS) and p.info["status"] != psutil.STATUS_ZOMBIE:
            left.append(p)
    return left


def poll(condition, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


# --- each rank's share of a batch, in one process ----------------------------------------------
@pytest.mark.parametrize("world", [2, 3])
def test_ranks_share_each_batch_and_see_the_images_one_process_sees(split, cache, world):
    images = load_images(split, "train", 32, cache)  # 60 images: batches of 16, 16, 16, 12
    mean, std = (0.5,) * 3, (0.25,) * 3

    def batches(augment=None):
        return Batches(images, 16, torch.device("cpu"), mean, std, augment, torch.Generator().manual_seed(7),
                       img_size=32)

    for augment in ("strong",):  # augmentation on: its parameters are drawn for the whole batch
        one = batches(augment)
        shards = [ShardedBatches.of(batches(augment), r, world) for r in range(world)]
        for _ in range(2):  # two epochs: the generators stay in step
            whole = list(one)
            parts = [list(s) for s in shards]
            assert all(len(p) == len(whole) == 4 for p in parts)
            for b, (x, y, idx) in enumerate(whole):
                for r in range(world):
                    xr, yr, idxr = parts[r][b]
                    assert torch.equal(idxr, idx[r::world]) and torch.equal(yr, y[r::world])
                    assert torch.allclose(xr, x[r::world], atol=1e-6)
        assert all(torch.equal(s.generator.get_state(), one.generator.get_state()) for s in shards)

    # evaluation: contiguous parts that cover the split once
    ev = [ShardedBatches.of(batches(), r, world) for r in range(world)]
    assert torch.equal(torch.cat([idx for s in ev for _, _, idx in s]), torch.arange(60))

    # a last batch too small for two images per rank is left out (a batch of one breaks BatchNorm)
    plain = Batches(images, 14, torch.device("cpu"), mean, std, "none", torch.Generator().manual_seed(0), img_size=32)
    assert len(plain) == 5 and len(ShardedBatches.of(plain, 0, world)) == (5 if world == 2 else 4)  # 60 = 4 x 14 + 4


def test_a_batch_must_give_every_process_two_images(split):
    with pytest.raises(UserError) as err:
        config(split, batch_size=6, nproc=4)
    assert err.value.key == "training.ddp.batch_small" and err.value.params["least"] == 8
    assert config(split, batch_size=8, nproc=4).nproc == 4


# --- whole runs under torchrun -------------------------------------------------------------------
@pytest.mark.usefixtures("keep_ctrl_c")
def test_two_processes_learn_what_one_process_learns(workspace, split, cache, tmp_path, capsys):
    """The same global batch, augmentation off: the per-step losses agree, and so do the accuracies."""
    spec = tmp_path / "plain.json"
    spec.write_text(json.dumps(PLAIN["spec"]), encoding="utf-8")
    assert main(["train", "--data", str(split), "--model", str(spec), "--img-size", "32", "--batch-size", "16",
                 "--epochs", "2", "--augment", "none", "--seed", "3", "--log-every", "1", "--nproc", "2",
                 "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [r["epoch"] for r in lines if "epoch" in r] == [1, 2]  # live, from rank 0's metrics.jsonl
    (ddp_run,) = runs.run_folders(workspace.runs)  # one run folder for two processes
    summary = runs.read_summary(ddp_run)
    assert summary["status"] == "finished" and summary["epochs_done"] == 2 and summary["device"].startswith("2 × ")
    assert 0 <= summary["test_acc"] <= 1 and (ddp_run / "predictions.csv").is_file()
    assert runs.read_config(ddp_run)["nproc"] == 2
    for name in ("last.pt", "best.pt"):  # the model's own keys: loads into one process as any run
        assert not any(k.startswith("module.") for k in checkpoint.load(ddp_run / name)["model"])

    cfg = TrainConfig.of_run(runs.read_config(ddp_run))
    one_run = create_run(dataclasses.replace(cfg, nproc=1), tmp_path / "one")
    Trainer(dataclasses.replace(cfg, nproc=1), one_run, cache_dir=cache).run()
    two, one = runs.read_metrics(ddp_run, "iter"), runs.read_metrics(one_run, "iter")
    assert [r["step"] for r in two] == [r["step"] for r in one] == list(range(1, 9))
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in one], abs=LOSS_TOLERANCE)
    two, one = runs.read_metrics(ddp_run, "epoch"), runs.read_metrics(one_run, "epoch")
    for a, b in zip(two, one):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=LOSS_TOLERANCE)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=LOSS_TOLERANCE)
        # within noise: one image of 60 (train) or 30 (validation) either way
        assert abs(a["train_acc"] - b["train_acc"]) <= 1 / 60 and abs(a["val_acc"] - b["val_acc"]) <= 1 / 30


@pytest.mark.usefixtures("keep_ctrl_c")
def test_stop_leaves_no_process_and_the_run_resumes_in_one_process_and_back(workspace, split, registry):
    cfg = config(split, epochs=20, nproc=2)  # epochs to spare: Stop comes while it trains
    run_id = registry.submit(cfg, workspace.runs, workspace.cache)
    run_dir = workspace.runs / run_id
    # the page's live view: records and progress arrive while the ranks train
    assert poll(lambda: any(r.get("type") == "epoch" for r in registry.snapshot(run_id)["records"]))
    assert registry.snapshot(run_id)["progress"]["phase"] == "training"
    registry.stop(run_id)
    assert registry.wait(timeout=120)
    snap = registry.snapshot(run_id)
    assert snap["status"] == "stopped" and runs.read_summary(run_dir)["status"] == "stopped"
    assert poll(lambda: not ranks_left(), timeout=10), ranks_left()
    stopped_at = checkpoint.load(run_dir / "last.pt")["epoch"]
    assert 1 <= stopped_at < 19

    # into one process, stopped again after one more epoch
    one = dataclasses.replace(cfg, nproc=1)
    assert runs.resume_from_checkpoint(run_dir)
    summary = Trainer(one, run_dir, cache_dir=workspace.cache, **stop_after_epoch(stopped_at + 1)).run(resume=True)
    assert summary["status"] == "stopped" and checkpoint.load(run_dir / "last.pt")["epoch"] == stopped_at + 1
    assert runs.read_config(run_dir)["nproc"] == 1

    # and back to two processes, from the command line, to the end
    assert main(["train", "--resume", str(run_dir), "--nproc", "2", "--json"]) == 0
    summary = runs.read_summary(run_dir)
    assert summary["status"] == "finished" and summary["epochs_done"] == 20
    assert [r["epoch"] for r in runs.read_metrics(run_dir, "epoch")] == list(range(1, 21))
    assert runs.read_config(run_dir)["nproc"] == 2
    assert not ranks_left()


def test_a_rank_that_raises_fails_the_run_with_its_message(workspace, split, registry, monkeypatch):
    monkeypatch.setenv(FAIL_ENV, "1:3")  # rank 1 raises at its third batch, rank 0 waits in a collective
    run_id = registry.submit(config(split, epochs=2, nproc=2), workspace.runs, workspace.cache)
    assert registry.wait(timeout=120)  # torchrun ends rank 0: no hang
    snap = registry.snapshot(run_id)
    summary = runs.read_summary(workspace.runs / run_id)
    assert snap["status"] == summary["status"] == "failed"
    assert summary["message_key"] == "training.ddp.rank_failed" and summary["message_params"]["rank"] == 1
    assert "RuntimeError: injected failure on rank 1 at batch 3" in summary["message"]
    assert snap["message"] == summary["message"]
    assert poll(lambda: not ranks_left(), timeout=10), ranks_left()


def test_a_killed_rank_fails_the_run_and_says_which(workspace, split, cache):
    cfg = config(split, epochs=50, nproc=2)
    run_dir = create_run(cfg, workspace.runs)

    def kill_rank_1() -> None:
        def rank_1():
            for p in ranks_left():
                try:
                    if "core.training.ddp_worker" in " ".join(p.cmdline()) and p.environ().get("RANK") == "1":
                        return p
                except psutil.Error:
                    continue
            return None

        poll(lambda: runs.read_metrics(run_dir, "epoch"))  # training has begun
        victim = rank_1()
        if victim is not None:
            victim.kill()

    killer = threading.Thread(target=kill_rank_1)
    killer.start()
    with pytest.raises(UserError) as err:
        Launcher(cfg, run_dir, cache_dir=cache).run()
    killer.join()
    assert err.value.key == "training.ddp.rank_failed" and err.value.params["rank"] == 1
    assert "SIGKILL" in err.value.params["reason"]
    summary = runs.read_summary(run_dir)
    assert summary["status"] == "failed" and summary["message"] == err.value.message()
    assert poll(lambda: not ranks_left(), timeout=10), ranks_left()


KILLED_AFTER_PEER = """\
core.training.ddp_worker FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-11-30_14:31:59
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 27935)  (SIGKILL)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 27935
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-30_14:31:58
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : 1 (pid: 27934)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
============================================================
"""


def test_a_killed_rank_is_named_even_when_torchrun_observed_its_peers_error_first(tmp_path, split):  # noqa: F811
    """The race the end-to-end test above hits now and then: rank 0 fails first (its peer's
    connection closed) and torchrun calls that the root cause; the killed rank is the cause."""
    (tmp_path / "errors").mkdir()
    (tmp_path / "torchrun.log").write_text("E1130 failed (exitcode: 1) local_rank: 0 (pid: 27934)\n"
                                          + KILLED_AFTER_PEER, encoding="utf-8")
    (tmp_path / "errors" / "rank0.json").write_text(json.dumps(
        {"rank": 0, "time": 1.0, "message": "RuntimeError: Connection closed by peer"}), encoding="utf-8")
    launcher = Launcher.__new__(Launcher)
    launcher.cfg = config(split, nproc=2)
    err = launcher._failure(tmp_path, 1)
    assert err.key == "training.ddp.rank_failed" and err.params["rank"] == 1
    assert err.params["reason"] == "Signal 9 (SIGKILL) received by PID 27935"
