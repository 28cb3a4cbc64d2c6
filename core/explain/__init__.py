"""Why a model decided: CAM heatmaps, overlays, filters and feature maps.

`explain(model, info, image, ...)` is the one entry point for a photo; `compute_cams` is the
batched engine under it (pointing game, benchmarks); `render` turns maps into pictures.
"""
from __future__ import annotations

from core.explain.cam import METHOD_LABELS, METHODS, compute_cams, untouched
from core.explain.explainer import (
    Explanation,
    class_choices,
    class_index,
    class_names,
    explain,
    layer_names,
    model_input,
    run_class,
)
from core.explain.layers import LayerInfo, default_layer, feature_layers, resolve_layer

__all__ = [
    "METHODS", "METHOD_LABELS", "Explanation", "LayerInfo", "class_choices", "class_index", "class_names", "compute_cams",
    "default_layer", "explain", "feature_layers", "layer_names", "model_input", "resolve_layer", "run_class", "untouched",
]
