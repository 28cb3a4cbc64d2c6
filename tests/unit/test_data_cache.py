"""The decode-once cache: same pixels as torchvision, reused from disk, rebuilt on change, streaming."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torchvision.transforms import v2

from core.data import cache
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


def test_the_cache_folder_keeps_to_its_cap_least_recently_used_first(split, tmp_path, monkeypatch):
    """The cache never shrank: every image size and every edit left another file for ever."""
    folder = tmp_path / "cache"
    sets = {size: load_images(split, "train", size, cache_dir=folder).cache_file for size in (8, 12, 16)}
    each = {size: f.stat().st_size for size, f in sets.items()}
    assert cache.cache_size(folder) == sum(each.values())
    n = len(load_images(split, "train", 8, cache_dir=folder))
    for age, size in enumerate((12, 8, 16)):  # 12 used longest ago, 16 most recently
        os.utime(sets[size], (1_000_000 + age, 1_000_000 + age))
    load_images(split, "train", 12, cache_dir=folder)  # a use from the cache: now the most recent
    assert sets[12].stat().st_mtime > sets[16].stat().st_mtime
    header = each[8] - n * 3 * 8 * 8  # .npy header bytes
    monkeypatch.setenv("CNN_STUDIO_CACHE_CAP", str(each[12] + header + n * 3 * 20 * 20))  # room for 12 and 20
    load_images(split, "train", 20, cache_dir=folder)  # a new set pushes the folder over the cap
    left = {p.name for p in folder.glob("images-*.npy")}
    assert sets[8].name not in left and sets[16].name not in left  # the two least recently used went
    assert sets[12].name in left and len(left) == 2
    assert cache.cache_size(folder) <= cache.cache_cap()


def test_a_set_larger_than_the_cap_is_still_kept_alone(split, tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    old = load_images(split, "val", 8, cache_dir=folder).cache_file
    monkeypatch.setenv("CNN_STUDIO_CACHE_CAP", "10")
    new = load_images(split, "val", 16, cache_dir=folder).cache_file
    assert new.is_file() and not old.exists()


def test_clear_cache_removes_the_cached_sets_and_their_statistics(split, tmp_path):
    from core.data.augment import dataset_mean_std

    folder = tmp_path / "cache"
    images = load_images(split, "train", 16, cache_dir=folder)
    dataset_mean_std(images)
    (folder / "notes.txt").write_text("not ours")
    size = cache.cache_size(folder)
    assert size > images.cache_file.stat().st_size  # the statistics file counts too
    assert cache.clear_cache(folder) == size
    assert cache.cache_size(folder) == 0 and sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert cache.clear_cache(tmp_path / "nowhere") == 0
    assert torch.equal(load_images(split, "train", 16, cache_dir=folder).batch(torch.arange(3)),
                       images.batch(torch.arange(3)))
