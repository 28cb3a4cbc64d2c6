"""Unbalanced classes: a loss that weighs each class by its rarity, or batches drawn so that every
class comes up about equally often, and which of the two a split calls for.

A model trained on a folder where one class is several times larger than another learns to
answer the large class; the Data page warns above 3:1 (core.data.scan.IMBALANCE_WARN), and the
Training page then proposes class weights.
"""
from __future__ import annotations

from pathlib import Path

import torch

from core.data.files import class_images
from core.data.scan import Imbalance, imbalance


def class_counts(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    return torch.bincount(labels, minlength=n_classes)


def class_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Inverse class frequency, normalised as scikit-learn's "balanced" (N / (classes * n_c)):
    the weights average 1 over the training images, so the loss keeps its usual size and the
    learning rate its meaning. A class without training images gets weight 0 (it never occurs)."""
    counts = class_counts(labels, n_classes).float()
    present = int((counts > 0).sum())
    weights = torch.zeros(n_classes)
    weights[counts > 0] = len(labels) / (present * counts[counts > 0])
    return weights


def sample_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Each image's chance to be drawn by the balanced sampler: 1 / (its class's image count),
    so every class is drawn about equally often (core.training.batches.Batches)."""
    counts = class_counts(labels, n_classes).float()
    return 1.0 / counts[labels]


def part_counts(split_dir: str | Path, part: str = "train") -> dict[str, int]:
    """Images per class in one part of a split: from `split.json`'s counts when it has them,
    else counted in the folders (an imported split). Empty when the split cannot be read."""
    from core.data.split import read_split_info
    from core.errors import UserError

    try:
        info = read_split_info(split_dir)
    except UserError:
        return {}
    counts = info.get("counts") or {}
    classes = list(info.get("classes") or counts)
    if counts and all(isinstance(counts.get(c), dict) and part in counts[c] for c in classes):
        return {c: int(counts[c][part]) for c in classes}
    folder = Path(split_dir) / part
    return {c: len(class_images(folder / c)) if (folder / c).is_dir() else 0 for c in classes}


def suggested_balance(split_dir: str | Path) -> tuple[str, Imbalance | None]:
    """"weights" when the training part's largest class is more than 3 times its smallest (the
    Data page's warning), else "none"; with the imbalance that decided it (None: fewer than two
    classes with images, or the split is unreadable)."""
    found = imbalance(part_counts(split_dir, "train"))
    return ("weights" if found is not None and found.warn else "none"), found
