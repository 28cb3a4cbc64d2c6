"""The block builder: a network described as plain JSON data, checked, then built.

A spec is `{"blocks": [block, ...], "head": head}`. Each block is conv -> batch norm ->
activation -> pooling -> attention -> dropout; the head flattens (or global-average-pools)
and stacks fully connected layers. The presets `simple_cnn`, `cbam_cnn` and `catdog_cnn` are specs too,
so the page's builder and the presets share one code path. The flatten size is computed
from the input size, so every spec works at any size its pooling allows.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from core.errors import UserError
from core.models.attention import CBAM, SE

ACTIVATIONS: dict[str, type[nn.Module] | None] = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "silu": nn.SiLU, "none": None,
}
POOLS = ("none", "max", "avg")
ATTENTIONS = ("none", "se", "cbam")
HEAD_POOLS = ("flatten", "gap")

BLOCK_DEFAULTS: dict[str, Any] = {
    "out": 32, "kernel": 3, "stride": 1, "bn": False, "act": "relu", "pool": "none",
    "attention": "none", "reduction": 16, "spatial_kernel": 7, "dropout": 0.0,
}
HEAD_DEFAULTS: dict[str, Any] = {"pool": "flatten", "hidden": [], "act": "relu", "dropout": 0.0}
MAX_BLOCKS = 32


def _fail(where: int | str, field: str, why: str, **params: Any) -> UserError:
    """A UserError for block number `where` (0-based) or for "head"/"spec", naming the field."""
    if isinstance(where, int):
        return UserError(f"models.block.{why}", block=where + 1, field=field, **params)
    return UserError(f"models.{where}.{why}", field=field, **params)


def _int(where: int | str, field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(where, field, "bad_int", value=value, low=low, high=high)
    return value


def _choice(where: int | str, field: str, value: Any, choices: tuple[str, ...] | list[str]) -> str:
    if value not in choices:
        raise _fail(where, field, "bad_choice", value=value, choices=", ".join(choices))
    return value


def _prob(where: int | str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise _fail(where, field, "bad_dropout", value=value)
    return float(value)


def _fields(where: int | str, given: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(given, dict):
        raise _fail(where, "", "not_object")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise _fail(where, unknown[0], "unknown_field", fields=", ".join(defaults))
    return copy.deepcopy(defaults) | copy.deepcopy(given)


def normalize_spec(spec: Any) -> dict[str, Any]:
    """The spec with every default filled in, or a UserError naming the block and the field."""
    if not isinstance(spec, dict):
        raise _fail("spec", "", "not_object")
    unknown = sorted(set(spec) - {"blocks", "head", "name"})
    if unknown:
        raise _fail("spec", unknown[0], "unknown_field", fields="blocks, head")
    blocks = spec.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        raise UserError("models.spec.no_blocks")
    if len(blocks) > MAX_BLOCKS:
        raise UserError("models.spec.too_many_blocks", count=len(blocks), most=MAX_BLOCKS)
    out_blocks = []
    for i, given in enumerate(blocks):
        where = i
        b = _fields(where, given, BLOCK_DEFAULTS)
        _int(where, "out", b["out"], 1, 4096)
        _int(where, "kernel", b["kernel"], 1, 15)
        _int(where, "stride", b["stride"], 1, 4)
        if not isinstance(b["bn"], bool):
            raise _fail(where, "bn", "bad_bool", value=b["bn"])
        _choice(where, "act", b["act"], list(ACTIVATIONS))
        _choice(where, "pool", b["pool"], POOLS)
        _choice(where, "attention", b["attention"], ATTENTIONS)
        _int(where, "reduction", b["reduction"], 1, 1024)
        _int(where, "spatial_kernel", b["spatial_kernel"], 1, 15)
        if b["spatial_kernel"] % 2 == 0:
            raise _fail(where, "spatial_kernel", "odd_kernel", value=b["spatial_kernel"])
        b["dropout"] = _prob(where, "dropout", b["dropout"])
        out_blocks.append(b)
    head = _fields("head", spec.get("head", {}), HEAD_DEFAULTS)
    _choice("head", "pool", head["pool"], HEAD_POOLS)
    _choice("head", "act", head["act"], list(ACTIVATIONS))
    if not isinstance(head["hidden"], list):
        raise _fail("head", "hidden", "bad_hidden", value=head["hidden"])
    for width in head["hidden"]:
        _int("head", "hidden", width, 1, 65536)
    head["dropout"] = _prob("head", "dropout", head["dropout"])
    normalized = {"blocks": out_blocks, "head": head}
    if "name" in spec:
        normalized["name"] = spec["name"]
    return normalized


def feature_sizes(spec: dict[str, Any], img_size: int) -> list[int]:
    """Side length of the feature map after each block; a UserError if one drops below 1."""
    size = img_size
    sizes = []
    for i, b in enumerate(spec["blocks"]):
        pad = b["kernel"] // 2
        size = (size + 2 * pad - b["kernel"]) // b["stride"] + 1
        if b["pool"] != "none":
            size //= 2
        if size < 1:
            raise _fail(i, "pool", "too_small", img_size=img_size)
        sizes.append(size)
    return sizes


def _activation(name: str) -> nn.Module | None:
    # Not in-place: Grad-CAM hooks keep a block's intermediate outputs, which must stay intact.
    cls = ACTIVATIONS[name]
    return None if cls is None else cls()


def conv_block(in_ch: int, b: dict[str, Any]) -> nn.Sequential:
    """One block; modules are named (conv, bn, act, pool, attn, drop) so the layer table reads well."""
    layers: dict[str, nn.Module] = {
        "conv": nn.Conv2d(in_ch, b["out"], b["kernel"], stride=b["stride"], padding=b["kernel"] // 2),
    }
    if b["bn"]:
        layers["bn"] = nn.BatchNorm2d(b["out"])
    if (act := _activation(b["act"])) is not None:
        layers["act"] = act
    if b["pool"] == "max":
        layers["pool"] = nn.MaxPool2d(2)
    elif b["pool"] == "avg":
        layers["pool"] = nn.AvgPool2d(2)
    if b["attention"] == "se":
        layers["attn"] = SE(b["out"], b["reduction"])
    elif b["attention"] == "cbam":
        layers["attn"] = CBAM(b["out"], b["reduction"], b["spatial_kernel"])
    if b["dropout"] > 0:
        layers["drop"] = nn.Dropout2d(b["dropout"])
    return _named_sequential(layers)


def _named_sequential(layers: dict[str, nn.Module]) -> nn.Sequential:
    return nn.Sequential(OrderedDict(layers))


class SpecNet(nn.Module):
    """A network built from a spec: `features` (the conv blocks), then `classifier` (the head)."""

    def __init__(self, spec: dict[str, Any], num_classes: int, img_size: int) -> None:
        super().__init__()
        spec = normalize_spec(spec)
        size = feature_sizes(spec, img_size)[-1]
        channels = 3
        blocks = []
        for b in spec["blocks"]:
            blocks.append(conv_block(channels, b))
            channels = b["out"]
        self.features = nn.Sequential(*blocks)
        head = spec["head"]
        layers: dict[str, nn.Module] = {}
        if head["pool"] == "gap":
            layers["pool"] = nn.AdaptiveAvgPool2d(1)
            width = channels
        else:
            width = channels * size * size
        layers["flatten"] = nn.Flatten()
        for j, hidden in enumerate(head["hidden"]):
            layers[f"fc{j + 1}"] = nn.Linear(width, hidden)
            if (act := _activation(head["act"])) is not None:
                layers[f"act{j + 1}"] = act
            if head["dropout"] > 0:
                layers[f"drop{j + 1}"] = nn.Dropout(head["dropout"])
            width = hidden
        layers["out"] = nn.Linear(width, num_classes)
        self.classifier = _named_sequential(layers)
        self.spec = spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def describe_spec(spec: dict[str, Any], lang: str = "en") -> list[str]:
    """A compact one-line-per-block text view of the network, e.g. for the page and the CLI
    (its words in `lang`; layer names such as conv3x3, BN and relu stay as they are written)."""
    from core.i18n import t

    spec = normalize_spec(spec)
    dropout = t("models.outline.dropout", lang)
    lines = []
    for i, b in enumerate(spec["blocks"]):
        parts = [f"conv{b['kernel']}x{b['kernel']}({b['out']}" + (f", s{b['stride']})" if b["stride"] > 1 else ")")]
        if b["bn"]:
            parts.append("BN")
        if b["act"] != "none":
            parts.append(b["act"])
        if b["pool"] != "none":
            parts.append(t(f"models.outline.pool_{b['pool']}", lang))
        if b["attention"] == "se":
            parts.append(f"SE(r={b['reduction']})")
        elif b["attention"] == "cbam":
            parts.append(f"CBAM(r={b['reduction']}, k={b['spatial_kernel']})")
        if b["dropout"]:
            parts.append(f"{dropout} {b['dropout']:g}")
        lines.append(f"{i + 1}. " + " - ".join(parts))
    head = spec["head"]
    parts = [t("models.outline.flatten" if head["pool"] == "flatten" else "models.outline.gap", lang)]
    parts += [t("models.outline.fc", lang, n=h) + (f" - {dropout} {head['dropout']:g}" if head["dropout"] else "")
              for h in head["hidden"]]
    parts.append(t("models.outline.fc_classes", lang))
    lines.append(t("models.outline.head", lang) + ": " + " - ".join(parts))
    return lines


SIMPLE_CNN: dict[str, Any] = {
    "blocks": [
        {"out": 32, "kernel": 3, "act": "relu", "pool": "max"},
        {"out": 64, "kernel": 3, "act": "relu", "pool": "max"},
    ],
    "head": {"pool": "flatten", "hidden": [512]},
}

CBAM_CNN: dict[str, Any] = {
    "blocks": [
        {"out": c, "kernel": 3, "bn": True, "act": "relu", "pool": "max", "attention": "cbam",
         "reduction": 16, "spatial_kernel": 7}
        for c in (32, 64, 128)
    ],
    "head": {"pool": "flatten", "hidden": [512], "dropout": 0.5},
}

# The course's day-43 cats-vs-dogs SimpleCNN: 51,475,010 parameters at 224 px and 2 classes.
CATDOG_CNN: dict[str, Any] = {
    "blocks": [{"out": c, "kernel": 3, "act": "relu", "pool": "max"} for c in (32, 64, 128)],
    "head": {"pool": "flatten", "hidden": [512], "dropout": 0.5},
}

PRESET_SPECS: dict[str, dict[str, Any]] = {"simple_cnn": SIMPLE_CNN, "cbam_cnn": CBAM_CNN, "catdog_cnn": CATDOG_CNN}
