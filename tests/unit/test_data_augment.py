"""Batched augmentation presets, normalisation and dataset statistics."""
from __future__ import annotations

import pytest
import torch

from core.data.augment import (AUGMENT_PRESETS, IMAGENET_MEAN, IMAGENET_STD, augment, augment_preview,
                               dataset_mean_std, normalize, to_float)


@pytest.fixture
def batch() -> torch.Tensor:
    return torch.randint(0, 256, (16, 3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("preset", AUGMENT_PRESETS)
def test_presets_keep_shape_range_and_are_seeded(batch, preset):
    a = augment(batch, preset, torch.Generator().manual_seed(1))
    b = augment(batch, preset, torch.Generator().manual_seed(1))
    assert a.shape == batch.shape and a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b)
    if preset == "none":
        assert torch.equal(a, to_float(batch))
    else:
        assert not torch.equal(a, augment(batch, preset, torch.Generator().manual_seed(2)))
        per_image_changed = (a != to_float(batch)).flatten(1).any(1)
        assert per_image_changed.float().mean() > 0.5  # new parameters per image


def test_light_is_a_flip_and_a_whole_pixel_shift(batch):
    """No interpolation blur: every pixel is an original pixel or black padding."""
    out = augment(batch, "light", torch.Generator().manual_seed(3))
    x = to_float(batch)
    for img, orig in zip(out, x):
        found = False
        for candidate in (orig, orig.flip(-1)):
            for dy in range(-3, 4):
                for dx in range(-3, 4):
                    shifted = torch.zeros_like(candidate)
                    ys, xs = slice(max(dy, 0), 24 + min(dy, 0)), slice(max(dx, 0), 24 + min(dx, 0))
                    yo, xo = slice(max(-dy, 0), 24 + min(-dy, 0)), slice(max(-dx, 0), 24 + min(-dx, 0))
                    shifted[:, ys, xs] = candidate[:, yo, xo]
                    found |= torch.allclose(img, shifted, atol=1e-5)
        assert found


def test_strong_can_turn_images_gray():
    colour = torch.zeros((200, 3, 8, 8), dtype=torch.uint8)
    colour[:, 0] = 200
    out = augment(colour, "strong", torch.Generator().manual_seed(0))
    centre = out[:, :, 3:5, 3:5]
    gray = (centre[:, 0] - centre[:, 1]).abs().amax(dim=(1, 2)) < 1e-6
    assert 0 < gray.sum() < 60


def test_unknown_preset_is_refused(batch):
    with pytest.raises(ValueError):
        augment(batch, "extreme")


def test_normalize_and_dataset_statistics():
    x = torch.rand(4, 3, 5, 5)
    n = normalize(x, IMAGENET_MEAN, IMAGENET_STD)
    assert torch.allclose(n[:, 1] * IMAGENET_STD[1] + IMAGENET_MEAN[1], x[:, 1], atol=1e-6)

    class Tiny:
        def __init__(self, data):
            self.data, self.mean_std = data, None

        def __len__(self):
            return len(self.data)

        def batch(self, idx):
            return self.data[idx]

    data = torch.randint(0, 256, (10, 3, 6, 6), dtype=torch.uint8)
    images = Tiny(data)
    mean, std = dataset_mean_std(images, chunk=3)
    f = to_float(data)
    assert torch.allclose(torch.tensor(mean), f.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(torch.tensor(std), f.std(dim=(0, 2, 3), unbiased=False), atol=1e-4)
    assert images.mean_std == (mean, std)  # computed once


def test_preview_gives_eight_displayable_versions(batch):
    views = augment_preview(batch[0], "seed", 8, seed=5)
    assert len(views) == 8 and views[0].shape == (24, 24, 3) and views[0].dtype.name == "uint8"
    assert all((a == b).all() for a, b in zip(views, augment_preview(batch[0], "seed", 8, seed=5)))
