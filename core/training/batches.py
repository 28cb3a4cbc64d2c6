"""A run's data as model input: the split's decoded images and batches of them on the device.

Images come from the decode-once cache as uint8 tensors; augmentation and normalisation run on
whole batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from core.data.augment import IMAGENET_MEAN, IMAGENET_STD, augment, dataset_mean_std, normalize, to_float
from core.data.cache import ImageSet, load_images
from core.data.files import class_images
from core.data.split import read_split_info
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


def load_data(cfg: TrainConfig, cache_dir: Path | None) -> Data:
    info = read_split_info(cfg.data)
    train = load_images(cfg.data, "train", cfg.img_size, cache_dir)
    val = load_images(cfg.data, "val", cfg.img_size, cache_dir)
    mean, std = dataset_mean_std(train) if cfg.normalization == "dataset" else (IMAGENET_MEAN, IMAGENET_STD)
    classes = list(info.get("classes") or train.classes)
    return Data(train, val, count_images(cfg.data, "test", train.classes), classes,
                list(info.get("display_names") or classes), tuple(mean), tuple(std))


class Batches:
    """uint8 batches of an ImageSet turned into model input on `device`."""

    def __init__(self, images: ImageSet, batch_size: int, device: torch.device, mean, std,
                 augment_preset: str | None = None, generator: torch.Generator | None = None,
                 channels_last: bool = False) -> None:
        self.images, self.batch_size, self.device = images, batch_size, device
        self.mean, self.std, self.preset, self.generator = mean, std, augment_preset, generator
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __len__(self) -> int:
        n = len(self.images)
        full, rest = divmod(n, self.batch_size)
        # A training batch of one breaks BatchNorm: it is dropped (the epoch is reshuffled anyway).
        return full + (1 if rest > 1 or (rest == 1 and self.preset is None) else 0)

    def __iter__(self):
        n = len(self.images)
        order = torch.randperm(n, generator=self.generator) if self.preset is not None else torch.arange(n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.images.batch(idx)
            x = augment(x, self.preset, self.generator) if self.preset is not None else to_float(x)
            x = normalize(x, self.mean, self.std)
            x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            yield x, self.images.labels[idx].to(self.device, non_blocking=True), idx
