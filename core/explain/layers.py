"""Which layers a CAM can look at: every layer whose output is a feature map, by name.

One forward pass of a blank image records, for each module, its output shape and how often it
ran. A layer qualifies when its output is a 4-D map wider than 1 x 1 and it ran once (a module
reused inside a block, like torchvision's shared ReLU, has no single output to explain).

The same pass finds layers that hand on the very map another layer made: a container returns
its last child's output, an eval-mode dropout returns its input. Those are one map under several
names; `distinct` keeps one name per map (`LayerInfo.keep`), the others stay valid raw names.
Each layer also gets a friendly name as data (`LayerInfo.parts`: kind + number, e.g. block 2
output), which `layer_label` words in the user's language with the map's size.
"""
from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.ops import SqueezeExcitation

from core.errors import UserError
from core.i18n import t
from core.models.attention import CBAM, ChannelAttention, SpatialAttention
from core.models.fastnet import Whiten
from core.models.modes import evaluating

COURSE = "course"  # the layer name that means "the course's layer" (see `course_layer`)

# Parts that name a place holding other layers; as a label's last part they read "... output".
UNITS = ("features", "stage", "block", "layer", "part", "unit", "main_path")
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish,
               nn.Hardsigmoid, nn.Sigmoid, nn.Tanh)
POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
NORMS = (nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d, nn.LocalResponseNorm)
RESNET_STEM = ("conv1", "bn1", "relu", "maxpool")
NAMED = {"downsample": "shortcut", "block": "main_path"}  # torchvision's residual blocks: the two paths

Part = tuple[str, "int | str | None"]


@dataclass(frozen=True)
class LayerInfo:
    name: str
    type: str
    shape: tuple[int, int, int]  # channels, height, width for one image
    parts: tuple[Part, ...] = ()  # the friendly name as data: (kind, number or name) from outside in
    keep: str = ""  # the layer listed for this map (this one, or another with the very same output)
    same_as: tuple[str, ...] = field(default=())  # the other layers with the very same output

    @property
    def kept(self) -> bool:
        return self.keep in ("", self.name)


def feature_layers(model: nn.Module, img_size: int) -> list[LayerInfo]:
    """The model's feature-map layers in definition order (the order named_modules gives)."""
    seen: dict[str, list[tuple[int, ...]]] = {}
    maps: dict[str, int] = {}  # layer -> number of the map it returned
    alive: list[tuple[weakref.ref, int, int]] = []  # (output, its version then, map number)

    def record(name: str, out: object) -> None:
        seen.setdefault(name, []).append(tuple(out.shape) if isinstance(out, torch.Tensor) else ())
        if isinstance(out, torch.Tensor):
            # The same tensor object at the same version: no op ran on it in between (an in-place
            # ReLU bumps the version, so a BatchNorm and the ReLU that overwrote it stay apart).
            match = next((n for ref, version, n in alive if ref() is out and version == out._version), None)
            if match is None:
                match = len(alive)
                alive.append((weakref.ref(out), out._version, match))
            maps[name] = match

    with evaluating(model):  # the hooks below must not see another thread's forward pass
        handles = [module.register_forward_hook(lambda _m, _i, out, name=name: record(name, out))
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
            layers.append(LayerInfo(name, type(module).__name__, shapes[0][1:], parts=layer_parts(model, name)))
    return _grouped(layers, maps)


def _grouped(layers: list[LayerInfo], maps: dict[str, int]) -> list[LayerInfo]:
    """Each layer told which one of the layers with its very output is kept: the one with the
    shortest friendly name (a block rather than the pooling that ends it), never a whole
    `features` trunk when one of its blocks says the same, then the outermost."""
    groups: dict[int, list[LayerInfo]] = {}
    for layer in layers:
        groups.setdefault(maps[layer.name], []).append(layer)
    out = []
    for layer in layers:
        members = groups[maps[layer.name]]
        keep = min(members, key=lambda x: (x.name == "features", len(x.parts), x.name.count(".")))
        out.append(replace(layer, keep=keep.name, same_as=tuple(m.name for m in members if m is not layer)))
    return out


def distinct(layers: list[LayerInfo]) -> list[LayerInfo]:
    """One layer per distinct map, in definition order: what a layer menu offers."""
    return [layer for layer in layers if layer.kept]


def kept_layer(layers: list[LayerInfo], name: str) -> LayerInfo | None:
    """The listed layer whose map `name` returns (itself, or the one kept for that map)."""
    by_name = {layer.name: layer for layer in layers}
    layer = by_name.get(name)
    return None if layer is None else by_name.get(layer.keep, layer)


# --- friendly names ------------------------------------------------------------------------

def _kind(module: nn.Module) -> str | None:
    """What a layer does, as one word of the label (None: a plain container)."""
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (Whiten, "whiten"), (nn.Conv2d, "conv"), (nn.BatchNorm2d, "bn"), (NORMS, "norm"), (ACTIVATIONS, "act"), (POOLS, "pool"),
        ((nn.Dropout, nn.Dropout2d), "dropout"), (CBAM, "attention"), (SpatialAttention, "spatial_att"),
        ((ChannelAttention, SqueezeExcitation), "channel_att"),
    ]
    return next((kind for types, kind in kinds if isinstance(module, types)), None)


def _number(piece: str) -> int | None:
    match = re.search(r"(\d+)$", piece)
    return int(match.group(1)) if match and not piece.isdigit() else None


def layer_parts(model: nn.Module, name: str) -> tuple[Part, ...]:
    """The friendly name of layer `name` as data, e.g. (("block", 2), ("conv", None)).

    Course networks read as blocks (builder) or stages and blocks (ResNets, with the CBAM
    stages' attention); any other network as the blocks of its `features` trunk, each layer
    named by what it does. The last part of a place (block, stage...) reads as its output.
    """
    parts: list[Part] = []
    parent: nn.Module = model
    pieces = name.split(".")
    resnet = hasattr(model, "layer1") and hasattr(model, "conv1")
    for depth, piece in enumerate(pieces):
        module = parent.get_submodule(piece)
        kind = _kind(module)
        container = any(True for _ in module.children())
        if depth == 0:
            stage = re.fullmatch(r"(layer|att)(\d+)", piece) if resnet else None
            if piece == "features":
                parts.append(("features", None))
            elif stage:
                parts.append(("stage", int(stage.group(2))))
                if stage.group(1) == "att":
                    parts.append(("attention", None))
            elif resnet and piece in RESNET_STEM:
                parts += [("stem", None), (kind or "layer", None)]
            elif kind:
                parts.append((kind, _number(piece)))
            else:
                parts.append(("unit", piece))
        elif piece.isdigit():
            index = int(piece) + 1
            under_trunk = depth == 1 and parts and parts[-1][0] in ("features", "stage")
            if under_trunk and container:
                parts.append(("block", index))
            elif under_trunk:
                parts += [("layer", index), (kind or "other", type(module).__name__ if kind is None else None)]
            else:
                parts.append((kind, None) if kind else ("part", index))
        elif kind:
            parts.append((kind, _number(piece)))
        elif piece in NAMED:
            parts.append((NAMED[piece], None))
        elif container:
            parts.append(("unit", piece))
        else:
            parts.append(("other", type(module).__name__))
        parent = module
    if len(parts) > 1 and parts[0] == ("features", None):
        parts = parts[1:]  # "features" only says it is in the trunk, as every block is
    # "stage 4 · spatial attention", not "stage 4 · attention · spatial attention"
    parts = [p for i, p in enumerate(parts) if not (p == ("attention", None) and i + 1 < len(parts)
                                                     and parts[i + 1][0] in ("channel_att", "spatial_att"))]
    return tuple(parts)


def part_text(part: Part, lang: str, last: bool) -> str:
    key, value = part
    if key in UNITS:
        return t(f"explain.layer.{key}{'_out' if last else ''}", lang, n=value)
    if key == "other":
        return str(value)
    text = t(f"explain.layer.{key}", lang)
    return text if value is None else f"{text} {value}"


def layer_label(layer: LayerInfo, lang: str = "en", course: bool = False) -> str:
    """"block 2 output, 16x16" (zh "第 2 块输出，16x16"), with "course layer" when `course`."""
    parts = layer.parts or (("other", layer.name),)
    words = t("explain.layer.join", lang).join(part_text(p, lang, i == len(parts) - 1) for i, p in enumerate(parts))
    label = t("explain.layer.sized", lang, label=words, h=layer.shape[1], w=layer.shape[2])
    return t("explain.layer.course_mark", lang, label=label) if course else label


# --- which layer ---------------------------------------------------------------------------

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


def course_layer(model: nn.Module, names: list[str]) -> str:
    """The layer the course reads Grad-CAM from: the last convolution of the network (for
    ResNet18+CBAM `layer4.1.conv2`, the last conv of `layer4`; for the builder's presets the last
    block's `conv`). A one-channel convolution is an attention map, not features: skipped."""
    convs = [n for n in names if isinstance(m := model.get_submodule(n), nn.Conv2d) and m.out_channels > 1]
    return convs[-1] if convs else default_layer(model, names)


def resolve_layer(model: nn.Module, name: str | None, names: list[str]) -> str:
    """`name` if it is a feature-map layer of `model`, the default when None, the course's layer
    for "course", else a UserError."""
    if name is None or name == "":
        return default_layer(model, names)
    if name == COURSE and name not in names:
        return course_layer(model, names)
    if name not in names:
        shown = ", ".join(names[:12]) + (" …" if len(names) > 12 else "")
        raise UserError("explain.unknown_layer", name=name, choices=shown)
    return name


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
