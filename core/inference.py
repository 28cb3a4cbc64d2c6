"""A trained run as a model: load it, prepare images, predict. The one path used by predict,
explain, evaluate and export, and the Python API for outside scripts:

    model, info = core.load_model("workspace/runs/20261123-101500-simple_cnn")
    probs = core.predict(model, ["photo.jpg"], info)     # or core.predict(run_dir, images)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
from PIL import Image
from torch import nn

from core import runs
from core.data.labels import class_names, field_of  # noqa: F401 - part of this API
from core.errors import UserError
from core.training import checkpoint


@dataclass
class ModelInfo:
    run_dir: Path
    classes: list[str]          # folder names, in index order
    display_names: list[str]    # what to show (cat_to_name.json), same order
    img_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    model: dict[str, Any]       # the model reference (preset, backbone or builder spec)
    checkpoint: str             # which file the weights came from
    eval_side: int = 0          # evaluation transform: resize to this side (0: the image size),
    resize_mode: str = "square"  # "square" (stretch) or "shorter", then a centre crop to img_size


def load_model(run_dir: str | Path, which: str = "best") -> tuple[nn.Module, ModelInfo]:
    """The run's network in eval mode on the CPU, with its weights from `best.pt` (or `last.pt`).

    Anything that cannot become a model (no checkpoint, one saved for another network, an
    unreadable file) is a UserError naming the run, so the page and the CLI show a sentence.
    """
    run_dir = Path(run_dir)
    try:
        return _load_model(run_dir, which)
    except UserError:
        raise
    except FileNotFoundError as err:
        raise UserError("runs.checkpoint_missing", run=run_dir.name, reason=str(err)) from err
    except (RuntimeError, KeyError, ValueError, EOFError, OSError) as err:
        raise UserError("runs.checkpoint_bad", run=run_dir.name, reason=str(err).splitlines()[0][:300]) from err


def _load_model(run_dir: Path, which: str) -> tuple[nn.Module, ModelInfo]:
    from core.data.augment import eval_transform
    from core.models import build_model
    from core.models.zoo import without_weights

    config = runs.read_config(run_dir)
    if not config.get("classes"):
        raise UserError("training.not_a_run", path=str(run_dir))
    files = [f"{which}.pt"] + (["last.pt"] if which == "best" else [])
    path = next((run_dir / f for f in files if (run_dir / f).is_file()), run_dir / files[0])
    state = checkpoint.load(path)
    if list(state.get("classes", [])) != list(config["classes"]) or state.get("img_size") != config["img_size"]:
        raise UserError("training.checkpoint_mismatch", path=str(path), reason="classes or image size differ")
    # The checkpoint holds every weight: the pretrained or local file it started from is not needed.
    model = build_model(without_weights(config["model"]), len(config["classes"]), int(config["img_size"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise UserError("training.checkpoint_mismatch", path=str(path), reason=str(err).splitlines()[0][:200]) from None
    model.eval()
    img_size = int(config["img_size"])
    side, mode = eval_transform(config.get("augment"), img_size)
    info = ModelInfo(run_dir=run_dir, classes=list(config["classes"]), display_names=class_names(config),
                     img_size=img_size, mean=tuple(config["mean"]), std=tuple(config["std"]),
                     model=config["model"], checkpoint=path.name, eval_side=side, resize_mode=mode)
    return model, info


def preprocess(images: Iterable[Image.Image | str | Path], info: ModelInfo) -> torch.Tensor:
    """Model input [N,3,S,S], prepared exactly like the evaluation batches of training: the run's
    evaluation transform (resize, then a centre crop when it resizes larger), then normalisation.
    A bare info (a script's namespace or dict) without the transform resizes straight to size."""
    from core.data.augment import eval_input, normalize, to_float

    size = int(field_of(info, "img_size"))
    side, mode = field_of(info, "eval_side") or size, field_of(info, "resize_mode") or "square"
    batch = torch.stack([eval_input(img, size, side, mode) for img in images])
    return normalize(to_float(batch), info.mean, info.std)


@torch.no_grad()
def predict(run_or_model: str | Path | nn.Module, images: Iterable[Image.Image | str | Path],
            info: ModelInfo | None = None) -> torch.Tensor:
    """Class probabilities [N, C] for `images` (PIL images or paths)."""
    from core.models.modes import evaluating

    if isinstance(run_or_model, nn.Module):
        if info is None:
            raise ValueError("predict(model, images) needs the model's info from load_model")
        model = run_or_model
    else:
        model, info = load_model(run_or_model)
    images = list(images)
    if not images:
        return torch.zeros((0, len(info.classes)))
    device = next(model.parameters()).device
    with evaluating(model):
        return torch.softmax(model(preprocess(images, info).to(device)).float(), dim=1).cpu()
