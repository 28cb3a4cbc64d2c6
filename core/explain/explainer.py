"""One photo through one model: prediction, top-k and a CAM at the photo's own size.

The page, the CLI and the benchmarks all call `explain`, so they see the same numbers. The
model and its `info` come from `core.load_model(run_dir)` (an eval-mode model loaded from the
run's checkpoint, never the model being trained).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from core.data.augment import eval_box, normalize, to_float
from core.data.files import natural_order
from core.data.labels import class_names, field_of
from core.errors import UserError
from core.explain.cam import compute_cams
from core.explain.layers import feature_layers, resolve_layer
from core.explain.render import to_box
from core.inference import preprocess
from core.models.modes import exclusive

TINY_SIDE = 16
# A map of 3x3 cells or fewer can only point to a corner or the middle: resnet18_cbam's last stage
# at 64 px is 2x2, and its pointing game on the demo set scored 29% there against 88% at 224 px (7x7).
COARSE_CELLS = 9


def model_input(images: list[Image.Image], info: Any) -> torch.Tensor:
    """Model-ready batch [B,3,S,S], prepared by training's own eval-path `preprocess`."""
    if isinstance(info, dict):  # a plain dict (scripts, tests) with the same fields as ModelInfo
        info = SimpleNamespace(img_size=int(info["img_size"]), mean=tuple(info.get("mean") or (0.0,) * 3),
                               std=tuple(info.get("std") or (1.0,) * 3))
    return preprocess(images, info)


def normalized(batch_u8: torch.Tensor, info: Any) -> torch.Tensor:
    mean = field_of(info, "mean") or (0.0, 0.0, 0.0)
    std = field_of(info, "std") or (1.0, 1.0, 1.0)
    return normalize(to_float(batch_u8), tuple(mean), tuple(std))


def class_index(info: Any, target: int | str | None) -> int | None:
    """A class given by index, folder name or display name -> its index (None stays None)."""
    if target is None or target == "":
        return None
    classes = list(field_of(info, "classes") or [])
    if isinstance(target, int):
        if not 0 <= target < len(classes):
            raise UserError("explain.bad_class", index=target, count=len(classes))
        return target
    for names in (classes, class_names(info)):
        if target in names:
            return names.index(target)
    if target.isdigit():  # "2" from a command line means class number 2 unless a class is named so
        return class_index(info, int(target))
    raise UserError("explain.unknown_class", name=target, choices=", ".join(class_names(info)))


def class_choices(infos: list[Any]) -> dict[str, str]:
    """Folder name -> display name of every class any of `infos` knows, in reading order.

    Runs side by side may be trained on different class sets: a class is picked by its folder
    name, and each run finds it among its own (`run_class`), never by another run's index.
    """
    shown: dict[str, str] = {}
    for info in infos:
        for folder, name in zip(field_of(info, "classes") or [], class_names(info)):
            shown.setdefault(folder, name)
    folders = list(shown)
    return {folders[i]: shown[folders[i]] for i in natural_order(folders)}


def run_class(info: Any, folder: str | None, shown: str | None = None) -> int | None:
    """This run's index of the class folder `folder` (None stays None); a UserError saying so
    when the run was not trained on that class. `shown` names it in the message."""
    if folder is None or folder == "":
        return None
    classes = list(field_of(info, "classes") or [])
    if folder not in classes:
        raise UserError("explain.class_not_in_run", name=shown or folder, choices=", ".join(class_names(info)))
    return classes.index(folder)


@dataclass
class Explanation:
    probs: np.ndarray  # [C] softmax probabilities
    names: list[str]  # class names in index order (display names when known)
    pred: int
    target: int  # the class the CAM explains
    layer: str
    method: str
    cam: np.ndarray  # float32 [H, W] in [0, 1], at the photo's size
    seconds: float
    notes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (i18n key, params)

    @property
    def confidence(self) -> float:
        return float(self.probs[self.pred])

    def topk(self, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs)[:k]
        return [(self.names[i], float(self.probs[i])) for i in order]

    def record(self, k: int = 5) -> dict[str, Any]:
        """A JSON-ready summary (for the CLI's --json)."""
        return {
            "pred": self.names[self.pred], "confidence": round(self.confidence, 6),
            "target": self.names[self.target], "layer": self.layer, "method": self.method,
            "topk": [{"class": n, "prob": round(p, 6)} for n, p in self.topk(k)],
            "size": [int(self.cam.shape[1]), int(self.cam.shape[0])], "seconds": round(self.seconds, 4),
        }


def layer_names(model: nn.Module, info: Any) -> list[str]:
    return [layer.name for layer in feature_layers(model, int(field_of(info, "img_size")))]


def explain(
    model: nn.Module,
    info: Any,
    image: Image.Image,
    method: str = "gradcam",
    layer: str | None = None,
    target: int | str | None = None,
    names: list[str] | None = None,
    cam_size: tuple[int, int] | None = None,
) -> Explanation:
    """Predict `image` and explain `target` (default: the predicted class) with `method`.

    The CAM comes back at the photo's size, or at `cam_size` (width, height) when the caller
    only shows a smaller copy (a 10000 x 8000 photo's map alone would take 320 MB).
    `names` (the model's feature-map layers) may be passed in to skip re-listing them.
    """
    start = time.perf_counter()
    names_of_layers = names if names is not None else layer_names(model, info)
    layer = resolve_layer(model, layer, names_of_layers)
    wanted = class_index(info, target)
    x = model_input([image], info).to(_device(model))
    grid: list[tuple[int, int]] = []
    with exclusive(model):  # the grid hook, like the CAM's own, must not see another thread's pass
        hook = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: grid.append(tuple(out.shape[-2:])))
        try:
            cams, probs = compute_cams(model, x, layer, method, None if wanted is None else [wanted])
        finally:
            hook.remove()
    pred = int(probs[0].argmax())
    width, height = image.size
    notes: list[tuple[str, dict[str, Any]]] = []
    if min(width, height) < TINY_SIDE:
        notes.append(("explain.note_tiny", {"width": width, "height": height}))
    if grid and grid[0][0] * grid[0][1] <= COARSE_CELLS:
        notes.append(("explain.note_coarse", {"layer": layer, "h": grid[0][0], "w": grid[0][1],
                                              "size": int(field_of(info, "img_size"))}))
    out_w, out_h = cam_size or (width, height)
    size = int(field_of(info, "img_size"))
    box = eval_box(width, height, size, field_of(info, "eval_side") or size, field_of(info, "resize_mode") or "square")
    box = (box[0] * out_w / width, box[1] * out_h / height, box[2] * out_w / width, box[3] * out_h / height)
    return Explanation(
        probs=probs[0], names=class_names(info), pred=pred, target=pred if wanted is None else wanted,
        layer=layer, method=method, cam=to_box(cams[0], out_w, out_h, box),
        seconds=time.perf_counter() - start, notes=notes,
    )


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
