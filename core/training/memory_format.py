"""channels_last or not: decided per model, image size and device by timing a few training steps.

On CUDA channels_last is usually faster for convolutions; on a CPU it depends on the network
(measured here: 1.19x-1.30x for the small presets at 32 px, 1.7x for fast_cnn at batch 512,
1.04x for resnet18_cbam), and a network of mostly linear layers gains nothing. So the Trainer
asks `use_channels_last`, which times forward + backward in both layouts on a copy of the model
(the model's weights, running statistics and the random number generators are left as they were).
"""
from __future__ import annotations

import copy
import time

import torch
from torch import nn

PROBE_PIXELS = 64 * 64 * 64  # images in a probe batch: this many pixels, at least 4, at most a batch
PROBE_STEPS = 2
_decided: dict[tuple, bool] = {}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step_seconds(model: nn.Module, x: torch.Tensor, channels_last: bool) -> float:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = x.contiguous(memory_format=fmt)
    best = float("inf")
    for i in range(PROBE_STEPS + 1):  # the first is a warm-up (kernel choice, allocations)
        _sync(x.device)
        start = time.perf_counter()
        model(x).float().sum().backward()
        _sync(x.device)
        if i:
            best = min(best, time.perf_counter() - start)
    return best


def use_channels_last(choice: str, model: nn.Module, img_size: int, batch_size: int, device: torch.device) -> bool:
    """`choice` "channels_last" / "contiguous" as asked; "auto": whichever layout ran a training
    step of `model` faster on `device` (contiguous when the device is neither CPU nor CUDA)."""
    if choice != "auto":
        return choice == "channels_last"
    if device.type not in ("cpu", "cuda"):
        return False
    # Decided once per architecture, size and device in a process: runs of the same settings
    # (a queue, a stopped run and its rerun) then sum their floats in the same order.
    key = (str(model), img_size, batch_size, str(device))
    if key not in _decided:
        _decided[key] = _faster(model, img_size, batch_size, device)
    return _decided[key]


def _faster(model: nn.Module, img_size: int, batch_size: int, device: torch.device) -> bool:
    probe = copy.deepcopy(model).to(device).train()
    n = max(4, min(batch_size, PROBE_PIXELS // img_size**2))
    x = torch.randn(n, 3, img_size, img_size,
                    generator=torch.Generator().manual_seed(0)).to(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        last, plain = _step_seconds(probe, x, True), _step_seconds(probe, x, False)
    return last < plain
