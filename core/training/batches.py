"""A run's data as model input: the split's decoded images and batches of them on the device.

Images come from the decode-once cache as uint8 tensors (training images at the augmentation's
stored side, evaluation images at the evaluation transform's); augmentation, the evaluation
centre crop and normalisation run on whole batches.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.data.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Augmentation,
    augmentation,
    centre_crop,
    dataset_mean_std,
    eval_transform,
    normalize,
    to_float,
    typed_mean_std,
)
from core.data.cache import ImageSet, load_images
from core.data.files import class_images
from core.data.labels import class_names
from core.data.split import read_split_info
from core.training.balance import sample_weights
from core.training.config import TrainConfig


@dataclass
class Data:
    train: ImageSet
    val: ImageSet
    n_test: int             # test images (0: no test split); decoded only for the final evaluation
    classes: list[str]
    display_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def count_images(split_dir: str | Path, split: str, classes: list[str]) -> int:
    """How many images `load_images` would find in `split_dir/split`, without decoding any."""
    folder = Path(split_dir) / split
    return sum(len(class_images(folder / c)) for c in classes if (folder / c).is_dir())


# (part "train" or "val", images decoded, images in the part) while the cache is built
OnCaching = Callable[[str, int, int], None]


def load_data(cfg: TrainConfig, cache_dir: Path | None, on_caching: OnCaching | None = None) -> Data:
    info = read_split_info(cfg.data)
    plan = augmentation(cfg.augment, cfg.img_size)

    def heard(part: str):
        return None if on_caching is None else lambda done, total: on_caching(part, done, total)

    train = load_images(cfg.data, "train", plan.stored_side, cache_dir, mode=plan.resize_mode,
                        on_progress=heard("train"), cache=cfg.cache)
    side, mode = eval_transform(cfg.augment, cfg.img_size)
    val = load_images(cfg.data, "val", side, cache_dir, mode=mode, on_progress=heard("val"), cache=cfg.cache)
    mean, std = mean_std(cfg.normalization, train)
    classes = list(info.get("classes") or train.classes)
    return Data(train, val, count_images(cfg.data, "test", train.classes), classes,
                class_names({"classes": classes, "display_names": info.get("display_names")}), tuple(mean), tuple(std))


def mean_std(normalization: str | dict[str, Any], train: ImageSet) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The normalisation statistics: ImageNet's, the training images' own, or typed ones."""
    typed = typed_mean_std(normalization)
    if typed is not None:
        return typed
    return dataset_mean_std(train) if normalization == "dataset" else (IMAGENET_MEAN, IMAGENET_STD)


class Batches:
    """uint8 batches of an ImageSet turned into model input of side `img_size` on `device`:
    augmented (training: `augment_preset` is a preset name, settings or an Augmentation) or,
    without augmentation, centre-cropped to `img_size` when stored larger (evaluation).

    Training batches follow a new random order each epoch; `balanced` draws that epoch's images
    with replacement instead, each with chance 1 / its class's count (as many draws as images),
    so every class comes up about equally often. Both come from `generator`, which checkpoints
    save: a resumed run draws exactly what the uninterrupted one would have."""

    def __init__(self, images: ImageSet, batch_size: int, device: torch.device, mean, std,
                 augment_preset: str | dict[str, Any] | Augmentation | None = None,
                 generator: torch.Generator | None = None, channels_last: bool = False,
                 img_size: int | None = None, balanced: bool = False) -> None:
        self.images, self.batch_size, self.device = images, batch_size, device
        self.mean, self.std, self.preset, self.generator = mean, std, augment_preset, generator
        self.img_size = img_size or images.img_size
        self.augmentation = (augmentation(augment_preset, self.img_size) if augment_preset is not None else None)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.draw_weights = sample_weights(images.labels, len(images.classes)) if balanced else None

    def __len__(self) -> int:
        n = len(self.images)
        full, rest = divmod(n, self.batch_size)
        # A training batch of one breaks BatchNorm: it is dropped (the epoch is reshuffled anyway).
        return full + (1 if rest > 1 or (rest == 1 and self.preset is None) else 0)

    def __iter__(self):
        order = self.order()
        for b in range(len(self)):
            yield self.make(order[b * self.batch_size:(b + 1) * self.batch_size])

    def order(self) -> torch.Tensor:
        """This epoch's image indices, in batch order (draws from `generator` when training)."""
        n = len(self.images)
        if self.draw_weights is not None:
            return torch.multinomial(self.draw_weights, n, replacement=True, generator=self.generator)
        if self.preset is not None:
            return torch.randperm(n, generator=self.generator)
        return torch.arange(n)

    def make(self, idx: torch.Tensor, draws: dict[str, torch.Tensor] | None = None):
        """(input, labels, indices) of the images `idx`; augmented with `draws` (Augmentation.draw's
        parameters, one row per image) when given, else with parameters drawn now."""
        x = self.images.batch(idx)
        if self.augmentation is not None:
            if draws is None:
                draws = self.augmentation.draw(len(idx), self.generator)
            x = self.augmentation.apply(x, draws)
        else:
            x = to_float(centre_crop(x, self.img_size))
        x = normalize(x, self.mean, self.std)
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        return x, self.images.labels[idx].to(self.device, non_blocking=True), idx
