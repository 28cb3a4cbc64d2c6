"""The built-in demo dataset: coloured shapes on cluttered backgrounds, generated in seconds.

No download and no licence questions, yet it behaves like a photo folder: class folders of
JPEGs, objects at random positions, scales and rotations on varied backgrounds with clutter.
Each class is a shape with its own hue band, so a small CNN learns it quickly; the clutter
is muted, so a good heatmap lands on the object. `annotations.csv` gives every object's box,
which the Explain page and the tests use to check where the heatmaps land.
"""
from __future__ import annotations

import colorsys
import csv
import math
import os
import random
import shutil
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from core.errors import UserError

SHAPES = ("circle", "square", "triangle", "star", "cross", "hexagon", "ring", "diamond")


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Outline points of `shape` centred at (cx, cy) with outer radius r, rotated by `angle`."""
    if shape in ("circle", "ring"):
        points = [(1.0, 2 * math.pi * i / 48) for i in range(48)]
    elif shape == "square":
        points = [(1.0, math.pi / 4 + math.pi / 2 * i) for i in range(4)]
    elif shape == "diamond":
        points = [(1.0 if i % 2 == 0 else 0.55, math.pi / 2 * i) for i in range(4)]
    elif shape == "triangle":
        points = [(1.0, -math.pi / 2 + 2 * math.pi / 3 * i) for i in range(3)]
    elif shape == "hexagon":
        points = [(1.0, math.pi / 3 * i) for i in range(6)]
    elif shape == "star":
        points = [(1.0 if i % 2 == 0 else 0.42, -math.pi / 2 + math.pi / 5 * i) for i in range(10)]
    elif shape == "cross":
        w = 0.35
        corners = [(w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w), (-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w)]
        points = [(math.hypot(x, y), math.atan2(y, x)) for x, y in corners]
    else:
        raise ValueError(shape)
    return [(cx + r * m * math.cos(a + angle), cy + r * m * math.sin(a + angle)) for m, a in points]


def _colour(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    return tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue % 1.0, saturation, value))


def _background(rng: random.Random, size: int) -> Image.Image:
    """A muted gradient with random lines, blobs and noise: clutter that is never the answer."""
    top = _colour(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.35, 0.9))
    bottom = _colour(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.35, 0.9))
    img = Image.linear_gradient("L").resize((size, size)).rotate(rng.uniform(0, 360))
    img = Image.composite(Image.new("RGB", (size, size), bottom), Image.new("RGB", (size, size), top), img)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(4, 10)):
        muted = _colour(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.2, 0.95))
        x, y = rng.uniform(0, size), rng.uniform(0, size)
        if rng.random() < 0.5:
            draw.line([(x, y), (rng.uniform(0, size), rng.uniform(0, size))], fill=muted, width=rng.randint(1, 3))
        else:
            r = rng.uniform(size * 0.03, size * 0.12)
            draw.ellipse([x - r, y - r * rng.uniform(0.4, 1), x + r, y + r], fill=muted)
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))


def draw_sample(shape: str, hue: float, size: int, rng: random.Random) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """One image of `shape` and its object box (x0, y0, x1, y1) in pixels, inclusive-exclusive."""
    img = _background(rng, size)
    r = rng.uniform(0.14, 0.3) * size
    cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    points = _polygon(shape, cx, cy, r, rng.uniform(0, 2 * math.pi))
    fill = _colour(hue + rng.uniform(-0.03, 0.03), rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0))
    draw = ImageDraw.Draw(img)
    if shape == "ring":
        draw.line(points + points[:1], fill=fill, width=max(2, int(r * 0.3)), joint="curve")
    else:
        draw.polygon(points, fill=fill)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    pad = int(r * 0.15) if shape == "ring" else 1
    box = (max(0, int(min(xs)) - pad), max(0, int(min(ys)) - pad),
           min(size, math.ceil(max(xs)) + pad), min(size, math.ceil(max(ys)) + pad))
    return img, box


def make_demo(out: str | Path, classes: int = 5, per_class: int = 200, size: int = 96, seed: int = 0) -> Path:
    """Write the demo set to `out` (class folders of JPEGs + annotations.csv) and return `out`.

    Refuses a folder that already holds files, so nothing of the user's is overwritten.
    """
    if not 2 <= classes <= len(SHAPES):
        raise UserError("data.demo_classes", low=2, high=len(SHAPES))
    if per_class < 1 or not 16 <= size <= 1024:
        raise UserError("data.demo_size", per_class=per_class, size=size)
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()):
        raise UserError("data.demo_exists", path=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    # Built next to `out` and renamed into place: an interrupted run leaves no half-made set.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        rng = random.Random(seed)
        rows = []
        for index, shape in enumerate(SHAPES[:classes]):
            (tmp / shape).mkdir()
            hue = index / classes
            for i in range(per_class):
                img, box = draw_sample(shape, hue, size, rng)
                rel = f"{shape}/{shape}_{i:04d}.jpg"
                img.save(tmp / rel, quality=92)
                rows.append([rel, shape, *box])
        with (tmp / "annotations.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "class", "x0", "y0", "x1", "y1"])
            writer.writerows(rows)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
