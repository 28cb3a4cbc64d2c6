"""The decode-once cache: same pixels as torchvision, reused from disk, rebuilt on change, streaming."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torchvision.transforms import v2

import core.data.cache as cache
from core.data.cache import decode_resized, load_images
from core.data.images import open_image
from core.data.split import split_dataset
from core.errors import UserError
from tests.unit.test_data_scan import noise_image, save


@pytest.fixture
def split(tmp_path) -> Path:
    for c, cls in enumerate(("b_dog", "a_cat", "狗")):
        for i in range(5):
            save(noise_image(10 * c + i, size=(30 + i, 20)), tmp_path / "src" / cls / f"{i}.png")
    split_dataset(tmp_path / "src", tmp_path / "split", val=0.2, test=0.2)
    return tmp_path / "split"


def test_images_labels_and_pixels_match_torchvision_resize(split, tmp_path):
    images = load_images(split, "train", 16, cache_dir=tmp_path / "cache")
    assert images.classes == ["a_cat", "b_dog", "狗"] and images.display_names == images.classes
    assert len(images) == 9 and images.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert not images.streaming and images.note is None
    batch = images.batch(torch.tensor([0, 4]))
    assert batch.dtype == torch.uint8 and batch.shape == (2, 3, 16, 16)
    reference = v2.Compose([v2.PILToTensor(), v2.Resize((16, 16), antialias=True)])
    for row, i in zip(batch, (0, 4)):
        expected = v2.functional.pil_to_tensor(v2.functional.resize(open_image(images.paths[i]), [16, 16]))
        assert torch.equal(row, expected)
        assert (row.int() - reference(open_image(images.paths[i])).int()).abs().max() <= 2
    assert images.paths[0].parent.name == "a_cat"


def test_second_load_comes_from_disk_and_a_change_rebuilds(split, tmp_path, monkeypatch):
    first = load_images(split, "train", 16, cache_dir=tmp_path / "cache")
    assert first.cache_file.is_file()

    def no_decoding(*_a, **_k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache, "decode_many", no_decoding)
    again = load_images(split, "train", 16, cache_dir=tmp_path / "cache")
    assert torch.equal(again.batch(torch.arange(len(again))), first.batch(torch.arange(len(first))))
    monkeypatch.undo()

    touched = first.paths[0]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    rebuilt = load_images(split, "train", 16, cache_dir=tmp_path / "cache")
    assert rebuilt.cache_file != first.cache_file
    assert load_images(split, "train", 24, cache_dir=tmp_path / "cache").cache_file != rebuilt.cache_file


def test_damaged_cache_file_is_rebuilt(split, tmp_path):
    first = load_images(split, "val", 16, cache_dir=tmp_path / "cache")
    first.cache_file.write_bytes(b"half a file")
    again = load_images(split, "val", 16, cache_dir=tmp_path / "cache")
    assert torch.equal(again.batch(torch.arange(len(again))), first.batch(torch.arange(len(first))))


def test_over_the_memory_budget_it_streams_and_says_so(split):
    cached = load_images(split, "train", 16)
    streamed = load_images(split, "train", 16, memory_budget=1000)
    assert streamed.streaming and streamed.note[0] == "data.cache_streaming"
    idx = torch.tensor([3, 1, 8])
    assert torch.equal(streamed.batch(idx), cached.batch(idx))


def test_a_split_missing_a_class_keeps_the_class_indices(split):
    for f in (split / "test" / "a_cat").iterdir():
        f.unlink()
    images = load_images(split, "test", 16)
    assert images.classes == ["a_cat", "b_dog", "狗"] and set(images.labels.tolist()) == {1, 2}


def test_missing_split_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError):
        load_images(tmp_path, "train", 16)


def test_decode_resized_accepts_pil_images():
    img = noise_image(1, size=(50, 30))
    assert decode_resized(img, 8).shape == (3, 8, 8)


def test_dataset_statistics_are_kept_beside_the_cache(split, tmp_path):
    from core.data.augment import dataset_mean_std

    first = load_images(split, "train", 16, cache_dir=tmp_path / "cache")
    mean, std = dataset_mean_std(first)
    assert first.cache_file.with_suffix(".stats.json").is_file()
    again = load_images(split, "train", 16, cache_dir=tmp_path / "cache")
    again.batch = None  # no pixels are read the second time
    assert dataset_mean_std(again) == (mean, std)
    assert all(0 < m < 1 for m in mean) and all(0 < s < 0.5 for s in std)
