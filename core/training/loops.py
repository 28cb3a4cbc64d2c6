"""The one training loop and the one evaluation loop (the engine, evaluation and the tests use these).

Plain functions with explicit arguments, as torchvision's reference scripts write them. Losses
and correct counts accumulate on the device and are read back only every `log_every` steps (for
the live chart) and at the end of an epoch.
"""
from __future__ import annotations

import threading
from contextlib import nullcontext
from typing import Any, Callable

import torch
from torch import nn

from core.errors import UserError
from core.training.batches import Batches

Record = dict[str, Any]
OnRecord = Callable[[Record], None]
# After each optimizer step: (step, the batch's loss and correct count as device tensors - reading
# them is a host sync, so only on the steps that log -, the batch size, the lr the step used).
OnStep = Callable[[int, torch.Tensor, torch.Tensor, int, float], None]


class Stopped(Exception):
    """Raised inside the loop when the user asked the run to stop."""


def _autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return nullcontext()


def train_one_epoch(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    batches: Batches, *, epoch: int, step: int, log_every: int,
                    scheduler: Any = None, scaler: torch.amp.GradScaler | None = None, amp: bool = False,
                    stop: threading.Event | None = None, on_record: OnRecord | None = None,
                    on_batch: Callable[[int, int], None] | None = None,
                    on_step: OnStep | None = None) -> tuple[float, float, int, int]:
    """One pass over the training batches; returns (mean loss, accuracy, images seen, step)."""
    model.train()
    device = batches.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    window: list[torch.Tensor] = []
    for b, (x, y, _) in enumerate(batches):
        if stop is not None and stop.is_set():
            raise Stopped
        with _autocast(device, amp):
            logits = model(x)
            loss = criterion(logits, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        step += 1
        detached = loss.detach()
        window.append(detached)
        loss_sum += detached * len(y)
        batch_correct = (logits.detach().argmax(1) == y).sum()
        correct += batch_correct
        seen += len(y)
        if on_step is not None:
            on_step(step, detached, batch_correct, len(y), lr)
        if len(window) >= log_every or b == len(batches) - 1:
            losses = torch.stack(window).float().cpu()  # the one host sync per window
            _check_finite(losses, epoch, step - len(window) + 1)
            if on_record is not None:
                on_record({"type": "iter", "epoch": epoch, "step": step, "loss": float(losses.mean()),
                           "lr": optimizer.param_groups[0]["lr"]})
            window = []
        if on_batch is not None:
            on_batch(b + 1, seen)
    if seen == 0:
        raise UserError("training.no_batches", n=len(batches.images), batch=batches.batch_size)
    return float(loss_sum) / seen, int(correct) / seen, seen, step


def _check_finite(losses: torch.Tensor, epoch: int, first_step: int) -> None:
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        raise UserError("training.nan_loss", epoch=epoch, step=first_step + int(bad[0]))


def _mirrored(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return (model(x) + model(x.flip(-1))) / 2


def tta_logits(model: nn.Module, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """The model's logits for `x`, averaged over test-time augmentations: "flip" adds the
    mirrored image; "flip_shift" (airbench's) also averages, at half weight, the image shifted one
    pixel up-left and one down-right (reflected edges), each with its mirror."""
    if tta == "none":
        return model(x)
    logits = _mirrored(model, x)
    if tta == "flip":
        return logits
    h, w = x.shape[-2:]
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = (_mirrored(model, padded[..., :h, :w]) + _mirrored(model, padded[..., 2:, 2:])) / 2
    return (logits + shifted) / 2


@torch.no_grad()
def predict_batches(model: nn.Module, batches: Batches, amp: bool = False, tta: str = "none") -> torch.Tensor:
    """Class probabilities [N, C] (CPU, float32) in the ImageSet's order."""
    model.eval()
    out = []
    for x, _, _ in batches:
        with _autocast(batches.device, amp):
            out.append(torch.softmax(tta_logits(model, x, tta).float(), dim=1).cpu())
    return torch.cat(out) if out else torch.zeros((0, 0))


def loss_and_accuracy(probs: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    if len(labels) == 0:
        return float("nan"), float("nan")
    loss = nn.functional.nll_loss(torch.log(probs.clamp_min(1e-12)), labels)
    return float(loss), float((probs.argmax(1) == labels).float().mean())
