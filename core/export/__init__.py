"""Take a trained run out of the studio: an ONNX folder with a standalone predictor, checked.

    result = core.export.export_run("workspace/runs/20261123-101500-simple_cnn")
    result.passed, result.record["parity"]      # figures also in RESULT.folder/export.json

`onnx` builds the graph (normalisation inside), `parity` compares it with the PyTorch model
on the run's test split and runs the folder's predict.py, `folder` writes and zips the folder.
"""
from __future__ import annotations

from core.export.folder import (
    FILES,
    FORMATS,
    ExportResult,
    default_out,
    export_run,
    read_export,
    recheck,
    zip_bytes,
)
from core.export.parity import (
    MAX_PROB_DIFF,
    MIN_AGREEMENT,
    Parity,
    figures,
    problems_text,
)

__all__ = ["FILES", "FORMATS", "MAX_PROB_DIFF", "MIN_AGREEMENT", "ExportResult", "Parity", "default_out",
           "export_run", "figures", "problems_text", "read_export", "recheck", "zip_bytes"]
