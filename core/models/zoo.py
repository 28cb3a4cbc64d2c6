"""Model references (plain JSON) -> networks: presets, torchvision backbones, builder specs.

A reference is one of
    {"preset": "simple_cnn" | "cbam_cnn" | "resnet18_cbam" | "catdog_cnn" | "fast_cnn"}
    {"backbone": "resnet18", "pretrained": false, "weights_path": null}
    {"spec": {"blocks": [...], "head": {...}}}
optionally with a "name" and a suggested "freeze" policy (applied by training through
`core.models.freeze`, not by `build_model`); `resnet18_cbam` also takes "pretrained" /
"weights_path" (for its ResNet18 part). Keeping the reference as data lets runs, saved specs and the CLI share it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from core.errors import UserError
from core.models.backbones import (
    BACKBONES, ResNet18CBAM, build_backbone, load_backbone_weights, pretrained_state_dict, read_weights_file,
)
from core.models.builder import PRESET_SPECS, SpecNet, normalize_spec
from core.models.fastnet import FastNet

PRESETS = ("simple_cnn", "cbam_cnn", "resnet18_cbam", "catdog_cnn", "fast_cnn")
MIN_IMG_SIZE, MAX_IMG_SIZE = 8, 1024
REF_KEYS = {"name", "preset", "backbone", "spec", "pretrained", "weights_path", "freeze"}


def check_ref(ref: Any) -> str:
    """The reference's kind ("preset", "backbone" or "spec"), or a UserError saying what is wrong."""
    if not isinstance(ref, dict):
        raise UserError("models.ref_bad", ref=str(ref)[:80])
    kinds = [k for k in ("preset", "backbone", "spec") if k in ref]
    if len(kinds) != 1 or set(ref) - REF_KEYS:
        raise UserError("models.ref_bad", ref=json.dumps(ref, ensure_ascii=False)[:80])
    kind = kinds[0]
    if kind == "preset" and ref["preset"] not in PRESETS:
        raise UserError("models.unknown_preset", name=ref["preset"], choices=", ".join(PRESETS))
    if kind == "backbone" and ref["backbone"] not in BACKBONES:
        raise UserError("models.unknown_backbone", name=ref["backbone"], choices=", ".join(BACKBONES))
    if kind == "spec":
        normalize_spec(ref["spec"])
    if "freeze" in ref:
        from core.models.freeze import parse_policy

        parse_policy(ref["freeze"])
    return kind


def _weights(model: nn.Module, ref: dict[str, Any], arch: str) -> None:
    if ref.get("weights_path"):
        path = str(ref["weights_path"])
        load_backbone_weights(model, read_weights_file(path), path)
    elif ref.get("pretrained"):
        load_backbone_weights(model, pretrained_state_dict(arch), arch)


def without_weights(ref: dict[str, Any]) -> dict[str, Any]:
    """The same architecture without its starting weights (pretrained or a file): what to build
    when a checkpoint will overwrite every weight, so a run needs only its own folder."""
    return {k: v for k, v in ref.items() if k not in ("pretrained", "weights_path")}


def build_model(ref: dict[str, Any], num_classes: int, img_size: int) -> nn.Module:
    """The network for `ref`, with a head for `num_classes`, checked against `img_size`."""
    kind = check_ref(ref)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise UserError("models.bad_classes", value=num_classes)
    if isinstance(img_size, bool) or not isinstance(img_size, int) or not MIN_IMG_SIZE <= img_size <= MAX_IMG_SIZE:
        raise UserError("models.bad_img_size", value=img_size, low=MIN_IMG_SIZE, high=MAX_IMG_SIZE)
    if kind == "spec":
        return SpecNet(ref["spec"], num_classes, img_size)
    if kind == "preset" and ref["preset"] in PRESET_SPECS:
        return SpecNet(PRESET_SPECS[ref["preset"]], num_classes, img_size)
    if kind == "preset" and ref["preset"] == "fast_cnn":
        return FastNet(num_classes)
    if kind == "preset":  # resnet18_cbam
        model: nn.Module = ResNet18CBAM(num_classes)
        _weights(model, ref, "resnet18")
        return model
    model = build_backbone(ref["backbone"], num_classes)
    _weights(model, ref, ref["backbone"])
    return model


def describe_ref(ref: dict[str, Any]) -> str:
    """A short label for lists and legends: the preset, backbone or spec's name."""
    if not isinstance(ref, dict):
        return "?"
    if ref.get("name"):
        return str(ref["name"])
    if "preset" in ref:
        label = str(ref["preset"])
    elif "backbone" in ref:
        label = str(ref["backbone"])
    else:
        return str(ref.get("spec", {}).get("name") or "custom")
    if ref.get("weights_path"):
        label += f" ({Path(str(ref['weights_path'])).name})"
    elif ref.get("pretrained"):
        label += " (pretrained)"
    return label


def load_ref(path_or_name: str | Path, models_dir: str | Path | None = None) -> dict[str, Any]:
    """A reference from a JSON file, a saved spec's name, a preset or a backbone name."""
    text = str(path_or_name)
    path = Path(text).expanduser()
    if text in PRESETS:
        return {"preset": text}
    if text in BACKBONES:
        return {"backbone": text, "pretrained": False, "weights_path": None}
    if not path.is_file() and models_dir is not None:
        saved = Path(models_dir) / f"{text}.json"
        path = saved if saved.is_file() else path
    if not path.is_file():
        raise UserError("models.ref_not_found", name=text)
    try:
        ref = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError("models.ref_unreadable", path=str(path), reason=str(err)) from err
    if isinstance(ref, dict) and "blocks" in ref and "spec" not in ref:
        ref = {"spec": ref}  # a bare builder spec file
    check_ref(ref)
    return ref
