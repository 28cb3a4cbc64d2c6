"""Trains one run folder from its config: fresh, or resumed from its `last.pt`.

The Trainer ties the pieces together: data and batches (`batches`), the loops (`loops`),
optimizers and schedules (`optim`), checkpoints and the run folder (`core.runs`).
"""
from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from core import device as devices
from core import runs
from core.atomic import write_json
from core.errors import UserError
from core.training import checkpoint
from core.training.balance import class_weights
from core.training.batches import Batches, Data, load_data
from core.training.config import TrainConfig, phase_config, phase_lr
from core.training.evaluate import evaluate_run
from core.training.loops import OnRecord, Record, Stopped, loss_and_accuracy, predict_batches, train_one_epoch
from core.training.memory_format import use_channels_last
from core.training.optim import FIXED_LENGTH, SCHEDULERS, make_optimizer
from core.training.threads import ThreadGovernor

OnProgress = Callable[[dict[str, Any]], None]
OnHistory = Callable[[list[Record]], None]
# What a run is doing, in `on_progress`'s "phase": reading (or decoding, "caching": part, done,
# total) its images, "building" the model, "training" (epoch, batch, rate, eta), "testing".
PHASES = ("loading", "caching", "building", "training", "testing")


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def _out_of_memory(err: BaseException) -> bool:
    """CUDA raises OutOfMemoryError; the CPU allocator and Apple MPS raise a plain RuntimeError."""
    text = str(err)
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


class Trainer:
    """Trains one run folder from its config: fresh, or resumed from its `last.pt`."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, *, cache_dir: Path | None = None,
                 stop: threading.Event | None = None, on_record: OnRecord | None = None,
                 on_progress: OnProgress | None = None, on_history: OnHistory | None = None) -> None:
        """`on_history` gets a resumed run's kept records once its partial epoch is dropped,
        before any new record: a live view starts from exactly what `metrics.jsonl` holds."""
        self.cfg, self.run_dir, self.cache_dir = cfg, Path(run_dir), cache_dir
        self.stop = stop or threading.Event()
        self._on_record, self.on_progress, self._on_history = on_record, on_progress, on_history
        self.progress: dict[str, Any] = {}
        # False on the DDP ranks other than 0 (core.training.ddp_worker): they train, rank 0 alone
        # writes the run folder (metrics, checkpoints, config, summary, TensorBoard, the test).
        self.writes = True

    def say(self, progress: dict[str, Any]) -> None:
        """Tell the page what the run is doing now (see PHASES)."""
        self.progress = progress
        if self.on_progress is not None:
            self.on_progress(progress)

    def record(self, rec: Record) -> None:
        if self.writes:
            runs.append_metrics(self.run_dir, rec)
        if self._on_record is not None:
            self._on_record(rec)

    # --- set-up -------------------------------------------------------------------------
    def _build(self, resume: dict | None) -> None:
        from core.models import build_model, freeze, summarize
        from core.models.zoo import without_weights

        cfg = self.cfg
        self.threads = ThreadGovernor()
        self.device = devices.resolve(cfg.device)
        self.amp = cfg.amp and self.device.type == "cuda"
        self.say({"phase": "loading"})
        self.data = self._load_data()
        self.say({"phase": "building"})
        torch.manual_seed(cfg.seed)
        # A resumed run's weights all come from last.pt: its pretrained or local file may be gone.
        model = build_model(without_weights(cfg.model) if resume else cfg.model, len(self.data.classes), cfg.img_size)
        if not resume and hasattr(model, "init_from_data"):
            model.init_from_data(self._sample())
        self.summary = summarize(model, cfg.img_size)
        self.freeze = freeze
        # A resumed run keeps the layout it trained in: float sums then continue exactly.
        kept = runs.read_summary(self.run_dir).get("memory_format") if resume else None
        self.channels_last = (kept == "channels_last" if kept else
                              use_channels_last(cfg.memory_format, model, cfg.img_size, cfg.batch_size, self.device))
        self.model = model.to(self.device, memory_format=torch.channels_last if self.channels_last
                              else torch.contiguous_format)
        weights = (class_weights(self.data.train.labels, len(self.data.classes)).to(self.device)
                   if cfg.balance == "weights" else None)
        self.criterion = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.scaler = (torch.amp.GradScaler("cuda") if self.amp and not torch.cuda.is_bf16_supported() else None)
        self.train_batches = Batches(self.data.train, cfg.batch_size, self.device, self.data.mean, self.data.std,
                                     cfg.augment, self.generator, self.channels_last, cfg.img_size,
                                     balanced=cfg.balance == "sampler")
        self.val_batches = Batches(self.data.val, cfg.batch_size, self.device, self.data.mean, self.data.std,
                                   channels_last=self.channels_last, img_size=cfg.img_size)
        self.epoch = 0
        self.step = 0
        self.best_val_acc = -1.0
        self.best_metric = -math.inf
        self.bad_epochs = 0
        self._start_phase(resume["epoch"] if resume else 0)
        if resume:
            self.model.load_state_dict(resume["model"])
            # Saved right at the end of the frozen phase, the optimizer is that phase's: the
            # unfrozen phase starts with a fresh one at its own lr, as an uninterrupted run does.
            if not (cfg.freeze_epochs and resume["epoch"] == cfg.freeze_epochs):
                self.optimizer.load_state_dict(resume["optimizer"])
                if self.scheduler is not None and resume.get("scheduler"):
                    self.scheduler.load_state_dict(resume["scheduler"])
            elif cfg.phase2_from_best:
                self._load_best()  # as the uninterrupted run did at the switch
            self.epoch, self.step = resume["epoch"], resume["step"]
            self.best_val_acc, self.best_metric = resume["best_val_acc"], resume["best_metric"]
            self.bad_epochs = resume["bad_epochs"]
            checkpoint.restore_rng(resume, self.generator)
            if runs.read_summary(self.run_dir).get("continued_from") == self.epoch:
                self._continue()

    def _sample(self, pixels: int = 5000 * 32 * 32) -> torch.Tensor:
        """Training images as the model sees them unaugmented, chosen at random by the run's
        seed: for a network that sets some weights from the data (fastnet's whitening). 5,000 at
        32 px, fewer at larger sizes (`pixels` in all), so the sample stays small in memory."""
        train, n = self.data.train, max(64, min(5000, pixels // self.cfg.img_size**2))
        idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.cfg.seed))[:n].sort().values
        unaugmented = Batches(train, n, torch.device("cpu"), self.data.mean, self.data.std, img_size=self.cfg.img_size)
        return unaugmented.make(idx)[0]

    def _continue(self) -> None:
        """A finished run given more epochs (core.training.more): the patience count starts
        again, and a schedule that ends at a set epoch runs again over the added epochs from
        the phase's starting rate (optim.FIXED_LENGTH); the others carry on where they are."""
        cfg = self.cfg
        self.bad_epochs = 0
        if cfg.scheduler not in FIXED_LENGTH:
            return
        second = cfg.freeze_epochs > 0 and not self.phase_frozen
        lr = phase_lr(cfg, second)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] = lr * group.get("lr_factor", 1.0)
        factory, _ = SCHEDULERS[cfg.scheduler]
        self.scheduler = factory(self.optimizer, phase_config(cfg, second), cfg.epochs - self.epoch,
                                 len(self.train_batches))

    def _start_phase(self, epoch: int) -> None:
        """Transfer learning as the course does it: the head alone first, then the model's own
        freeze policy (`model["freeze"]`, default everything) at a lower lr (see TrainConfig)."""
        cfg = self.cfg
        frozen = epoch < cfg.freeze_epochs
        self.phase_frozen = frozen
        counts = self.freeze(self.model, "head" if frozen else cfg.model.get("freeze", "all"), cfg.frozen_bn)
        self.trainable = counts.trainable
        self.net: nn.Module = self.model  # what the training loop calls: the model, or its DDP wrapper
        second = cfg.freeze_epochs > 0 and not frozen
        phase_epochs = cfg.freeze_epochs if frozen else cfg.epochs - cfg.freeze_epochs
        phase = phase_config(cfg, second)
        self.optimizer = make_optimizer(self.model, phase, phase_lr(cfg, second))
        factory, self.per_step = SCHEDULERS[cfg.scheduler]
        self.scheduler = factory(self.optimizer, phase, phase_epochs, len(self.train_batches))

    def _load_best(self) -> None:
        """Phase 1's best weights (best.pt) into the model, where there are any."""
        best = self.run_dir / "best.pt"
        if best.is_file():
            self.model.load_state_dict(checkpoint.load(best)["model"])

    def _load_data(self) -> Data:
        return load_data(self.cfg, self.cache_dir, on_caching=lambda part, done, total: self.say(
            {"phase": "caching", "part": part, "done": done, "total": total}))

    def _write_config(self) -> None:
        if not self.writes:
            return
        recorded = {k: v for k, v in runs.read_config(self.run_dir).items() if k == "split_id"}
        write_json(self.run_dir / "config.json", self.cfg.to_dict() | recorded | {
            "classes": self.data.classes, "display_names": self.data.display_names,
            "mean": list(self.data.mean), "std": list(self.data.std),
            "n_train": len(self.data.train), "n_val": len(self.data.val),
            "n_test": self.data.n_test,
        })

    # --- checkpoints ----------------------------------------------------------------------
    def _checkpoint_info(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "classes": self.data.classes, "img_size": self.cfg.img_size,
                "epoch": self.epoch}

    def _save_last(self) -> None:
        if not self.writes:
            return
        checkpoint.save(self._checkpoint_info() | {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "step": self.step, "best_val_acc": self.best_val_acc, "best_metric": self.best_metric,
            "bad_epochs": self.bad_epochs, **checkpoint.rng_state(self.generator),
        }, self.run_dir / "last.pt")

    # --- the run ----------------------------------------------------------------------------
    def run(self, resume: bool = False) -> dict[str, Any]:
        """Train to the end (or until stopped) and evaluate on the test split; returns the summary.

        A failure is written to the run's summary (status `failed`, with its message) and raised.
        """
        try:
            return self._run(resume)
        except Exception as err:
            known = err if isinstance(err, UserError) else (
                UserError("training.oom", batch=self.cfg.batch_size, size=self.cfg.img_size)
                if _out_of_memory(err) else None)
            if known is None:
                self._update_summary(status="failed", message=f"{type(err).__name__}: {err}")
                raise
            self._update_summary(status="failed", message=known.message(), message_key=known.key,
                                message_params=known.params)
            if known is err:
                raise
            raise known from None

    def _run(self, resume: bool) -> dict[str, Any]:
        state = checkpoint.load(self.run_dir / "last.pt") if resume else None
        started = time.time()
        self._build(state)
        if not resume:
            # last.pt always holds an epoch boundary (here: epoch 0), so a stop or a kill at any
            # moment leaves a checkpoint whose model, optimizer, scheduler and RNG states agree;
            # resuming redoes the partial epoch exactly as an uninterrupted run would.
            self._save_last()
        self._write_config()
        if resume:
            if self.writes:
                runs.truncate_metrics(self.run_dir, self.epoch)
            if self._on_history is not None:
                self._on_history(runs.read_metrics(self.run_dir))
        else:  # how the images are held, where it is worth saying (disk-mapped, streamed)
            for key, params in dict(p.note for p in (self.data.train, self.data.val) if p.note).items():
                self.record({"type": "note", "epoch": 0, "key": key, "params": params})
        self._update_summary(status="running", message="", message_key="", message_params={},
                            params=self.summary.total_params,
                            trainable_params=self.trainable, flops=self.summary.flops,
                            device=devices.describe(self.device),
                            memory_format="channels_last" if self.channels_last else "contiguous", **runs.owner())
        try:
            self._loop()
            status = "finished"
        except Stopped:
            # last.pt stays at the last epoch boundary: a mid-epoch one would over-step per-batch
            # schedulers such as one-cycle when resumed.
            status = "stopped"
        seconds = runs.read_summary(self.run_dir).get("seconds", 0.0) + time.time() - started
        summary = self._update_summary(status=status, seconds=round(seconds, 2),
                                      epochs_done=self.epoch, best_val_acc=max(self.best_val_acc, 0.0))
        if status == "finished" and self.data.n_test and self.writes:
            self.say(self.progress | {"phase": "testing"})
            summary = self._final_test()
        return summary

    def _final_test(self) -> dict[str, Any]:
        """The test evaluation after training. Training's results stand whatever happens to the
        test data meanwhile: a split gone (or unreadable) leaves a finished run with a note saying
        why, and `python -m core evaluate RUN` can evaluate it later."""
        try:
            evaluate_run(self.run_dir, split="test", device=self.device, cache_dir=self.cache_dir)
        except (UserError, OSError) as err:
            folder = Path(self.cfg.data) / "test"
            note = (UserError("training.test_split_missing", path=str(folder), run=self.run_dir.name)
                    if not folder.is_dir() else
                    UserError("training.test_eval_failed", run=self.run_dir.name,
                              reason=err.message() if isinstance(err, UserError) else f"{type(err).__name__}: {err}"))
            runs.update_summary(self.run_dir, message=note.message(), message_key=note.key,
                                message_params=note.params)
        return runs.read_summary(self.run_dir)

    def _loop(self) -> None:
        cfg = self.cfg
        writer = self._tensorboard()
        seen_total, train_seconds = 0, 0.0
        try:
            while self.epoch < cfg.epochs:
                if self.phase_frozen and self.epoch >= cfg.freeze_epochs:
                    if cfg.phase2_from_best:
                        self._load_best()
                    self._start_phase(self.epoch)
                    self._update_summary(trainable_params=self.trainable)
                epoch = self.epoch + 1
                t0 = time.perf_counter()
                n_batches = len(self.train_batches)

                def on_batch(b: int, seen: int) -> None:
                    self.threads.update()
                    if self.on_progress is not None:
                        elapsed = time.perf_counter() - t0
                        rate = seen / elapsed if elapsed > 0 else 0.0
                        left = (n_batches - b) + (cfg.epochs - epoch) * n_batches
                        self.say({"phase": "training", "epoch": epoch, "epochs": cfg.epochs, "batch": b,
                                  "batches": n_batches, "img_per_s": rate,
                                  "eta_s": left * cfg.batch_size / rate if rate else None})

                def on_step(step: int, loss: torch.Tensor, correct: torch.Tensor, n: int, lr: float) -> None:
                    if writer is None:
                        return
                    if (step - 1) % cfg.tensorboard_batch_every == 0:
                        # as the course's CBAM lesson logs them: every N batches, x = batches done before
                        writer.add_scalar("Train/Batch_Loss", float(loss), step - 1)
                        writer.add_scalar("Train/Batch_Accuracy", int(correct) / n, step - 1)
                        writer.add_scalar("Train/Learning_Rate", lr, step - 1)
                    if step % cfg.histogram_every == 0:
                        for name, p in self.model.named_parameters():
                            writer.add_histogram(f"weights/{name}", p.detach().cpu(), step)
                            if p.grad is not None:
                                writer.add_histogram(f"grads/{name}", p.grad.detach().cpu(), step)

                if self.progress.get("phase") != "training":
                    on_batch(0, 0)  # training has begun: its first batch can take a while (a cold start)
                train_loss, train_acc, seen, self.step = train_one_epoch(
                    self.net, self.criterion, self.optimizer, self.train_batches, epoch=epoch, step=self.step,
                    log_every=cfg.log_every, scheduler=self.scheduler if self.per_step else None,
                    scaler=self.scaler, amp=self.amp, stop=self.stop, on_record=self.record,
                    on_batch=on_batch, on_step=on_step if writer is not None else None)
                train_time = time.perf_counter() - t0
                train_loss, train_acc, seen = self._totals(train_loss, train_acc, seen)
                val_loss, val_acc = self._validate()
                lr = _lr(self.optimizer)
                self._step_scheduler(val_loss, val_acc)
                seen_total += seen
                train_seconds += train_time
                self.epoch = epoch
                improved = self._track(val_loss, val_acc)
                rec = {"type": "epoch", "epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                       "val_loss": val_loss, "val_acc": val_acc, "lr": lr, "img_per_s": seen / train_time,
                       "seconds": time.perf_counter() - t0}
                self.record(rec)
                if writer is not None:
                    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
                        writer.add_scalar(key.replace("_", "/", 1) if "_" in key else key, rec[key], epoch)
                if improved and self.writes:
                    checkpoint.save(self._checkpoint_info() | {"val_acc": val_acc}, self.run_dir / "best.pt")
                self._save_last()
                self._update_summary(epochs_done=epoch, best_val_acc=self.best_val_acc,
                                    img_per_s=round(seen_total / train_seconds, 2))
                if cfg.early_stop_patience and self.bad_epochs >= cfg.early_stop_patience:
                    self.record({"type": "note", "epoch": epoch, "key": "training.early_stopped"})
                    break
        finally:
            if writer is not None:
                writer.close()

    def _totals(self, train_loss: float, train_acc: float, seen: int) -> tuple[float, float, int]:
        """The epoch's training loss, accuracy and images over every process (DDP: all ranks')."""
        return train_loss, train_acc, seen

    def _validate(self) -> tuple[float, float]:
        """Validation loss and accuracy (DDP: each rank predicts its part, the sums are shared)."""
        return loss_and_accuracy(predict_batches(self.model, self.val_batches, self.amp), self.data.val.labels)

    def _update_summary(self, **fields: Any) -> dict[str, Any]:
        if not self.writes:
            return runs.read_summary(self.run_dir) | fields
        return runs.update_summary(self.run_dir, **fields)

    def _step_scheduler(self, val_loss: float, val_acc: float) -> None:
        if self.scheduler is None or self.per_step:
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(val_loss if self.cfg.plateau_metric == "val_loss" else val_acc)
        else:
            self.scheduler.step()

    def _track(self, val_loss: float, val_acc: float) -> bool:
        """Update the best val accuracy (for best.pt) and the early-stopping counter."""
        improved = val_acc > self.best_val_acc
        self.best_val_acc = max(self.best_val_acc, val_acc)
        metric = val_acc if self.cfg.early_stop_metric == "val_acc" else -val_loss
        if metric > self.best_metric:
            self.best_metric, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
        return improved

    def _tensorboard(self):
        if not self.cfg.tensorboard or not self.writes:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.run_dir / "tensorboard"))
