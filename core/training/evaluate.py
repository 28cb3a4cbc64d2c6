"""Evaluating a run on any split: accuracy, per-class scores, confusion matrix, top-k, per image.

A run's own results (`eval_<split>.json`, `predictions.csv`, read by Compare) only ever come
from the split it trained on, unchanged: the folder in its config, holding the files whose
identity the run recorded. Any other data (another folder, or that folder re-split or edited)
is a separate evaluation under `evaluations/`, labelled with the data it was made on.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import torch

from core import runs
from core.atomic import replacing, write_json
from core.data.cache import load_images
from core.data.split import split_identity
from core.errors import UserError
from core.inference import load_model
from core.training.batches import Batches
from core.training.loops import predict_batches

# Notes a finished run carries while its test evaluation is owed (see Trainer._final_test).
TEST_NOTES = ("training.test_split_missing", "training.test_eval_failed")


def metrics(probs: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """Everything a learner looks at for one split, from the predicted probabilities.

    The confusion matrix and per-class scores are counted here (scikit-learn's definitions with
    zero_division=0; the tests hold them to scikit-learn) rather than imported from it: importing
    sklearn.metrics takes about 1.5 s, on every training run's and CLI command's start."""
    n = len(classes)
    pred = probs.argmax(1) if len(labels) else labels
    confusion = torch.bincount(labels * n + pred, minlength=n * n).reshape(n, n)  # rows true, columns predicted
    hits, support, predicted = confusion.diagonal().double(), confusion.sum(1), confusion.sum(0)
    ratio = lambda a, b: torch.where(b > 0, a / b.clamp_min(1), 0.0)  # noqa: E731
    precision, recall, f1 = ratio(hits, predicted), ratio(hits, support), ratio(2 * hits, support + predicted)
    ranked = probs.argsort(dim=1, descending=True)
    topk = {f"top{k}": float((ranked[:, :k] == labels[:, None]).any(1).float().mean())
            for k in (1, 3, 5) if k <= n and len(labels)}
    return {
        "accuracy": float((pred == labels).double().mean()) if len(labels) else float("nan"),
        **topk,
        "per_class": [{"class": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for c, p, r, f, s in zip(classes, precision, recall, f1, support)],
        "confusion": confusion.tolist(),
        "classes": classes,
        "n": len(labels),
    }


def evaluate_run(run_dir: str | Path, data: str | Path | None = None, split: str = "test",
                 device: torch.device | str = "cpu", cache_dir: Path | None = None,
                 batch_size: int = 128) -> dict[str, Any]:
    """Evaluate the run's best weights on `data/split` (default: the run's own split folder).

    On the run's own, unchanged split this writes `eval_<split>.json` (and for test
    `predictions.csv`, and the summary's `test_acc` / `test_top5`, clearing a note that the test
    evaluation was owed: a run whose split went missing can be evaluated later). On other data it
    writes `evaluations/<name>.json` and `.csv` instead, and the result says so: `own_data` False, `other_reason` ("other_folder" or "split_changed"), `stored`.
    """
    run_dir = Path(run_dir)
    model, info = load_model(run_dir)
    config = runs.read_config(run_dir)
    data = Path(data or config["data"]).expanduser()
    images = load_images(data, split, info.eval_side, cache_dir, mode=info.resize_mode)  # its eval transform
    if images.classes != info.classes:
        raise UserError("training.eval_classes_differ", run=run_dir.name, data=str(data),
                        expected=", ".join(info.classes), found=", ".join(images.classes))
    device = torch.device(device)
    model.to(device)
    probs = predict_batches(model, Batches(images, batch_size, device, info.mean, info.std, img_size=info.img_size),
                            tta=config.get("tta", "none"))
    result = metrics(probs, images.labels, info.classes)
    split_id = split_identity(data)
    reason = other_data_reason(run_dir, config, data, split_id, split, len(images))
    record = result | {"data": str(data.resolve()), "split": split, "split_id": split_id}
    if reason is None:
        write_json(run_dir / f"eval_{split}.json", record)
        if split == "test":
            write_predictions(run_dir / "predictions.csv", images, probs, data / split)
            fields = {"test_acc": result["accuracy"], "test_top5": result.get("top5")}
            if runs.read_summary(run_dir).get("message_key") in TEST_NOTES:
                fields |= {"message": "", "message_key": "", "message_params": {}}
            runs.update_summary(run_dir, **fields)
        stored = run_dir / f"eval_{split}.json"
    else:
        stored = run_dir / "evaluations" / f"{_slug(data.resolve().name)}-{split}-{split_id[:8]}.json"
        stored.parent.mkdir(exist_ok=True)
        write_json(stored, record | {"other_data": reason})
        write_predictions(stored.with_suffix(".csv"), images, probs, data / split)
    result |= {"data": record["data"], "split": split, "split_id": split_id, "own_data": reason is None,
               "other_reason": reason, "stored": str(stored), "predictions": probs}
    return result


def other_data_reason(run_dir: Path, config: dict[str, Any], data: Path, split_id: str, split: str,
                      n: int) -> str | None:
    """None when `data` is the run's own split as it trained on it; else why not. The identity
    the run trained on is in its config (and its summary: `create_run` writes both), or absent
    for a run made before runs recorded it."""
    if data.resolve() != Path(config["data"]).expanduser().resolve():
        return "other_folder"
    recorded = config.get("split_id") or runs.read_summary(run_dir).get("split_id")
    if recorded is not None:
        return None if recorded == split_id else "split_changed"
    # A run from before split ids: the image count it noted is all there is to compare.
    noted = config.get(f"n_{split}")
    return "split_changed" if isinstance(noted, int) and noted and noted != n else None


def _slug(name: str) -> str:
    return re.sub(r"[^\w\-]+", "_", name, flags=re.UNICODE).strip("_")[:40] or "data"


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
