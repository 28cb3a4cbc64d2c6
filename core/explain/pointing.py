"""The pointing game: does the heatmap's hottest point fall on the object?

On the demo set every image comes with its object's box (`annotations.csv` in each split
folder). For each correctly classified image, the CAM of its class counts as a hit when its
maximum lies inside the box. It measures localisation without any human judging heatmaps.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from core.data.cache import decode_many
from core.data.labels import field_of
from core.errors import UserError
from core.explain.cam import compute_cams
from core.explain.explainer import layer_names, normalized
from core.explain.layers import resolve_layer

ANNOTATIONS = "annotations.csv"


@dataclass(frozen=True)
class PointingResult:
    hits: int
    correct: int  # correctly classified images: the ones scored
    total: int  # annotated images seen
    layer: str
    method: str

    @property
    def rate(self) -> float:
        return self.hits / self.correct if self.correct else 0.0


def read_boxes(split_folder: str | Path) -> list[dict[str, Any]]:
    """Rows of `annotations.csv`: path (absolute), class, box (x0, y0, x1, y1) in pixels."""
    folder = Path(split_folder)
    path = folder / ANNOTATIONS
    if not path.is_file():
        raise UserError("explain.no_annotations", path=str(path))
    with path.open(newline="", encoding="utf-8") as fh:
        return [{"path": folder / row["path"], "class": row["class"],
                 "box": tuple(int(row[k]) for k in ("x0", "y0", "x1", "y1"))} for row in csv.DictReader(fh)]


def pointing_game(
    model: nn.Module,
    info: Any,
    split_folder: str | Path,
    method: str = "gradcam",
    layer: str | None = None,
    limit: int | None = None,
    batch_size: int = 32,
) -> PointingResult:
    """Score `model` on the annotated images of one split folder (e.g. SPLIT/test)."""
    from PIL import Image

    classes = list(field_of(info, "classes"))
    size = int(field_of(info, "img_size"))
    rows = [r for r in read_boxes(split_folder) if r["class"] in classes][:limit]
    layer = resolve_layer(model, layer, layer_names(model, info))
    hits = correct = 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        labels = [classes.index(r["class"]) for r in chunk]
        x = normalized(decode_many([r["path"] for r in chunk], size), info)
        cams, probs = compute_cams(model, x, layer, method, labels)
        for row, label, cam, p in zip(chunk, labels, cams, probs):
            if int(np.argmax(p)) != label:
                continue
            correct += 1
            with Image.open(row["path"]) as img:
                width, height = img.size
            y, x_ = np.unravel_index(int(np.argmax(cam)), cam.shape)
            # The hottest input pixel's centre, in the original image's pixels.
            px, py = (x_ + 0.5) * width / cam.shape[1], (y + 0.5) * height / cam.shape[0]
            x0, y0, x1, y1 = row["box"]
            hits += int(x0 <= px < x1 and y0 <= py < y1)
    return PointingResult(hits=hits, correct=correct, total=len(rows), layer=layer, method=method)


