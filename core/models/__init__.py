"""Networks: attention blocks, the block builder, presets, torchvision backbones, summaries.

The public API other areas use (training, explain, pages, CLI) is re-exported here.
"""
from __future__ import annotations

from core.models.attention import CBAM, SE, ChannelAttention, SpatialAttention
from core.models.backbones import BACKBONES, ResNet18CBAM, pretrained_available, weights_cache_path
from core.models.builder import ATTENTIONS, BLOCK_DEFAULTS, HEAD_DEFAULTS, POOLS, PRESET_SPECS, SpecNet, describe_spec, normalize_spec
from core.models.freeze import FREEZE_POLICIES, FreezeResult, freeze, stages
from core.models.store import delete_spec, duplicate_spec, list_specs, load_spec, rename_spec, save_spec
from core.models.summary import LayerRow, ModelSummary, outline, summarize
from core.models.zoo import PRESETS, build_model, check_ref, describe_ref, load_ref

__all__ = [
    "ATTENTIONS", "BACKBONES", "BLOCK_DEFAULTS", "CBAM", "ChannelAttention", "FREEZE_POLICIES", "FreezeResult",
    "HEAD_DEFAULTS", "LayerRow", "ModelSummary", "POOLS", "PRESETS", "PRESET_SPECS", "ResNet18CBAM", "SE",
    "SpatialAttention", "SpecNet", "build_model", "check_ref", "delete_spec", "describe_ref", "describe_spec", "duplicate_spec",
    "freeze", "list_specs", "rename_spec", "load_ref", "load_spec", "normalize_spec", "outline", "pretrained_available", "save_spec",
    "stages", "summarize", "weights_cache_path",
]
