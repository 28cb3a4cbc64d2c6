"""The parity check: does the exported folder predict what the studio predicts?

The same images go through the run's PyTorch model (`core.inference.preprocess`, the one
preprocessing path) and through onnxruntime (the graph fed with the uint8 pixels of the
run's evaluation transform, `core.data.augment.eval_input`, its normalisation inside). Then the folder's own `predict.py` runs as a separate
process on a few of them, so its copy of the preprocessing is checked too, not only the graph.
An export passes when top-1 agrees on at least 99.9% of the images and no probability
differs by more than 1e-4 (torchvision's ONNX tests compare at rtol 1e-3, atol 1e-5).
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.atomic import read_json
from core.data.labels import class_names
from core.inference import ModelInfo

MIN_AGREEMENT = 0.999
MAX_PROB_DIFF = 1e-4
PREDICTOR_IMAGES = 4
CHUNK = 64
DEMO_IMAGES = 16
PREDICTOR_TIMEOUT_S = 300


@dataclass
class ParityImages:
    """The images of the check: a split of the run's data, or demo images drawn for it."""

    source: str                       # "test", "val" or "demo"
    paths: list[Path]
    labels: list[int | None]          # class index, None where unknown (demo shapes the run lacks)


@dataclass
class Parity:
    source: str = ""
    images: int = 0
    top1_agreement: float | None = None
    max_abs_diff: float | None = None
    torch_accuracy: float | None = None
    onnx_accuracy: float | None = None
    predictor_images: int = 0
    predictor_agreement: float | None = None
    predictor_max_abs_diff: float | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)  # {"key": i18n key, "params": {...}}

    @property
    def passed(self) -> bool:
        return not self.problems

    def problem(self, key: str, **params: Any) -> None:
        self.problems.append({"key": key, "params": params})

    def record(self) -> dict[str, Any]:
        """What export.json keeps (and `problems_text` reads back)."""
        return {**asdict(self), "passed": self.passed,
                "thresholds": {"min_top1_agreement": MIN_AGREEMENT, "max_prob_diff": MAX_PROB_DIFF}}


def split_images(split_dir: Path, info: ModelInfo) -> ParityImages | None:
    """The run's test split, else its validation split, with labels from the class folders."""
    from core.data.files import class_images

    for split in ("test", "val"):
        paths: list[Path] = []
        labels: list[int | None] = []
        for index, name in enumerate(info.classes):
            folder = split_dir / split / name
            found = class_images(folder) if folder.is_dir() else []
            paths += found
            labels += [index] * len(found)
        if paths:
            return ParityImages(split, paths, labels)
    return None


def demo_images(folder: Path, info: ModelInfo, count: int = DEMO_IMAGES) -> ParityImages:
    """Demo shapes written to `folder`, for a run whose split is gone; labelled where the run
    has a class of that shape's name (a run trained on the demo set)."""
    import random

    from core.data.demo import SHAPES, draw_sample

    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths, labels = [], []
    for i in range(count):
        shape = SHAPES[i % len(SHAPES)]
        img, _ = draw_sample(shape, (i % len(SHAPES)) / len(SHAPES), max(96, info.img_size), rng)
        paths.append(folder / f"{i:02d}-{shape}.png")
        img.save(paths[-1])
        labels.append(info.classes.index(shape) if shape in info.classes else None)
    return ParityImages("demo", paths, labels)


def _accuracy(probs: np.ndarray, labels: list[int | None]) -> float | None:
    known = [(i, y) for i, y in enumerate(labels) if y is not None]
    if not known:
        return None
    return float(np.mean([int(probs[i].argmax()) == y for i, y in known]))


def _session(model_file: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    return ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])


@torch.no_grad()
def both_probabilities(model: nn.Module, info: ModelInfo, session, images: ParityImages) -> tuple[np.ndarray, np.ndarray]:
    """[N, C] probabilities from PyTorch and from onnxruntime, each image decoded once for both."""
    from core.data.augment import eval_input
    from core.data.images import open_image
    from core.inference import preprocess

    batch = session.get_inputs()[0].shape[0]
    step = batch if isinstance(batch, int) else CHUNK
    side, mode = info.eval_side, info.resize_mode
    ours, theirs = [], []
    for start in range(0, len(images.paths), CHUNK):
        pictures = [open_image(p) for p in images.paths[start:start + CHUNK]]
        ours.append(torch.softmax(model(preprocess(pictures, info)).float(), dim=1).numpy())
        pixels = torch.stack([eval_input(p, info.img_size, side, mode) for p in pictures]).numpy()
        theirs += [session.run(["probs"], {"image": pixels[i:i + step]})[0] for i in range(0, len(pixels), step)]
    return np.concatenate(ours), np.concatenate(theirs)


def _check_files(folder: Path, info: ModelInfo, parity: Parity) -> None:
    """labels.json and preprocess.json must say what the run says: predict.py trusts them."""
    labels = read_json(folder / "labels.json")
    if labels.get("classes") != info.classes or labels.get("display_names") != class_names(info):
        parity.problem("export.check.labels_mismatch", classes=len(info.classes))
    prep = read_json(folder / "preprocess.json")
    side, mode = info.eval_side, info.resize_mode
    if (prep.get("size") != info.img_size or prep.get("mean") != list(info.mean)
            or prep.get("std") != list(info.std)
            or prep.get("resize_to", info.img_size) != side or prep.get("resize_mode", "square") != mode):
        parity.problem("export.check.preprocess_mismatch", size=info.img_size)


def run_predictor(folder: Path, paths: list[Path], top: int) -> list[dict[str, Any]]:
    """The folder's predict.py in a fresh interpreter (`-I`: no PYTHONPATH, no user site, not
    this working directory), as a user would run it; its JSON lines, or RuntimeError."""
    command = [sys.executable, "-I", str(folder / "predict.py"), "--json", "--top", str(top), *map(str, paths)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=PREDICTOR_TIMEOUT_S, cwd=folder)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(lines[-1][:300] if lines else f"exit code {done.returncode}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _check_predictor(folder: Path, info: ModelInfo, images: ParityImages, reference: np.ndarray,
                     parity: Parity) -> None:
    picks = sorted({round(i * (len(images.paths) - 1) / max(1, PREDICTOR_IMAGES - 1))
                    for i in range(min(PREDICTOR_IMAGES, len(images.paths)))})
    try:
        rows = run_predictor(folder, [images.paths[i] for i in picks], len(info.classes))
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as err:
        parity.problem("export.check.predictor_failed", reason=str(err)[:300])
        return
    if len(rows) != len(picks):
        parity.problem("export.check.predictor_failed", reason=f"{len(rows)} answers for {len(picks)} images")
        return
    agree, diff = 0, 0.0
    for i, row in zip(picks, rows):
        probs = np.zeros(len(info.classes))
        for entry in row["top"]:
            if 0 <= entry["index"] < len(probs) and entry["class"] == info.classes[entry["index"]]:
                probs[entry["index"]] = entry["p"]
        # the class folder it names, not only the index: a reordered labels.json is caught here too
        agree += row["top"][0]["class"] == info.classes[int(reference[i].argmax())]
        diff = max(diff, float(np.abs(probs - reference[i]).max()))
    parity.predictor_images = len(picks)
    parity.predictor_agreement = agree / len(picks)
    parity.predictor_max_abs_diff = diff
    if agree < len(picks) or diff > MAX_PROB_DIFF:
        parity.problem("export.check.predictor_mismatch", agree=agree, n=len(picks), diff=diff)


def _reason(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:300] if lines else type(err).__name__


def check_folder(folder: Path, model: nn.Module, info: ModelInfo, images: ParityImages) -> Parity:
    """Every check of an export folder against the run's model; never raises for a bad folder."""
    folder = Path(folder)
    parity = Parity(source=images.source, images=len(images.paths))
    _check_files(folder, info, parity)
    try:
        session = _session(folder / "model.onnx")
    except Exception as err:  # noqa: BLE001 - onnxruntime's own types (InvalidProtobuf, Fail...)
        parity.problem("export.check.onnx_unreadable", reason=_reason(err))
        return parity
    shape = session.get_inputs()[0].shape
    if list(shape[1:]) != [3, info.img_size, info.img_size]:
        parity.problem("export.check.onnx_shape", shape=str(shape), size=info.img_size)
        return parity
    try:
        ours, theirs = both_probabilities(model, info, session, images)
    except Exception as err:  # noqa: BLE001 - a graph that loads but cannot run on these inputs
        parity.problem("export.check.onnx_failed", reason=_reason(err))
        return parity
    if theirs.shape != ours.shape:
        parity.problem("export.check.onnx_shape", shape=str(list(theirs.shape)), size=info.img_size)
        return parity
    parity.top1_agreement = float(np.mean(ours.argmax(1) == theirs.argmax(1)))
    parity.max_abs_diff = float(np.abs(ours - theirs).max())
    parity.torch_accuracy = _accuracy(ours, images.labels)
    parity.onnx_accuracy = _accuracy(theirs, images.labels)
    if parity.top1_agreement < MIN_AGREEMENT:
        parity.problem("export.check.agreement", value=parity.top1_agreement, limit=MIN_AGREEMENT)
    if parity.max_abs_diff > MAX_PROB_DIFF:
        parity.problem("export.check.max_diff", value=parity.max_abs_diff, limit=MAX_PROB_DIFF)
    _check_predictor(folder, info, images, ours, parity)
    return parity


def problems_text(parity: dict[str, Any], lang: str = "en") -> str:
    """The problems of a parity record (from `Parity.record` or export.json) as one sentence."""
    from core.i18n import t

    return "; ".join(t(p["key"], lang, **p.get("params", {})) for p in parity.get("problems", []))


def figures(parity: dict[str, Any], lang: str = "en") -> tuple[str, list[tuple[str, str, str]]]:
    """A heading and (name, value, requirement) rows of a parity record, for the page and the CLI."""
    from core.i18n import t

    def percent(value: float | None) -> str:
        return t("export.figures.none", lang) if value is None else f"{value:.2%}"

    diff = parity.get("max_abs_diff")
    rows = [
        (t("export.figures.agreement", lang), percent(parity.get("top1_agreement")),
         t("export.figures.needs_min", lang, limit=f"{MIN_AGREEMENT:.1%}")),
        (t("export.figures.max_diff", lang), t("export.figures.none", lang) if diff is None else f"{diff:.2e}",
         t("export.figures.needs_max", lang, limit=f"{MAX_PROB_DIFF:.0e}")),
        (t("export.figures.torch_acc", lang), percent(parity.get("torch_accuracy")), ""),
        (t("export.figures.onnx_acc", lang), percent(parity.get("onnx_accuracy")), ""),
    ]
    if parity.get("predictor_images"):
        n = parity["predictor_images"]
        rows.append((t("export.figures.predictor", lang), t(
            "export.figures.predictor_value", lang, n=n, agree=round(parity["predictor_agreement"] * n),
            diff=f"{parity['predictor_max_abs_diff']:.2e}"), ""))
    head = t("export.figures.head", lang, source=t(f"export.source.{parity.get('source') or 'test'}", lang),
             n=parity.get("images", 0))
    return head, rows
