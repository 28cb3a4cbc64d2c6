"""Evaluating a run on any split: accuracy, per-class scores, confusion matrix, top-k, per image."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from core import runs
from core.atomic import replacing, write_json
from core.data.cache import load_images
from core.errors import UserError
from core.inference import load_model
from core.training.batches import Batches
from core.training.loops import predict_batches


def metrics(probs: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """Everything a learner looks at for one split, from the predicted probabilities."""
    n = len(classes)
    y, pred = labels.numpy(), probs.argmax(1).numpy()
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=list(range(n)), zero_division=0)
    ranked = probs.argsort(dim=1, descending=True)
    topk = {f"top{k}": float((ranked[:, :k] == labels[:, None]).any(1).float().mean())
            for k in (1, 3, 5) if k <= n and len(labels)}
    return {
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        **topk,
        "per_class": [{"class": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for c, p, r, f, s in zip(classes, precision, recall, f1, support)],
        "confusion": confusion_matrix(y, pred, labels=list(range(n))).tolist(),
        "classes": classes,
        "n": int(len(y)),
    }


def evaluate_run(run_dir: str | Path, data: str | Path | None = None, split: str = "test",
                 device: torch.device | str = "cpu", cache_dir: Path | None = None,
                 batch_size: int = 128) -> dict[str, Any]:
    """Evaluate the run's best weights on `data/split` (default: the run's own split folder).

    Writes `eval_<split>.json`, and `predictions.csv` for the run's own test split.
    """
    run_dir = Path(run_dir)
    model, info = load_model(run_dir)
    data = Path(data or runs.read_config(run_dir)["data"])
    images = load_images(data, split, info.img_size, cache_dir)
    if images.classes != info.classes:
        raise UserError("training.eval_classes_differ", run=run_dir.name, data=str(data),
                        expected=", ".join(info.classes), found=", ".join(images.classes))
    device = torch.device(device)
    model.to(device)
    probs = predict_batches(model, Batches(images, batch_size, device, info.mean, info.std))
    result = metrics(probs, images.labels, info.classes)
    write_json(run_dir / f"eval_{split}.json", result | {"data": str(data), "split": split})
    if split == "test" and data.resolve() == Path(runs.read_config(run_dir)["data"]).resolve():
        write_predictions(run_dir / "predictions.csv", images, probs, data / split)
    result["predictions"] = probs
    return result


def write_predictions(path: Path, images, probs: torch.Tensor, base: Path) -> None:
    """One row per image: path (relative to the split folder), true and predicted class, confidence, loss."""
    conf, pred = probs.max(1)
    losses = -torch.log(probs[torch.arange(len(probs)), images.labels].clamp_min(1e-12))
    with replacing(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "true", "pred", "confidence", "loss"])
        for p, t, k, c, l in zip(images.paths, images.labels.tolist(), pred.tolist(), conf.tolist(), losses.tolist()):
            writer.writerow([Path(p).relative_to(base).as_posix(), images.classes[t], images.classes[k],
                             f"{c:.6f}", f"{l:.6f}"])
