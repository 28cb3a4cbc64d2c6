"""A run's network as an ONNX graph that takes the image as the studio decodes it.

The graph starts at uint8 RGB [N, 3, S, S] (what `core.data.augment.eval_input` makes) and
does the rest of `core.inference.preprocess` itself - scale to [0, 1], subtract the mean,
divide by the std - so a user of the file cannot get the normalisation wrong. It ends with
both `logits` and `probs` (softmax). Exported with torch's dynamo exporter (`torch.export`
then onnxscript), not the deprecated TorchScript one.
"""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import torch
from torch import nn

from core.errors import UserError
from core.inference import ModelInfo

INPUT, OUTPUTS = "image", ("logits", "probs")
MIN_OPSET = 18  # the dynamo exporter's lowest; below it torch converts after the fact, often failing


class ExportGraph(nn.Module):
    """`model` behind the studio's scaling and normalisation, with a softmax after it."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        # float32 like core.data.augment.normalize, so both sides compute with the same numbers
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image.float() / 255.0
        logits = self.model((x - self.mean) / self.std).float()
        return logits, torch.softmax(logits, dim=1)


def max_opset() -> int:
    import onnx

    return int(onnx.defs.onnx_opset_version())


def check_opset(opset: int | None) -> None:
    if opset is not None and not MIN_OPSET <= opset <= max_opset():
        raise UserError("export.bad_opset", value=opset, low=MIN_OPSET, high=max_opset())


def unsupported_operator(err: BaseException) -> str | None:
    """The PyTorch operator the exporter could not translate (e.g. `aten.cummax.default`), if it says."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        text = str(err)
        found = re.search(r"target=torch\.ops\.([\w.]+)", text) or re.search(r"OpOverload\(op='([\w.]+)'", text)
        if found:
            return found.group(1)
        err = err.__cause__ or err.__context__
    return None


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0][:300] if lines else ''}"


def to_onnx(model: nn.Module, info: ModelInfo, path: Path, opset: int | None = None,
            dynamic_batch: bool = False) -> int:
    """Write `model` (eval mode, CPU) as `path`; returns the graph's opset.

    A fixed batch of 1 unless `dynamic_batch`. A network the exporter cannot translate is a
    UserError naming the operator, so the page and the CLI say what to change.
    """
    import onnx

    check_opset(opset)
    graph = ExportGraph(model, info.mean, info.std).eval()
    size = info.img_size
    # An example batch of 2 for a dynamic batch: torch.export would treat a size-1 axis as fixed.
    example = torch.zeros((2 if dynamic_batch else 1, 3, size, size), dtype=torch.uint8)
    shapes = {INPUT: {0: torch.export.Dim("batch")}} if dynamic_batch else None
    try:
        # The exporter narrates its steps on stdout, which would break the CLI's --json lines.
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            torch.onnx.export(graph, (example,), str(path), dynamo=True, opset_version=opset,
                              input_names=[INPUT], output_names=list(OUTPUTS), dynamic_shapes=shapes,
                              external_data=False, verbose=False)
    except Exception as err:
        op = unsupported_operator(err)
        if op:
            raise UserError("export.unsupported_op", op=op, run=info.run_dir.name) from err
        raise UserError("export.failed_export", run=info.run_dir.name, reason=_first_line(err)) from err
    written = {o.domain: o.version for o in onnx.load(str(path), load_external_data=False).opset_import}
    got = int(written.get("", written.get("ai.onnx", 0)))
    if opset is not None and got != opset:
        raise UserError("export.opset_not_reached", asked=opset, got=got)
    return got
