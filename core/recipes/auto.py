"""The `auto` recipe: a starting recipe computed from the split, for a first run that works.

What it looks at: how many photos and classes the split has, how unbalanced the training
classes are, the photos' usual short side, and whether ImageNet weights of a backbone are on
this machine (in torch's cache, where a downloaded or copied weights file goes).
- Weights on the machine: transfer learning, the pretrained backbone's head first, then all
  of it at a tenth of the rate.
- Otherwise a small convolutional network trained from scratch, chosen by measurement on
  real photo folders (bench/bench_defaults.py): batch-normalised blocks doubling their width
  and a global-average-pool head, AdamW with weight decay, a one-cycle schedule, label
  smoothing 0.1, random crops and flips (plus colour jitter, small rotations and resized crops above 32 px).
- Epochs: as many as fit `BUDGET_S` on this machine, from a measured cost per image (a few
  training steps of the chosen model at the chosen size, timed when the recipe is made).
- Class weights when the largest class is more than 3 times the smallest (the Data page's warning).
Every choice comes with a reason ({"key": i18n key, "params": {...}}) the page and CLI show.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.recipes import Recipe

NAME = "auto"
BUDGET_S = 240.0                 # the whole run, testing included: about 4 minutes
MIN_EPOCHS, MAX_EPOCHS = 5, 45  # 45: a quiet moment's measurement must not overrun 5 minutes later
TRANSFER_ARCHES = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "resnet34", "resnet50")
# Real epoch time over the estimate n / speed (batches, augmentation, validation, bookkeeping):
# 1.75 on 2 cores in a quiet moment. Under other programs' load the 1 s sample itself runs slow
# (2-3x pessimistic), and with 2.3 runs used 1-2 of their 4 minutes; 1.3 with at most 45 epochs
# gave runs of 124 s and 218 s (bench/bench_defaults.py, README).
OVERHEAD = 1.3
SETUP_S = 15.0                   # caching the images, building the model, testing at the end
_speeds: dict[str, float] = {}


def scratch_model(img_size: int) -> dict[str, Any]:
    """A compact CNN for photo folders of a few hundred to a few thousand images: one block per
    halving of the side down to 2 px (at most 5), widths 32, 64, 128, 256, 256. (Stopping at
    4 px instead reached 52% where this reached 66% on the 3,700-photo 32 px folder.)"""
    blocks, side = [], img_size
    for out in (32, 64, 128, 256, 256):
        if side < 4:
            break
        blocks.append({"out": out, "bn": True, "pool": "max"})
        side //= 2
    return {"spec": {"blocks": blocks, "head": {"pool": "gap", "dropout": 0.2}}}


def cached_backbone() -> str | None:
    """The first backbone whose ImageNet weights are on this machine (no network needed)."""
    from core.models import pretrained_available

    return next((arch for arch in TRANSFER_ARCHES if pretrained_available(arch)), None)


def measured_speed(ref: dict[str, Any], img_size: int, classes: int, batch: int) -> float:
    """Training images per second of model `ref` at `img_size` on this machine now: a few
    optimizer steps on random images, timed (remembered per model and size for this process)."""
    import torch

    from core.models import build_model
    from core.models.zoo import without_weights
    from core.training.threads import cpu_seconds, threads_for, usable_cores

    key = json.dumps([ref, img_size, classes, batch], sort_keys=True)
    if key not in _speeds:
        torch.manual_seed(0)
        model = build_model(without_weights(ref), classes, img_size)
        optimizer = torch.optim.AdamW(model.parameters())
        n = min(batch, 32)
        x, y = torch.randn(n, 3, img_size, img_size), torch.randint(0, classes, (n,))

        def step() -> float:
            start = time.perf_counter()
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            return time.perf_counter() - start

        threads = torch.get_num_threads()
        before, then = cpu_seconds(), time.monotonic()
        step(), step()  # the first steps allocate and pick kernels
        after, now = cpu_seconds(), time.monotonic()
        if before and after:  # as training will: a thread for each core other programs leave half free
            others = ((after[0] - before[0]) - (after[1] - before[1])) / (now - then)
            torch.set_num_threads(threads_for(usable_cores(), others))
        try:
            # the fastest of a few steps: a 1 s sample on a shared machine is mostly noise (another
            # program's burst); OVERHEAD, measured over whole runs, covers what load there is
            _speeds[key] = n / min(step() for _ in range(5))
        finally:
            torch.set_num_threads(threads)
    return _speeds[key]


def _facts(data: Path) -> dict[str, Any]:
    from core.data.scan import imbalance
    from core.data.sizes import short_sides
    from core.training.balance import part_counts

    train = part_counts(data, "train")
    if not train or not sum(train.values()):
        raise UserError("recipes.auto.no_train", path=str(data))
    val, test = part_counts(data, "val"), part_counts(data, "test")
    sides = short_sides(data)
    return {"train": sum(train.values()), "val": sum(val.values()), "test": sum(test.values()),
            "classes": sum(1 for n in train.values() if n), "imbalance": imbalance(train),
            "side": int(statistics.median(sides)) if sides else 0}


def _size(side: int, transfer: bool) -> int:
    """Scratch: the photos' short side, at most 64 px (more costs 4x per doubling on a CPU for
    little gain in a few minutes); transfer: 128 px, or the photos' side where smaller (>= 64)."""
    from core.data.sizes import SIZES

    cap = 128 if transfer else 64
    fitting = [s for s in SIZES if s <= min(side or cap, cap)]
    return max(fitting[-1] if fitting else SIZES[0], 64 if transfer else 32)


def _augment(img_size: int) -> dict[str, Any]:
    pad = round(img_size * 0.125)
    if img_size <= 32:  # tiny photos: rotations and colour shifts blur what little there is
        return {"crop": "random", "padding": pad, "hflip": 0.5, "order": ["crop", "hflip"]}
    return {"crop": "resized", "scale": [0.35, 1.0], "hflip": 0.5, "rotation": 10.0, "interpolation": "bilinear",
            "brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "jitter_order": "fixed",
            "order": ["affine", "crop", "hflip", "jitter"]}


def _epochs(speed: float, facts: dict[str, Any]) -> int:
    per_epoch = OVERHEAD * (facts["train"] + facts["val"] / 3) / speed
    fit = int((BUDGET_S - SETUP_S) / per_epoch)
    return max(MIN_EPOCHS, min(MAX_EPOCHS, fit))


def _reason(key: str, **params: Any) -> dict[str, Any]:
    return {"key": f"recipes.auto.why.{key}", "params": params}


def recipe(data: Path | None) -> Recipe:
    if data is None:
        raise UserError("recipes.needs_data", name=NAME)
    facts = _facts(Path(data))
    total = facts["train"] + facts["val"] + facts["test"]
    found = facts["imbalance"]
    reasons = []
    if found is not None and found.warn:
        balance = "weights"
        reasons.append(_reason("data_unbalanced", photos=f"{total:,}", classes=facts["classes"],
                               ratio=f"{found.ratio:.1f}", largest=found.largest, smallest=found.smallest))
    else:
        balance = "none"
        reasons.append(_reason("data_balanced", photos=f"{total:,}", classes=facts["classes"],
                               ratio=f"{found.ratio:.1f}" if found else "1.0"))
    arch = cached_backbone()
    img_size = _size(facts["side"], transfer=arch is not None)
    batch = 32 if arch else 64
    if arch:
        model = {"backbone": arch, "pretrained": True}
        settings = {"model": model, "optimizer": "adam", "lr": 1e-3, "scheduler": "cosine",
                    "normalization": "imagenet", "frozen_bn": "eval", "augment": _augment(img_size)}
        reasons.append(_reason("transfer", arch=arch))
    else:
        model = scratch_model(img_size)
        settings = {"model": model, "optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.05,
                    "scheduler": "onecycle", "normalization": "dataset", "augment": _augment(img_size)}
        reasons.append(_reason("scratch", blocks=len(model["spec"]["blocks"])))
    reasons.append(_reason("size", side=facts["side"] or "?", size=img_size))
    speed = measured_speed(model, img_size, max(facts["classes"], 2), batch)
    epochs = _epochs(speed, facts)
    reasons.append(_reason("epochs", speed=f"{speed:,.0f}", epochs=epochs, minutes=f"{BUDGET_S / 60:.0f}"))
    if arch:
        settings["freeze_epochs"] = max(1, epochs // 3)
        reasons.append(_reason("phases", head=settings["freeze_epochs"], rest=epochs - settings["freeze_epochs"]))
    reasons.append(_reason("smoothing"))
    settings |= {"img_size": img_size, "batch_size": batch, "epochs": epochs, "label_smoothing": 0.1,
                 "balance": balance}
    return Recipe(name=NAME, settings=settings, reasons=tuple(reasons), source=__file__)
