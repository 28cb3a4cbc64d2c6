"""What a network is, before training it: layer table, parameter counts, size and FLOPs.

torchinfo walks the layers with one forward pass on a single image; that same pass runs
under torch's FLOP counter, so the table and the FLOPs cost one forward together.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torchinfo
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from core.models.modes import evaluating


@dataclass
class LayerRow:
    name: str
    type: str
    depth: int
    output_shape: list[int]
    params: int
    trainable: int


@dataclass
class ModelSummary:
    img_size: int
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    size_mb: float = 0.0
    flops: int = 0
    output_shape: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> list[dict[str, Any]]:
        """Rows as plain dicts (for pandas/st.dataframe and --json)."""
        return [asdict(r) for r in self.rows]


def summarize(model: nn.Module, img_size: int, depth: int = 3) -> ModelSummary:
    """The layer table for one `img_size` x `img_size` RGB image, in eval mode, without grads."""
    counter = FlopCounterMode(display=False)
    with evaluating(model), torch.no_grad(), counter:
        info = torchinfo.summary(
            model, input_size=(1, 3, img_size, img_size), depth=depth, verbose=0,
            col_names=("output_size", "num_params", "trainable"), device="cpu",
        )
    names = {id(module): name for name, module in model.named_modules()}
    rows = [
        LayerRow(
            name=names.get(id(layer.module), layer.var_name),
            type=layer.class_name,
            depth=layer.depth,
            output_shape=list(layer.output_size),
            params=layer.num_params,
            trainable=layer.trainable_params,
        )
        for layer in info.summary_list
        if 0 < layer.depth <= depth
    ]
    params_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    buffer_bytes = sum(b.numel() * b.element_size() for b in model.buffers())
    return ModelSummary(
        img_size=img_size,
        rows=rows,
        total_params=sum(p.numel() for p in model.parameters()),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        size_mb=(params_bytes + buffer_bytes) / 2**20,
        flops=int(counter.get_total_flops()),
        output_shape=list(info.summary_list[0].output_size) if info.summary_list else [],
    )


def outline(ref: dict[str, Any], summary: ModelSummary, lang: str = "en") -> list[str]:
    """A compact text view of the network: one line per builder block, else per top-level layer."""
    from core.models.builder import PRESET_SPECS, describe_spec

    spec = ref.get("spec") or PRESET_SPECS.get(ref.get("preset", ""))
    if spec is not None:
        return describe_spec(spec, lang)
    return [
        f"{r.name}: {r.type} → {'×'.join(map(str, r.output_shape[1:]))}" + (f" ({r.params:,})" if r.params else "")
        for r in summary.rows if r.depth == 1
    ]
