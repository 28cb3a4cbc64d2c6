"""One rank of a run trained in several processes: what torchrun starts N times.

`core.training.distributed` launches `torchrun ... -m core.training.ddp_worker --control DIR`.
Each rank joins the process group (gloo on the CPU, NCCL on CUDA) and runs the ordinary
Trainer with four differences:
- its model is wrapped in DistributedDataParallel, which averages the gradients;
- it takes its share of every batch: all ranks draw the same order (and the same augmentation
  parameters) from the shared seed, and rank r takes the images at positions r, r+N, ... of
  each batch of `batch_size` - one optimizer step sees the batch a one-process run sees;
- validation is split in N contiguous parts whose sums are added up, and the loss and accuracy
  of the records are those of all ranks together;
- rank 0 alone writes the run folder (Trainer.writes), so the pages, Compare and Resume read
  it as any run; its checkpoints hold the model's own state dict (no "module." prefix).
Stop is agreed each batch (one rank that stopped alone would leave the others waiting); a rank
that fails writes its error to DIR/errors/ for the launcher, which names it in the summary.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from core import device as devices
from core.atomic import read_json, write_json
from core.errors import UserError
from core.training.batches import Batches, Data
from core.training.config import TrainConfig
from core.training.engine import Trainer
from core.training.loops import predict_batches

TIMEOUT_ENV = "CNN_STUDIO_DDP_TIMEOUT_S"  # how long a collective waits for a rank (default below)
TIMEOUT_S = 600
# Ranks other than 0 wait this long for rank 0 to decode a split the cache does not hold yet.
SETUP_TIMEOUT_S = 6 * 3600
FAIL_ENV = "CNN_STUDIO_DDP_TEST_FAIL"  # tests only: "RANK:BATCH" makes that rank raise at that batch
PROGRESS_EVERY_S = 0.5


class ShardedBatches(Batches):
    """One rank's share of a Batches: of each training batch, the images at positions rank,
    rank + world, ... (the batch's augmentation parameters are drawn whole, from the shared
    generator, and sliced the same way, so every rank's generator stays in step and the images
    are those of a one-process run); of the evaluation images, one contiguous part.

    A last, partial training batch is kept only when every rank gets two images of it (a batch
    of one breaks BatchNorm), so an epoch may have one step fewer than in one process."""

    @classmethod
    def of(cls, batches: Batches, rank: int, world: int) -> ShardedBatches:
        shard = cls.__new__(cls)
        shard.__dict__.update(vars(batches))
        shard.rank, shard.world = rank, world
        n = len(batches.images)
        shard.lo, shard.hi = rank * n // world, (rank + 1) * n // world
        return shard

    @property
    def training(self) -> bool:
        return self.preset is not None

    def __len__(self) -> int:
        if not self.training:
            return math.ceil((self.hi - self.lo) / self.batch_size)
        full, rest = divmod(len(self.images), self.batch_size)
        return full + (1 if rest >= 2 * self.world else 0)

    def __iter__(self):
        order = self.order()
        if not self.training:
            part = order[self.lo:self.hi]
            for b in range(len(self)):
                yield self.make(part[b * self.batch_size:(b + 1) * self.batch_size])
            return
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            mine = torch.arange(self.rank, len(idx), self.world)
            draws = None
            if self.augmentation is not None:
                draws = {k: v[mine] for k, v in self.augmentation.draw(len(idx), self.generator).items()}
            yield self.make(idx[mine], draws)


class AgreedStop:
    """The training loop's per-batch stop check, the same answer on every rank: rank 0 looks
    for the launcher's request file and one small all-reduce tells the others."""

    def __init__(self, request: Path, rank: int, group: Any, fail_at: tuple[int, int] | None = None) -> None:
        self.request, self.rank, self.group, self.fail_at = request, rank, group, fail_at
        self.checks = 0

    def is_set(self) -> bool:
        self.checks += 1
        if self.fail_at == (self.rank, self.checks):
            raise RuntimeError(f"injected failure on rank {self.rank} at batch {self.checks}")
        flag = torch.tensor([1 if self.rank == 0 and self.request.exists() else 0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group)
        return bool(flag.item())


class RankTrainer(Trainer):
    """The Trainer of one rank (see the module's docstring)."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, *, rank: int, world: int, local_rank: int, group: Any,
                 setup_group: Any, **hooks: Any) -> None:
        super().__init__(cfg, run_dir, **hooks)
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.group, self.setup_group = group, setup_group
        self.writes = rank == 0

    def _load_data(self) -> Data:
        # Rank 0 decodes (and caches) the images first; the others then read its cache.
        data = super()._load_data() if self.rank == 0 else None
        dist.barrier(group=self.setup_group)
        return data if data is not None else super()._load_data()

    def _build(self, resume: dict | None) -> None:
        super()._build(resume)
        share = max(1, self.threads.cores // self.world)  # the ranks share this machine's cores
        self.threads.cores = self.threads.threads = share
        torch.set_num_threads(share)

    def _start_phase(self, epoch: int) -> None:
        if not isinstance(self.train_batches, ShardedBatches):  # _build made them just before phase 1
            self.train_batches = ShardedBatches.of(self.train_batches, self.rank, self.world)
            self.val_batches = ShardedBatches.of(self.val_batches, self.rank, self.world)
            self._agree_layout()
        old = getattr(self, "net", None)
        if isinstance(old, DistributedDataParallel):
            old._remove_autograd_hooks()  # the new phase's wrapper alone reduces the gradients
        super()._start_phase(epoch)
        # Made after the phase's freezing: DDP reduces the gradients of the trainable parameters.
        self.net = DistributedDataParallel(
            self.model, device_ids=[self.local_rank] if self.device.type == "cuda" else None)

    def _agree_layout(self) -> None:
        """Every rank takes rank 0's memory layout (each timed its own: DDP needs one)."""
        flag = torch.tensor([int(self.channels_last)])
        dist.broadcast(flag, src=0, group=self.group)
        if bool(flag.item()) != self.channels_last:
            self.channels_last = bool(flag.item())
            layout = torch.channels_last if self.channels_last else torch.contiguous_format
            self.model.to(memory_format=layout)
            self.train_batches.memory_format = self.val_batches.memory_format = layout

    def _load_best(self) -> None:
        dist.barrier(group=self.group)  # rank 0 has written best.pt
        super()._load_best()

    def _sum(self, values: list[float]) -> torch.Tensor:
        total = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(total, group=self.group)
        return total

    def record(self, rec: dict[str, Any]) -> None:
        if rec.get("type") == "iter":  # every rank logs at the same steps
            rec = rec | {"loss": float(self._sum([rec["loss"]])[0]) / self.world}
        super().record(rec)

    def say(self, progress: dict[str, Any]) -> None:
        if progress.get("img_per_s"):  # this rank's rate; the ranks go at one pace
            progress = progress | {"img_per_s": progress["img_per_s"] * self.world,
                                   "eta_s": progress["eta_s"] / self.world if progress.get("eta_s") else None}
        super().say(progress)

    def _totals(self, train_loss: float, train_acc: float, seen: int) -> tuple[float, float, int]:
        loss, correct, n = self._sum([train_loss * seen, train_acc * seen, seen]).tolist()
        return loss / n, correct / n, int(n)

    def _validate(self) -> tuple[float, float]:
        probs = predict_batches(self.model, self.val_batches, self.amp)
        labels = self.data.val.labels[self.val_batches.lo:self.val_batches.hi]
        sums = [0.0, 0.0, 0.0]
        if len(labels):
            loss = nn.functional.nll_loss(torch.log(probs.clamp_min(1e-12)), labels, reduction="sum")
            sums = [float(loss), float((probs.argmax(1) == labels).sum()), float(len(labels))]
        loss, correct, n = self._sum(sums).tolist()
        return (loss / n, correct / n) if n else (float("nan"), float("nan"))

    def _update_summary(self, **fields: Any) -> dict[str, Any]:
        if "device" in fields:
            fields["device"] = f"{self.world} × {fields['device']}"
        return super()._update_summary(**fields)


class ProgressFile:
    """Rank 0's progress for the launcher to read: each change of phase, the end of each epoch,
    and otherwise at most every PROGRESS_EVERY_S seconds."""

    def __init__(self, path: Path) -> None:
        self.path, self.phase, self.last = path, None, 0.0

    def __call__(self, progress: dict[str, Any]) -> None:
        now = time.monotonic()
        if (progress.get("phase") == self.phase and now - self.last < PROGRESS_EVERY_S
                and progress.get("batch") != progress.get("batches")):
            return
        self.phase, self.last = progress.get("phase"), now
        write_json(self.path, progress)


def timeout_s() -> float:
    try:
        return float(os.environ.get(TIMEOUT_ENV, TIMEOUT_S))
    except ValueError:
        return TIMEOUT_S


def fail_at() -> tuple[int, int] | None:
    rank, _, batch = os.environ.get(FAIL_ENV, "").partition(":")
    return (int(rank), int(batch)) if rank.isdigit() and batch.isdigit() else None


def report(control: Path, rank: int, err: BaseException) -> None:
    """This rank's error, for the launcher: the first one (by time) is the run's message."""
    entry: dict[str, Any] = {"rank": rank, "time": time.time(), "message": f"{type(err).__name__}: {err}"}
    if isinstance(err, UserError):
        entry |= {"key": err.key, "params": err.params}
    (control / "errors").mkdir(exist_ok=True)
    write_json(control / "errors" / f"rank{rank}.json", entry)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.training.ddp_worker")
    parser.add_argument("--control", required=True, help="the launcher's folder: job.json, stop, progress, errors")
    control = Path(parser.parse_args(argv).control)
    rank, world, local_rank = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    try:
        job = read_json(control / "job.json")
        cfg = TrainConfig.from_dict(job["config"])
        device = devices.resolve(cfg.device)
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(seconds=timeout_s()))
        # Small CPU values (the stop flag, sums of losses) go through gloo, on CUDA too.
        group = dist.new_group(backend="gloo", timeout=timedelta(seconds=timeout_s()))
        setup_group = dist.new_group(backend="gloo", timeout=timedelta(seconds=SETUP_TIMEOUT_S))
        trainer = RankTrainer(
            cfg, Path(job["run_dir"]), cache_dir=Path(job["cache_dir"]) if job.get("cache_dir") else None,
            stop=AgreedStop(control / "stop", rank, group, fail_at()),
            on_progress=ProgressFile(control / "progress.json") if rank == 0 else None,
            rank=rank, world=world, local_rank=local_rank, group=group, setup_group=setup_group)
        trainer.run(resume=bool(job.get("resume")))
    except Exception as err:  # noqa: BLE001 - reported to the launcher, then this rank ends
        report(control, rank, err)
        traceback.print_exc()
        sys.stderr.flush()
        # At once: a process group whose peers are gone could hold up a normal exit.
        os._exit(1)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
