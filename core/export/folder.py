"""The export folder: write it, check it, read it back, zip it.

    RUN/export/onnx/            (or --out DIR)
      model.onnx        uint8 RGB [N,3,S,S] in, `logits` and `probs` out, normalisation inside
      labels.json       {"classes": [class folders], "display_names": [...]}, in output order
      preprocess.json   how a photo becomes the input (resize rule, size, mean/std, interpolation)
      predict.py        `python predict.py photo.jpg`: onnxruntime + numpy + Pillow only
      export.json       versions, opset, and the parity check's figures (`passed`)

The folder is built beside its destination and renamed into place, so an interrupted export
never leaves half a folder; an existing destination is replaced only when it is an export
folder itself (it has export.json), never a folder of the user's.
"""
from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.atomic import read_json, write_json, write_text
from core.data.labels import class_names
from core.errors import UserError
from core.export.onnx import INPUT, OUTPUTS
from core.export.parity import (
    Parity,
    ParityImages,
    check_folder,
    demo_images,
    split_images,
)
from core.inference import ModelInfo

FILES = ("model.onnx", "labels.json", "preprocess.json", "predict.py", "export.json")
TEMPLATE = Path(__file__).resolve().parent / "predict_template.py"
FORMATS = ("onnx",)


@dataclass
class ExportResult:
    folder: Path
    record: dict[str, Any]     # what export.json holds
    parity: Parity

    @property
    def passed(self) -> bool:
        return self.parity.passed


def default_out(run_dir: str | Path) -> Path:
    return Path(run_dir) / "export" / "onnx"


def labels_record(info: ModelInfo) -> dict[str, Any]:
    return {"classes": list(info.classes), "display_names": class_names(info)}


def preprocess_record(info: ModelInfo, batch: int | str) -> dict[str, Any]:
    """Everything a re-implementation needs; predict.py reads `size`, `resize_to` and
    `resize_mode` from here."""
    side, mode = info.eval_side, info.resize_mode
    resize = ("stretch to resize_to x resize_to (no crop, aspect ratio not kept)" if mode == "square" else
              "shorter side to resize_to (the longer one int(resize_to * long / short)), then the "
              "central resize_to x resize_to")
    if side > info.img_size:
        resize += ", then the central size x size (top/left = round((resize_to - size) / 2))"
    return {
        "size": info.img_size,
        "resize_to": side,
        "resize_mode": mode,
        "input": {"name": INPUT, "dtype": "uint8", "layout": "NCHW", "channels": "RGB", "range": [0, 255],
                  "shape": [batch, 3, info.img_size, info.img_size]},
        "outputs": {"logits": "float32 [N, classes]", "probs": "float32 [N, classes], softmax of logits"},
        "open": "Pillow; EXIF orientation applied (ImageOps.exif_transpose); converted to 8-bit RGB "
                "(transparency flattened onto white, 16-bit scaled to 8-bit)",
        "resize": resize,
        "interpolation": "bilinear, antialiased when shrinking (Pillow Image.resize(..., Image.BILINEAR))",
        "mean": list(info.mean),
        "std": list(info.std),
        "normalisation": "inside model.onnx: (pixel / 255 - mean) / std per channel; feed raw uint8 pixels",
    }


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import onnxscript
    import PIL
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxscript": onnxscript.__version__,
            "onnxruntime": onnxruntime.__version__, "pillow": PIL.__version__}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_destination(out: Path) -> None:
    """Refuse to replace anything but an earlier export (or an empty folder)."""
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not (out / "export.json").is_file()):
        raise UserError("export.out_not_ours", path=str(out))


def _shareable(folder: Path) -> None:
    """Ordinary permissions (temporary files are made owner-only), kept in the zip too."""
    folder.chmod(0o755)
    for file in folder.iterdir():
        file.chmod(0o755 if file.name == "predict.py" else 0o644)


def _move_into_place(built: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{time.time_ns()}")
        out.rename(old)
    built.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def parity_images(info: ModelInfo, config: dict[str, Any], scratch: Path) -> ParityImages:
    """The run's test split, else validation, else demo images drawn into `scratch`."""
    split_dir = Path(config.get("data") or "")
    found = split_images(split_dir, info) if str(split_dir) and split_dir.is_dir() else None
    return found or demo_images(scratch, info)


def export_run(run_dir: str | Path, out: str | Path | None = None, fmt: str = "onnx", opset: int | None = None,
               dynamic_batch: bool = False, on_step: Callable[[str], None] | None = None) -> ExportResult:
    """Export the run's best weights to a checked folder (see the module docstring).

    A network the exporter cannot translate raises a UserError naming the operator; a folder
    that fails the parity check is still written, with `passed: false` in export.json, so it
    can be looked at, and the caller says so in red.
    """
    from core import runs
    from core.export.onnx import check_opset, to_onnx
    from core.inference import load_model

    if fmt not in FORMATS:
        raise UserError("export.bad_format", value=fmt, choices=", ".join(FORMATS))
    check_opset(opset)
    step = on_step or (lambda _: None)
    model, info = load_model(run_dir)
    out = Path(out) if out else default_out(info.run_dir)
    check_destination(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        step("export")
        started = time.perf_counter()
        got_opset = to_onnx(model, info, built / "model.onnx", opset, dynamic_batch)
        seconds = time.perf_counter() - started
        write_json(built / "labels.json", labels_record(info))
        write_json(built / "preprocess.json", preprocess_record(info, "batch" if dynamic_batch else 1))
        write_text(built / "predict.py", TEMPLATE.read_text(encoding="utf-8"))
        step("check")
        with tempfile.TemporaryDirectory(prefix="cnn-studio-parity-") as scratch:
            images = parity_images(info, runs.read_config(info.run_dir), Path(scratch))
            parity = check_folder(built, model, info, images)
        record = {
            "format": fmt, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "run": info.run_dir.name,
            "run_dir": str(info.run_dir), "checkpoint": info.checkpoint, "model": info.model,
            "img_size": info.img_size, "opset": got_opset, "dynamic_batch": dynamic_batch,
            "input": f"{INPUT}: uint8 RGB [{'N' if dynamic_batch else 1}, 3, {info.img_size}, {info.img_size}]",
            "outputs": list(OUTPUTS), "export_seconds": round(seconds, 2),
            "model_sha256": _sha256(built / "model.onnx"), "versions": _versions(),
            "parity": parity.record(), "passed": parity.passed,
        }
        write_json(built / "export.json", record)
        _shareable(built)
        _move_into_place(built, out)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    return ExportResult(out, record, parity)


def recheck(run_dir: str | Path, out: str | Path | None = None) -> ExportResult:
    """The parity check again on an existing export folder (after copying it, or to test it);
    its export.json gets the new figures."""
    from core import runs
    from core.inference import load_model

    model, info = load_model(run_dir)
    out = Path(out) if out else default_out(info.run_dir)
    record = read_json(out / "export.json")
    if not record:
        raise UserError("export.no_export", path=str(out))
    with tempfile.TemporaryDirectory(prefix="cnn-studio-parity-") as scratch:
        parity = check_folder(out, model, info, parity_images(info, runs.read_config(info.run_dir), Path(scratch)))
    record = {**record, "parity": parity.record(), "passed": parity.passed,
              "checked": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(out / "export.json", record)
    (out / "export.json").chmod(0o644)
    return ExportResult(out, record, parity)


def read_export(folder: str | Path) -> dict[str, Any]:
    """export.json of a folder ({} when there is none)."""
    return read_json(Path(folder) / "export.json")


def zip_bytes(folder: str | Path) -> bytes:
    """The folder's files as a zip under one directory named after the folder's run."""
    folder = Path(folder)
    name = f"{read_export(folder).get('run') or folder.name}-onnx"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for file in FILES:
            if (folder / file).is_file():
                archive.write(folder / file, f"{name}/{file}")
    return buffer.getvalue()
