"""Which layers a CAM can look at: every layer whose output is a feature map, by name.

One forward pass of a blank image records, for each module, its output shape and how often it
ran. A layer qualifies when its output is a 4-D map wider than 1 x 1 and it ran once (a module
reused inside a block, like torchvision's shared ReLU, has no single output to explain).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision import models as tvm

from core.errors import UserError
from core.models.modes import evaluating


@dataclass(frozen=True)
class LayerInfo:
    name: str
    type: str
    shape: tuple[int, int, int]  # channels, height, width for one image


def feature_layers(model: nn.Module, img_size: int) -> list[LayerInfo]:
    """The model's feature-map layers in definition order (the order named_modules gives)."""
    seen: dict[str, list[tuple[int, ...]]] = {}
    with evaluating(model):  # the hooks below must not see another thread's forward pass
        handles = [module.register_forward_hook(
            lambda _m, _i, out, name=name: seen.setdefault(name, []).append(
                tuple(out.shape) if isinstance(out, torch.Tensor) else ()))
            for name, module in model.named_modules() if name]
        try:
            with torch.no_grad():
                model(torch.zeros(1, 3, img_size, img_size, device=_device(model)))
        finally:
            for handle in handles:
                handle.remove()
    layers = []
    for name, module in model.named_modules():
        shapes = seen.get(name, [])
        if len(shapes) == 1 and len(shapes[0]) == 4 and shapes[0][2] * shapes[0][3] > 1:
            layers.append(LayerInfo(name, type(module).__name__, shapes[0][1:]))
    return layers


def default_layer(model: nn.Module, names: list[str]) -> str:
    """The last convolutional block's output, where CAMs are usually read.

    The course's ResNet18+CBAM: the last stage's attention block (`att4`); builder networks
    (simple_cnn, cbam_cnn, custom specs): their last block; torchvision ResNets: `layer4`;
    other backbones: their `features` trunk; anything else: the last feature-map layer.
    """
    from core.models import ResNet18CBAM, SpecNet

    if not names:
        raise UserError("explain.no_layers")
    if isinstance(model, ResNet18CBAM):
        preferred = "att4"
    elif isinstance(model, SpecNet):
        preferred = f"features.{len(model.features) - 1}"
    elif isinstance(model, tvm.ResNet):
        preferred = "layer4"
    else:
        preferred = "features"
    return preferred if preferred in names else names[-1]


def resolve_layer(model: nn.Module, name: str | None, names: list[str]) -> str:
    """`name` if it is a feature-map layer of `model`, the default when None, else a UserError."""
    if name is None or name == "":
        return default_layer(model, names)
    if name not in names:
        shown = ", ".join(names[:12]) + (" …" if len(names) > 12 else "")
        raise UserError("explain.unknown_layer", name=name, choices=shown)
    return name


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
