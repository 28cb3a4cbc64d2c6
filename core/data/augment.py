"""Augmentation as settings, on batched uint8 tensors after the decode-once cache.

Settings are plain data (a dict, see `DEFAULTS`): how the training images are stored (resize,
square or shorter side then centre crop), then the random ops of torchvision's transforms in
an order of one's own - `crop` (centre, random with padding in pixels, random resized),
`affine` (rotation in degrees, optional whole-pixel shift), `hflip`, `vflip`, `jitter`
(brightness, contrast, saturation, hue; in a random order per image as ColorJitter does, or a
fixed one) and `grayscale` - and the evaluation transform (resize, then a centre crop when the
evaluation size is larger than the model's). The presets "none", "light", "seed" and "strong"
are named settings (`preset_settings`) and give exactly what they gave before they were.

Per-image PIL transforms would redo work for every image of every epoch; here each op runs once
per batch with its parameters drawn per image: crops and flips are one index gather on uint8
(every output pixel is an input pixel or black padding), rotation one `grid_sample`, hue one
batched RGB -> HSV -> RGB. Random numbers are drawn on the CPU from one generator in a fixed
order, whatever the order the ops run in, so a seeded generator gives the same augmentation on
any device.
"""
from __future__ import annotations

import copy
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import UserError

if TYPE_CHECKING:
    from PIL import Image

    from core.data.cache import ImageSet

AUGMENT_PRESETS = ("none", "light", "seed", "strong")
OPS = ("affine", "crop", "hflip", "vflip", "jitter", "grayscale")  # the default order, as the course's flowers lesson
RESIZE_MODES = ("square", "shorter")
CROPS = ("none", "center", "random", "resized")
INTERPOLATIONS = ("nearest", "bilinear")
JITTER_ORDERS = ("random", "fixed")
JITTERS = ("brightness", "contrast", "saturation", "hue")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale.
_LUMA = (0.299, 0.587, 0.114)

DEFAULTS: dict[str, Any] = {
    "resize": 0,                 # side the training images are stored at; 0: the model's image size
    "resize_mode": "square",     # "square": stretched (Resize((R, R))); "shorter": Resize(R) + CenterCrop(R)
    "crop": "none",              # to the image size: "center", "random" (RandomCrop), "resized" (RandomResizedCrop)
    "padding": 0,                # random crop: black pixels added on each side first
    "scale": [0.08, 1.0],        # random resized crop: share of the area
    "ratio": [3 / 4, 4 / 3],     # random resized crop: aspect ratio
    "hflip": 0.0,                # probability
    "vflip": 0.0,                # probability
    "rotation": 0.0,             # degrees: an angle in [-rotation, rotation], counter-clockwise positive
    "translate": 0.0,            # with the rotation: a whole-pixel shift of up to this share of the side
    "interpolation": "nearest",  # of the rotation (RandomRotation's default)
    "brightness": 0.0,           # ColorJitter: factors in [max(0, 1 - v), 1 + v]
    "contrast": 0.0,
    "saturation": 0.0,
    "hue": 0.0,                  # a hue shift in [-v, v] (v <= 0.5)
    "jitter_order": "random",    # "random": a new order per image, as ColorJitter; "fixed": as listed above
    "grayscale": 0.0,            # probability
    "eval_resize": 0,            # evaluation: resize to this side, then centre crop; 0: straight to the image size
    "order": list(OPS),
}
_INTS = ("resize", "padding", "eval_resize")
_PROBS = ("hflip", "vflip", "grayscale")
_CHOICES = {"resize_mode": RESIZE_MODES, "crop": CROPS, "interpolation": INTERPOLATIONS, "jitter_order": JITTER_ORDERS}
_MAX_SIDE = 4096


def preset_settings(name: str, img_size: int) -> dict[str, Any]:
    """The settings a preset stands for at `img_size` (its crop padding is 12.5% of the side)."""
    pad = round(img_size * 0.125)
    presets = {
        "none": {},
        "light": {"crop": "random", "padding": pad, "hflip": 0.5, "order": ["crop", "hflip"]},
        "seed": {"crop": "random", "padding": pad, "hflip": 0.5, "brightness": 0.2, "contrast": 0.2,
                 "saturation": 0.2, "jitter_order": "fixed", "order": ["crop", "hflip", "jitter"]},
        # rotation, shift and flip in one bilinear warp (the flip right after the warp is folded into it)
        "strong": {"rotation": 15.0, "translate": 0.125, "interpolation": "bilinear", "hflip": 0.5,
                   "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "jitter_order": "fixed",
                   "grayscale": 0.1, "order": ["affine", "hflip", "jitter", "grayscale"]},
    }
    if name not in presets:
        raise UserError("training.config_choice", field="augment", value=name, choices=", ".join(AUGMENT_PRESETS))
    return normalize_settings(presets[name], img_size)


def _bad(field: str, value: Any, expected: str) -> UserError:
    return UserError("training.augment.bad_value", field=field, value=value, expected=expected)


def _number(field: str, value: Any, low: float, high: float, integer: bool = False) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(field, value, f"{low:g} - {high:g}")
    if integer and value != int(value):
        raise _bad(field, value, f"{low:g} - {high:g}")
    if not low <= value <= high:
        raise _bad(field, value, f"{low:g} - {high:g}")
    return int(value) if integer else float(value)


def _pair(field: str, value: Any, low: float, high: float) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _bad(field, value, f"[a, b], {low:g} < a <= b <= {high:g}")
    a, b = (_number(field, v, 0.0, high) for v in value)
    if not (low < a <= b):
        raise _bad(field, list(value), f"[a, b], {low:g} < a <= b <= {high:g}")
    return [a, b]


def normalize_settings(given: dict[str, Any], img_size: int) -> dict[str, Any]:
    """Every setting filled in and checked (against the model's `img_size` too), or a UserError
    naming the setting. Ops missing from "order" run after the listed ones, in `OPS` order."""
    if not isinstance(given, dict):
        raise UserError("training.augment.not_settings", value=str(given)[:80], presets=", ".join(AUGMENT_PRESETS))
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise UserError("training.augment.unknown", keys=", ".join(unknown), known=", ".join(DEFAULTS))
    s = copy.deepcopy(DEFAULTS) | copy.deepcopy(given)
    for name in _INTS:
        s[name] = _number(name, s[name], 0, _MAX_SIDE, integer=True)
    for name, choices in _CHOICES.items():
        if s[name] not in choices:
            raise _bad(name, s[name], " / ".join(choices))
    for name in _PROBS:
        s[name] = _number(name, s[name], 0.0, 1.0)
    s["rotation"] = _number("rotation", s["rotation"], 0.0, 180.0)
    s["translate"] = _number("translate", s["translate"], 0.0, 0.5)
    for name in ("brightness", "contrast", "saturation"):
        s[name] = _number(name, s[name], 0.0, 10.0)
    s["hue"] = _number("hue", s["hue"], 0.0, 0.5)
    s["scale"] = _pair("scale", s["scale"], 0.0, 1.0)
    s["ratio"] = _pair("ratio", s["ratio"], 0.0, 100.0)
    order = s["order"]
    if (not isinstance(order, list) or any(op not in OPS for op in order) or len(set(order)) != len(order)):
        raise UserError("training.augment.bad_order", value=json.dumps(order), ops=", ".join(OPS))
    s["order"] = list(order) + [op for op in OPS if op not in order]
    stored = s["resize"] or img_size
    if s["crop"] == "none" and stored != img_size:
        raise UserError("training.augment.needs_crop", resize=stored, size=img_size)
    if s["crop"] == "center" and stored < img_size:
        raise UserError("training.augment.too_small", field="resize", value=stored, size=img_size)
    if s["crop"] == "random" and stored + 2 * s["padding"] < img_size:
        raise UserError("training.augment.too_small", field="resize + 2 x padding", value=stored + 2 * s["padding"],
                        size=img_size)
    if (s["eval_resize"] or img_size) < img_size:
        raise UserError("training.augment.too_small", field="eval_resize", value=s["eval_resize"], size=img_size)
    return s


def settings(augment: str | dict[str, Any] | None, img_size: int) -> dict[str, Any]:
    """The full settings of a preset name or a (partial) settings dict; None means no augmentation."""
    if augment is None:
        return normalize_settings({}, img_size)
    if isinstance(augment, str):
        return preset_settings(augment, img_size)
    return normalize_settings(augment, img_size)


def eval_transform(augment: Any, img_size: int) -> tuple[int, str]:
    """(side, resize mode) of the evaluation transform: resize to `side`, then centre crop to
    `img_size` when `side` is larger. A config from before these settings: straight to the size."""
    if not isinstance(augment, dict):
        return img_size, "square"
    s = settings(augment, img_size)
    return s["eval_resize"] or img_size, s["resize_mode"]


def to_float(batch_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [B,3,S,S] -> float32 in [0, 1] (the eval path: no augmentation)."""
    return batch_u8.float().div_(255.0)


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central size x size of [..., R, R] images, placed as torchvision's CenterCrop places it."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    top, left = round((h - size) / 2.0), round((w - size) / 2.0)
    return x[..., top:top + size, left:left + size]


def eval_input(image: Image.Image | str | Path, img_size: int, side: int, mode: str = "square") -> torch.Tensor:
    """One image as the evaluation transform makes it: uint8 [3, S, S]."""
    from core.data.cache import decode_resized

    return centre_crop(decode_resized(image, side, mode), img_size).contiguous()


def eval_box(width: int, height: int, img_size: int, side: int, mode: str = "square") -> tuple[float, float, float, float]:
    """The part of a width x height photo the evaluation transform shows the model, as (left,
    top, right, bottom) in the photo's pixels: the whole photo unless it crops (e.g. to draw a
    CAM over the photo where the model looked)."""
    if mode == "shorter":
        nw, nh = (side, int(side * height / width)) if width <= height else (int(side * width / height), side)
        left, top = round((nw - side) / 2.0), round((nh - side) / 2.0)
    else:
        nw, nh, left, top = side, side, 0, 0
    left, top = left + round((side - img_size) / 2.0), top + round((side - img_size) / 2.0)
    sx, sy = width / nw, height / nh
    return left * sx, top * sy, (left + img_size) * sx, (top + img_size) * sy


# --- the ops ----------------------------------------------------------------------------------
def _uniform(n: int | tuple[int, ...], low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = _LUMA
    return (r * x[:, 0:1] + g * x[:, 1:2] + b * x[:, 2:3])


def _brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return x.mul(f).clamp_(0, 1)


# In place: `x` is always the pipeline's own float copy by the time the colour ops run.
def _contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    return x.sub_(mean).mul_(f).add_(mean).clamp_(0, 1)


def _saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    gray = _gray(x)
    return x.sub_(gray).mul_(f).add_(gray).clamp_(0, 1)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """[..., 3, H, W] RGB in [0, 1] -> HSV, every value in [0, 1] (torchvision's formulas)."""
    r, g, b = x.unbind(dim=-3)
    maxc, minc = x.amax(dim=-3), x.amin(dim=-3)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_divisor = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / cr_divisor, (maxc - g) / cr_divisor, (maxc - b) / cr_divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=-3)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """The inverse of `rgb_to_hsv`: channel n of (R, G, B) is v - v s clamp(min(k, 4 - k), 0, 1)
    with k = (5, 3, 1)[n] + 6 h mod 6 (the same values as torchvision's six-sector table)."""
    h, s, v = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    k = torch.remainder(torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1) + h * 6, 6)
    return v - v * s * torch.minimum(k, 4 - k).clamp_(0, 1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Each image's hue turned by its `shift` (a fraction of the colour circle, [B,1,1,1])."""
    hsv = rgb_to_hsv(x)
    h = torch.remainder(hsv[:, 0:1] + shift, 1.0)
    return hsv_to_rgb(torch.cat((h, hsv[:, 1:]), dim=1))


_JITTER_FNS = {"brightness": _brightness, "contrast": _contrast, "saturation": _saturation, "hue": adjust_hue}


class Augmentation:
    """Settings resolved for one model image size: call it on a uint8 batch of stored images
    (side `stored_side`) to get augmented float32 images of side `img_size` in [0, 1]."""

    def __init__(self, augment: str | dict[str, Any] | None, img_size: int) -> None:
        s = settings(augment, img_size)
        self.settings, self.img_size = s, img_size
        self.stored_side, self.resize_mode = s["resize"] or img_size, s["resize_mode"]
        self.jitters = [name for name in JITTERS if s[name] > 0]
        enabled = {"affine": s["rotation"] > 0 or s["translate"] > 0, "crop": s["crop"] != "none",
                   "hflip": s["hflip"] > 0, "vflip": s["vflip"] > 0, "jitter": bool(self.jitters),
                   "grayscale": s["grayscale"] > 0}
        ops = [op for op in s["order"] if enabled[op]]
        crop_at = ops.index("crop") if "crop" in ops else len(ops)
        self.affine_side = self.stored_side if "affine" in ops and ops.index("affine") < crop_at else img_size
        self.ops = ops
        # Steps: runs of crops and flips become one gather; a flip right after the warp joins it.
        self.steps: list[tuple[str, Any]] = []
        i = 0
        while i < len(ops):
            op = ops[i]
            if op == "affine":
                fused = i + 1 < len(ops) and ops[i + 1] == "hflip"
                self.steps.append(("affine", fused))
                i += 2 if fused else 1
            elif op in ("hflip", "vflip") or (op == "crop" and s["crop"] != "resized"):
                run = []
                while i < len(ops) and (ops[i] in ("hflip", "vflip") or (ops[i] == "crop" and s["crop"] != "resized")):
                    run.append(ops[i])
                    i += 1
                self.steps.append(("gather", run))
            else:
                self.steps.append((op, None))
                i += 1

    def __call__(self, batch_u8: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.apply(batch_u8, self.draw(len(batch_u8), generator))

    def apply(self, batch_u8: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
        """The ops with given parameters (`draw`'s): "oy"/"ox" (random crop offsets into the
        padded image, [B,1]), "box" (resized crop: top, left, height, width), "hflip"/"vflip"
        (bool [B]), "angle" (radians), "dx"/"dy" (shift, [-1, 1] units), one factor per jitter
        ("hue": a shift), "jitter_order" ([B, k] permutation), "grayscale" (bool [B])."""
        x = batch_u8
        for step, arg in self.steps:
            if step == "gather":
                x = self._gather(x, arg, d)
            elif step == "affine":
                x = self._affine(_as_float(x), d, arg)
            elif step == "crop":
                x = self._resized_crop(_as_float(x), d)
            elif step == "jitter":
                x = self._jitter(_as_float(x), d)
            else:
                pick = d["grayscale"].to(x.device)
                x = _as_float(x)
                x = torch.where(pick[:, None, None, None], _gray(x).expand_as(x), x)
        return _as_float(x)

    def draw(self, b: int, g: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Every random parameter of a batch of `b`, in one fixed order whatever the ops' order
        (the order the presets always drew in)."""
        s, ops, d = self.settings, self.ops, {}
        if "crop" in ops and s["crop"] == "random":
            span = self.stored_side + 2 * s["padding"] - self.img_size + 1
            d["oy"] = torch.randint(0, span, (b, 1), generator=g)
            d["ox"] = torch.randint(0, span, (b, 1), generator=g)
        elif "crop" in ops and s["crop"] == "resized":
            d["box"] = self._draw_boxes(b, g)
        for flip in ("hflip", "vflip"):
            if flip in ops:
                d[flip] = torch.rand(b, generator=g) < s[flip]
        if "affine" in ops:
            d["angle"] = (_uniform(b, -s["rotation"], s["rotation"], g) * math.pi / 180 if s["rotation"]
                          else torch.zeros(b))
            if s["translate"]:
                side = self.affine_side
                most = round(side * s["translate"])
                d["dx"] = torch.randint(-most, most + 1, (b,), generator=g).float() * 2 / side
                d["dy"] = torch.randint(-most, most + 1, (b,), generator=g).float() * 2 / side
        if "jitter" in ops:
            for name in self.jitters:
                v = s[name]
                d[name] = _uniform(b, -v, v, g) if name == "hue" else _uniform(b, max(0.0, 1 - v), 1 + v, g)
            if s["jitter_order"] == "random" and len(self.jitters) > 1:
                d["jitter_order"] = torch.rand(b, len(self.jitters), generator=g).argsort(dim=1)
        if "grayscale" in ops:
            d["grayscale"] = _uniform(b, 0, 1, g) < s["grayscale"]
        return d

    def _draw_boxes(self, b: int, g: torch.Generator | None, tries: int = 10) -> torch.Tensor:
        """RandomResizedCrop's boxes [B, 4] (top, left, height, width), its ten tries at once."""
        side, (s0, s1), (r0, r1) = self.stored_side, self.settings["scale"], self.settings["ratio"]
        area = side * side * _uniform((b, tries), s0, s1, g)
        aspect = torch.exp(_uniform((b, tries), math.log(r0), math.log(r1), g))
        w = torch.round(torch.sqrt(area * aspect))
        h = torch.round(torch.sqrt(area / aspect))
        ok = (w > 0) & (w <= side) & (h > 0) & (h <= side)
        first = ok.int().argmax(dim=1)
        rows = torch.arange(b)
        w, h, found = w[rows, first], h[rows, first], ok.any(dim=1)
        # none of the tries fits: the whole image, or its centre at the nearest allowed ratio
        if r0 > 1:
            fw, fh = float(side), float(round(side / r0))
        elif r1 < 1:
            fw, fh = float(round(side * r1)), float(side)
        else:
            fw = fh = float(side)
        w = torch.where(found, w, torch.full_like(w, fw))
        h = torch.where(found, h, torch.full_like(h, fh))
        top = torch.floor(torch.rand(b, generator=g) * (side - h + 1))
        left = torch.floor(torch.rand(b, generator=g) * (side - w + 1))
        top = torch.where(found, top, torch.floor((side - h) / 2))
        left = torch.where(found, left, torch.floor((side - w) / 2))
        return torch.stack([top, left, h, w], dim=1)

    def _gather(self, x: torch.Tensor, run: list[str], d: dict[str, torch.Tensor]) -> torch.Tensor:
        """Crops and flips as one index gather: row and column maps composed op by op, -1 where
        the random crop's black padding shows."""
        b, _, h, w = x.shape
        rows, cols = torch.arange(h).expand(b, h), torch.arange(w).expand(b, w)
        padded = False
        for op in run:
            if op == "crop":
                size, crop = self.img_size, self.settings["crop"]
                if crop == "center":
                    top, left = round((rows.shape[1] - size) / 2.0), round((cols.shape[1] - size) / 2.0)
                    rows, cols = rows[:, top:top + size], cols[:, left:left + size]
                else:
                    pad = self.settings["padding"]
                    rows, cols = _shift(rows, d["oy"] - pad, size), _shift(cols, d["ox"] - pad, size)
                    padded |= pad > 0
            elif op == "hflip":
                cols = torch.where(d["hflip"][:, None], cols.flip(1), cols)
            else:
                rows = torch.where(d["vflip"][:, None], rows.flip(1), rows)
        if padded:
            x, rows, cols = F.pad(x, (1, 1, 1, 1)), rows + 1, cols + 1  # -1 lands on the black border
        rows, cols = rows.to(x.device), cols.to(x.device)
        batch = torch.arange(b, device=x.device)[:, None, None]
        return x[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()

    def _affine(self, x: torch.Tensor, d: dict[str, torch.Tensor], with_flip: bool) -> torch.Tensor:
        """Rotation (and shift) about the centre, black outside, one `grid_sample` per batch."""
        b = len(x)
        flip = torch.where(d["hflip"], -1.0, 1.0) if with_flip else torch.ones(b)
        zero = torch.zeros(b)
        dx, dy = d.get("dx", zero), d.get("dy", zero)
        cos, sin = torch.cos(d["angle"]), torch.sin(d["angle"])
        theta = torch.stack(
            [torch.stack([cos * flip, -sin, dx], 1), torch.stack([sin * flip, cos, dy], 1)], 1
        ).to(x.device, x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode=self.settings["interpolation"], padding_mode="zeros", align_corners=False)

    def _resized_crop(self, x: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each image's box stretched to the image size (bilinear, one `grid_sample`; not
        antialiased where a box shrinks, unlike PIL)."""
        side = x.shape[-1]
        top, left, h, w = d["box"].unbind(1)
        zero = torch.zeros_like(w)
        theta = torch.stack([torch.stack([w / side, zero, (2 * left + w) / side - 1], 1),
                             torch.stack([zero, h / side, (2 * top + h) / side - 1], 1)], 1).to(x.device, x.dtype)
        grid = F.affine_grid(theta, [len(x), x.shape[1], self.img_size, self.img_size], align_corners=False)
        # the box alone is sampled (its edge pixels repeat beyond their centres), as crop-then-resize does
        low = torch.stack([(2 * left + 1) / side - 1, (2 * top + 1) / side - 1], 1).to(x.device, x.dtype)
        high = torch.stack([(2 * (left + w) - 1) / side - 1, (2 * (top + h) - 1) / side - 1], 1).to(x.device, x.dtype)
        grid = torch.maximum(torch.minimum(grid, high[:, None, None, :]), low[:, None, None, :])
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _jitter(self, x: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
        factor = {name: d[name].to(x.device, x.dtype)[:, None, None, None] for name in self.jitters}
        order = d.get("jitter_order")
        if order is None:
            for name in self.jitters:
                x = _JITTER_FNS[name](x, factor[name])
            return x
        # ColorJitter's random order: at each position, each op on the images that have it there
        order = order.to(x.device)
        for position in range(len(self.jitters)):
            for k, name in enumerate(self.jitters):
                picked = (order[:, position] == k).nonzero().squeeze(1)
                if len(picked):
                    x[picked] = _JITTER_FNS[name](x[picked], factor[name][picked])
        return x


def _shift(index: torch.Tensor, offset: torch.Tensor, size: int) -> torch.Tensor:
    """index[:, offset + i] for i < size (per row of `offset`), -1 outside the map."""
    at = offset + torch.arange(size)
    inside = (at >= 0) & (at < index.shape[1])
    return torch.where(inside, index.gather(1, at.clamp(0, index.shape[1] - 1)), -1)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return to_float(x) if x.dtype == torch.uint8 else x


@lru_cache(maxsize=32)
def _resolved(key: str, img_size: int) -> Augmentation:
    return Augmentation(json.loads(key), img_size)


def augmentation(augment: str | dict[str, Any] | Augmentation, img_size: int) -> Augmentation:
    if isinstance(augment, Augmentation):
        return augment
    return _resolved(json.dumps(augment, sort_keys=True), img_size)


def augment(batch_u8: torch.Tensor, augment: str | dict[str, Any] | Augmentation,
            generator: torch.Generator | None = None, img_size: int | None = None) -> torch.Tensor:
    """A randomly augmented float32 copy of `batch_u8` in [0, 1], new parameters per image.

    `augment` is a preset name, a settings dict or an `Augmentation`; the output side is
    `img_size` (default: the batch's). The arithmetic runs where the batch lives.
    """
    return augmentation(augment, img_size or batch_u8.shape[-1])(batch_u8, generator)


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(x - mean) / std per channel, for a float batch [B,3,S,S]."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device)[:, None, None]
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device)[:, None, None]
    return (x - m) / s


def typed_mean_std(normalization: Any) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """A typed normalisation {"mean": [r, g, b], "std": [r, g, b]} as two tuples (None for a
    name), or a UserError saying what a typed one needs."""
    if isinstance(normalization, str):
        return None
    ok = (isinstance(normalization, dict) and set(normalization) == {"mean", "std"}
          and all(isinstance(normalization[k], (list, tuple)) and len(normalization[k]) == 3
                  and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                          for v in normalization[k]) for k in ("mean", "std"))
          and all(v > 0 for v in normalization["std"]))
    if not ok:
        raise UserError("training.normalization_bad", value=json.dumps(normalization)[:120])
    return tuple(float(v) for v in normalization["mean"]), tuple(float(v) for v in normalization["std"])


def dataset_mean_std(images: ImageSet, chunk: int = 512) -> tuple[tuple[float, ...], tuple[float, ...]]:
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


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).numpy()


def augment_preview(image_u8: torch.Tensor, augment: str | dict[str, Any], n: int = 8, seed: int = 0,
                    img_size: int | None = None) -> list:
    """`n` augmented versions of one stored uint8 image [3,R,R] as HWC uint8 arrays (for display).

    The same seed gives the same versions, so "re-roll" means "next seed".
    """
    batch = image_u8.unsqueeze(0).expand(n, -1, -1, -1)
    out = augmentation(augment, img_size or image_u8.shape[-1])(batch, torch.Generator().manual_seed(seed))
    return [a for a in (out * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()]


def preview(source: Image.Image | str | Path, augment: str | dict[str, Any], img_size: int, n: int = 8,
            seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """A photo as training stores it (HWC uint8) and `n` augmented versions at `img_size`: what
    the Data page's preview shows for any settings."""
    from core.data.cache import decode_resized

    plan = augmentation(augment, img_size)
    stored = decode_resized(source, plan.stored_side, plan.resize_mode)
    return _hwc(stored), augment_preview(stored, plan, n, seed, img_size)


def parse_numbers(text: str, n: int, field: str) -> list[float]:
    """`n` numbers typed as "a, b, c" (the page's fields for ranges and mean/std)."""
    try:
        values = [float(part) for part in str(text).replace("，", ",").split(",") if part.strip()]
    except ValueError:
        values = []
    if len(values) != n or not all(math.isfinite(v) for v in values):
        raise UserError("training.numbers_bad", field=field, n=n, value=text)
    return values


def first_image(split_dir: str | Path, part: str = "train") -> Path | None:
    """The first image of a split's part (for the Training page's preview), or None."""
    from core.data.files import class_folders, class_images

    folder = Path(split_dir) / part
    for cls in class_folders(folder) if folder.is_dir() else []:
        found = class_images(cls)
        if found:
            return found[0]
    return None
