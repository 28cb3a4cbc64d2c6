"""Augmentation on batched uint8 tensors, after the decode-once cache.

Per-image PIL transforms would re-do work for every image of every epoch; here one batch gets
one affine warp (random crop shift, flip, rotation) through `grid_sample` and one colour
jitter, with parameters drawn per image. The presets follow the course's seed models:
"none", "light" (flip + pad-and-crop), "seed" (flip + crop + colour jitter) and "strong"
(adds rotation, stronger jitter and random grayscale).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from core.data.cache import ImageSet

AUGMENT_PRESETS = ("none", "light", "seed", "strong")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale.
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class _Preset:
    flip: bool = False
    shift: float = 0.0  # max crop shift as a fraction of the side (RandomCrop(S, padding=S*shift))
    rotate: float = 0.0  # max rotation in degrees
    jitter: float = 0.0  # brightness / contrast / saturation factor range 1 +- jitter
    grayscale: float = 0.0  # probability


PRESETS = {
    "none": _Preset(),
    "light": _Preset(flip=True, shift=0.125),
    "seed": _Preset(flip=True, shift=0.125, jitter=0.2),
    "strong": _Preset(flip=True, shift=0.125, rotate=15.0, jitter=0.4, grayscale=0.1),
}


def to_float(batch_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [B,3,S,S] -> float32 in [0, 1] (the eval path: no augmentation)."""
    return batch_u8.float().div_(255.0)


def augment(batch_u8: torch.Tensor, preset: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """A randomly augmented float32 copy of `batch_u8` in [0, 1], new parameters per image.

    Random numbers are drawn on the CPU from `generator` (so a seeded generator gives the same
    augmentation on any device); the arithmetic runs where the batch lives.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown augmentation preset {preset!r}; expected one of {AUGMENT_PRESETS}")
    p = PRESETS[preset]
    if p.rotate:
        x = _warp(to_float(batch_u8), p, generator)
    elif p.flip or p.shift:
        x = to_float(_flip_shift(batch_u8, p, generator))  # exact pixels, cheaper on uint8
    else:
        x = to_float(batch_u8)
    if p.jitter:
        x = _jitter(x, p.jitter, generator)
    if p.grayscale:
        pick = (_uniform(len(x), 0, 1, generator) < p.grayscale).to(x.device)
        x = torch.where(pick[:, None, None, None], _gray(x).expand_as(x), x)
    return x


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def _warp(x: torch.Tensor, p: _Preset, generator: torch.Generator | None) -> torch.Tensor:
    """Flip, rotate and shift every image with its own affine matrix, in one `grid_sample`.

    Shifts are whole pixels and areas shifted in are black, as RandomCrop(S, padding) does.
    """
    b, _, h, w = x.shape
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0) if p.flip else torch.ones(b)
    angle = _uniform(b, -p.rotate, p.rotate, generator) * math.pi / 180
    max_dx, max_dy = round(w * p.shift), round(h * p.shift)
    dx = torch.randint(-max_dx, max_dx + 1, (b,), generator=generator).float() * 2 / w
    dy = torch.randint(-max_dy, max_dy + 1, (b,), generator=generator).float() * 2 / h
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, dx], 1), torch.stack([sin * flip, cos, dy], 1)], 1
    ).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _flip_shift(x: torch.Tensor, p: _Preset, generator: torch.Generator | None) -> torch.Tensor:
    """RandomHorizontalFlip + RandomCrop(S, padding) for a whole batch, as one gather.

    Every output pixel is an input pixel or black padding, so this runs on uint8 without blur.
    """
    b, _, h, w = x.shape
    pad_y, pad_x = round(h * p.shift), round(w * p.shift)
    padded = F.pad(x, (pad_x, pad_x, pad_y, pad_y))
    oy = torch.randint(0, 2 * pad_y + 1, (b, 1), generator=generator)
    ox = torch.randint(0, 2 * pad_x + 1, (b, 1), generator=generator)
    rows = oy + torch.arange(h)
    cols = ox + torch.arange(w)
    if p.flip:
        flip = torch.rand(b, generator=generator) < 0.5
        cols = torch.where(flip[:, None], cols.flip(1), cols)
    rows, cols = rows.to(x.device), cols.to(x.device)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = _LUMA
    return (r * x[:, 0:1] + g * x[:, 1:2] + b * x[:, 2:3])


def _jitter(x: torch.Tensor, amount: float, generator: torch.Generator | None) -> torch.Tensor:
    """Brightness, contrast and saturation, each scaled by a factor in [1-amount, 1+amount]."""
    b = len(x)
    factors = [_uniform(b, 1 - amount, 1 + amount, generator).to(x.device, x.dtype)[:, None, None, None]
               for _ in range(3)]
    brightness, contrast, saturation = factors
    x = x.mul(brightness).clamp_(0, 1)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x.sub_(mean).mul_(contrast).add_(mean).clamp_(0, 1)
    gray = _gray(x)
    return x.sub_(gray).mul_(saturation).add_(gray).clamp_(0, 1)


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(x - mean) / std per channel, for a float batch [B,3,S,S]."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device)[:, None, None]
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device)[:, None, None]
    return (x - m) / s


def dataset_mean_std(images: "ImageSet", chunk: int = 512) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the images in [0, 1], computed once per set of images.

    Kept on the ImageSet and, when it has a cache file, in a small JSON file beside it, so the
    next run on the same images skips the pass. Sums accumulate in float64 chunk by chunk, so a
    streaming set never needs all pixels at once.
    """
    if images.mean_std is not None:
        return images.mean_std
    stats_file = images.cache_file.with_suffix(".stats.json") if getattr(images, "cache_file", None) else None
    if stats_file is not None and stats_file.is_file():
        try:
            saved = json.loads(stats_file.read_text(encoding="utf-8"))
            images.mean_std = (tuple(saved["mean"]), tuple(saved["std"]))
            return images.mean_std
        except (OSError, ValueError, KeyError, TypeError):
            pass  # recomputed below
    total = torch.zeros(3, dtype=torch.float64)
    total_sq = torch.zeros(3, dtype=torch.float64)
    count = 0
    for start in range(0, len(images), chunk):
        x = to_float(images.batch(torch.arange(start, min(start + chunk, len(images))))).double()
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
        count += x.numel() // 3
    mean = total / max(count, 1)
    std = (total_sq / max(count, 1) - mean**2).clamp_min(1e-12).sqrt()
    images.mean_std = (tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist()))
    if stats_file is not None:
        try:
            stats_file.write_text(json.dumps({"mean": images.mean_std[0], "std": images.mean_std[1]}), encoding="utf-8")
        except OSError:
            pass  # only a shortcut for next time
    return images.mean_std


def augment_preview(image_u8: torch.Tensor, preset: str, n: int = 8, seed: int = 0) -> list:
    """`n` augmented versions of one uint8 image [3,S,S] as HWC uint8 arrays (for display).

    The same seed gives the same versions, so "re-roll" means "next seed".
    """
    batch = image_u8.unsqueeze(0).expand(n, -1, -1, -1)
    out = augment(batch, preset, torch.Generator().manual_seed(seed))
    return [a for a in (out * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()]
