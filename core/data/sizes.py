"""One image size for a split: the default the Model page sizes its table at and Training trains at.

Photos are resized to a square; a size above the photos' own short side only adds pixels to
compute, and on a CPU every doubling of the side costs four times the time. So the default is
the largest usual size not above the split's median short side, capped at `DEFAULT_CAP`.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from PIL import Image

from core.data.files import class_folders, class_images

SIZES = (32, 48, 64, 96, 128, 160, 192, 224)
DEFAULT_SIZE = 64  # without a split, or when its images cannot be read
DEFAULT_CAP = 64  # what a CPU trains in minutes; larger sizes stay one click away
SAMPLE = 64  # images whose headers are read (only the header: no decoding)


def short_sides(split_dir: str | Path, sample: int = SAMPLE) -> list[int]:
    """The short side of up to `sample` training images, spread evenly over the classes' files."""
    train = Path(split_dir) / "train"
    if not train.is_dir():
        return []
    files = sorted(p for folder in class_folders(train) for p in class_images(folder))
    step = max(1, len(files) // sample)
    sides = []
    for path in files[::step][:sample]:
        try:
            with Image.open(path) as img:
                sides.append(min(img.size))
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return sides


def suggest_image_size(split_dir: str | Path | None, cap: int = DEFAULT_CAP) -> int:
    """The default image size for `split_dir` (see the module's docstring); DEFAULT_SIZE without one."""
    sides = short_sides(split_dir) if split_dir else []
    if not sides:
        return DEFAULT_SIZE
    median = statistics.median(sides)
    fitting = [s for s in SIZES if s <= min(median, cap)]
    return fitting[-1] if fitting else SIZES[0]
