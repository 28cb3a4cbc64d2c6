"""The disk-backed form of the decode-once cache: a mapped .npy file per split, the same bytes
and batches as the in-memory form, chosen when a split is over the memory budget, rebuilt when
damaged, shared by several processes, kept while mapped, and a run trains on it."""
from __future__ import annotations

import filecmp
import gc
import json
import os
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch

from core import i18n
from core.data import cache
from core.data.augment import IMAGENET_MEAN, IMAGENET_STD
from core.data.cache import clear_cache, load_images
from core.data.demo import make_demo
from core.data.split import split_dataset
from core.training.batches import Batches

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    """3 classes x 12 demo images at 24 px: 18 train, 9 val, 9 test."""
    root = tmp_path_factory.mktemp("disk-cache-data")
    make_demo(root / "demo", classes=3, per_class=12, size=24, seed=1)
    split_dataset(root / "demo", root / "split", val=0.25, test=0.25, seed=0)
    return root / "split"


def epochs_of_batches(images, seed: int, epochs: int = 2) -> list[tuple[torch.Tensor, ...]]:
    gen = torch.Generator().manual_seed(seed)
    batches = Batches(images, 5, torch.device("cpu"), IMAGENET_MEAN, IMAGENET_STD, "strong", gen, img_size=16)
    return [b for _ in range(epochs) for b in batches]


def test_disk_batches_are_byte_identical_to_memory_batches_with_augmentation(split, tmp_path, monkeypatch):
    memory = load_images(split, "train", 20, cache_dir=tmp_path / "memory", cache="memory")
    monkeypatch.setattr(cache, "CHUNK_BYTES", 7 * 3 * 20 * 20)  # 18 images written in 3 chunks
    heard = []
    disk = load_images(split, "train", 20, cache_dir=tmp_path / "disk", cache="disk",
                       on_progress=lambda done, total: heard.append((done, total)))
    assert (memory.storage, disk.storage) == ("memory", "disk") and isinstance(disk._data, cache.Mapped)
    assert heard[-1] == (18, 18)  # progress counts across the chunks
    assert filecmp.cmp(memory.cache_file, disk.cache_file, shallow=False)  # the same .npy, written another way
    shard = torch.tensor([17, 3, 3, 0, 11, 5])  # any subset, unsorted, repeated: a rank's shard
    assert torch.equal(disk.batch(shard), memory.batch(shard))
    monkeypatch.setattr(cache.Mapped, "RELEASE_BYTES", 1)  # pages handed back after every batch: read again
    for (x_m, y_m, i_m), (x_d, y_d, i_d) in zip(epochs_of_batches(memory, 7), epochs_of_batches(disk, 7), strict=True):
        assert torch.equal(i_m, i_d) and torch.equal(y_m, y_d) and torch.equal(x_m, x_d)


def test_auto_keeps_a_split_over_the_memory_budget_on_disk(split, tmp_path):
    small = load_images(split, "train", 16, cache_dir=tmp_path / "c")
    assert small.storage == "memory" and small.note is None
    big = load_images(split, "train", 16, cache_dir=tmp_path / "c", memory_budget=1000)
    assert big.storage == "disk" and big.note == ("data.cache_disk", {"needed_mb": 0, "budget_mb": 0})
    assert big.cache_file == small.cache_file  # one file, read whole or mapped
    assert torch.equal(big.batch(torch.arange(len(big))), small.batch(torch.arange(len(small))))


def test_the_chosen_form_is_kept_whatever_the_budget(split, tmp_path):
    from core.training.config import CACHES

    assert cache.CACHE_MODES == CACHES  # what a run's config may say is what load_images takes
    assert load_images(split, "val", 16, cache_dir=tmp_path, memory_budget=1000, cache="memory").storage == "memory"
    assert load_images(split, "val", 16, cache_dir=tmp_path, cache="disk").storage == "disk"
    streamed = load_images(split, "val", 16, cache_dir=tmp_path, cache="stream")
    assert streamed.storage == "stream" and streamed.note is None
    assert streamed.batch(torch.tensor([2, 0])).shape == (2, 3, 16, 16)


def test_without_a_cache_folder_a_disk_set_is_held_in_memory_or_streamed(split):
    assert load_images(split, "val", 16, cache="disk").storage == "memory"  # fits: nowhere else to put it
    streamed = load_images(split, "val", 16, memory_budget=1000)
    assert streamed.storage == "stream" and streamed.note[0] == "data.cache_streaming"


def test_without_disk_space_it_streams_and_says_how_much_is_free(split, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(cache.shutil, "disk_usage", lambda _p: usage(10 * 2**30, 10 * 2**30 - 5 * 2**20, 5 * 2**20))
    images = load_images(split, "train", 16, cache_dir=tmp_path / "c", memory_budget=1000)
    assert images.storage == "stream" and images.cache_file is not None and not images.cache_file.exists()
    key, params = images.note
    assert key == "data.cache_streaming_no_space" and params["free_mb"] == 5
    assert "5 MB" in i18n.t(key, "en", **params) and "5 MB" in i18n.t(key, "zh", **params)
    assert not list((tmp_path / "c").iterdir())  # no lock or temporary file left behind
    assert load_images(split, "train", 16, cache_dir=tmp_path / "c", cache="disk").storage == "memory"  # it fits


def test_a_second_disk_load_maps_the_file_without_decoding(split, tmp_path, monkeypatch):
    first = load_images(split, "train", 16, cache_dir=tmp_path, cache="disk")

    def no_decoding(*_a, **_k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache, "decode_resized", no_decoding)
    again = load_images(split, "train", 16, cache_dir=tmp_path, cache="disk")
    assert torch.equal(again.batch(torch.arange(len(again))), first.batch(torch.arange(len(first))))


def damage(file: Path, how: str) -> None:
    if how == "truncated":
        with open(file, "r+b") as fh:
            fh.truncate(file.stat().st_size - 100)
    elif how == "garbage":
        file.write_bytes(b"half a file")
    else:  # a valid .npy of another shape
        np.save(file, np.zeros((2, 3, 16, 16), dtype=np.uint8))


@pytest.mark.parametrize("how", ["truncated", "garbage", "other_shape"])
def test_a_damaged_disk_cache_file_is_rebuilt(split, tmp_path, how):
    reference = load_images(split, "train", 16, cache_dir=tmp_path / "memory").batch(torch.arange(18))
    first = load_images(split, "train", 16, cache_dir=tmp_path / "disk", cache="disk")
    file, size = first.cache_file, first.cache_file.stat().st_size
    del first
    damage(file, how)
    rebuilt = load_images(split, "train", 16, cache_dir=tmp_path / "disk", cache="disk")
    assert rebuilt.storage == "disk" and file.stat().st_size == size
    assert torch.equal(rebuilt.batch(torch.arange(18)), reference)


@pytest.mark.skipif(os.name == "nt", reason="Windows refuses to delete a mapped file")
def test_a_mapped_set_is_kept_by_the_cap_and_stays_readable_even_when_deleted(split, tmp_path):
    folder = tmp_path / "cache"
    mapped = load_images(split, "train", 16, cache_dir=folder, cache="disk")
    expected = load_images(split, "train", 16, cache="memory").batch(torch.arange(18))
    load_images(split, "val", 16, cache_dir=folder)  # in memory: nothing holds it once loaded
    assert clear_cache(folder) > 0 and mapped.cache_file.is_file()  # the val set went, the mapped one stays
    assert cache.evict(folder, cap=0) == []
    os.unlink(mapped.cache_file)  # as a user's `rm` would
    assert torch.equal(mapped.batch(torch.arange(18)), expected)  # the mapping still reads the old file
    again = load_images(split, "train", 16, cache_dir=folder, cache="disk")  # a new process would rebuild it
    del mapped
    gc.collect()
    assert torch.equal(again.batch(torch.arange(18)), expected)
    del again
    gc.collect()  # unmapped: now the cap may take it, lock file included
    clear_cache(folder)
    assert list(folder.iterdir()) == []


RANK = """
import json, sys, torch
from core.data.cache import load_images
split, folder, rank = sys.argv[1], sys.argv[2], int(sys.argv[3])
heard = []
images = load_images(split, "train", 16, cache_dir=folder, cache="disk", on_progress=lambda d, t: heard.append(d))
shard = torch.arange(rank, len(images), 2)
print(json.dumps({"decoded": bool(heard), "storage": images.storage, "sum": int(images.batch(shard).long().sum())}))
"""


def test_two_processes_build_one_disk_set_once_and_read_their_shards(split, tmp_path):
    """What a torchrun job's ranks do: both ask for the set at once; one decodes, the other
    waits for its file and maps it; each reads its own half."""
    folder = tmp_path / "cache"
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", RANK, str(split), str(folder), str(rank)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert [o["storage"] for o in outs] == ["disk", "disk"]
    assert sorted(o["decoded"] for o in outs) == [False, True]
    full = load_images(split, "train", 16, cache="memory").batch(torch.arange(18)).long()
    assert [o["sum"] for o in outs] == [int(full[0::2].sum()), int(full[1::2].sum())]
    assert len(list(folder.glob("images-*.npy"))) == 1 and not list(folder.glob(".*.tmp"))


def test_a_run_trains_on_the_disk_cache_as_it_does_in_memory(split, tmp_path, monkeypatch):
    from core import runs
    from core.runs import create_run
    from core.training import engine
    from core.training.config import TrainConfig

    monkeypatch.setattr(engine.ThreadGovernor, "update", lambda self: self.threads)  # steady float sums
    tiny = {"spec": {"name": "tiny", "blocks": [{"out": 8, "bn": True, "pool": "max"}], "head": {"hidden": [16]}}}
    figures = {}
    for form in ("memory", "disk"):
        cfg = TrainConfig(data=str(split), model=tiny, img_size=24, batch_size=6, epochs=2, augment="light",
                          seed=3, cache=form).validated()
        trainer = engine.Trainer(cfg, create_run(cfg, tmp_path / "runs"), cache_dir=tmp_path / f"cache-{form}")
        summary = trainer.run()
        assert summary["status"] == "finished", summary
        assert (trainer.data.train.storage, trainer.data.val.storage) == (form, form)
        assert runs.read_config(trainer.run_dir)["cache"] == form
        figures[form] = [(r["train_loss"], r["val_loss"], r["val_acc"]) for r in runs.read_metrics(trainer.run_dir, "epoch")]
    # the same bytes in (the test above): the same run, but for float rounding, which may differ
    # between two runs in one process (the engine may pick another memory format or thread count)
    assert len(figures["disk"]) == 2
    assert [v for epoch in figures["disk"] for v in epoch] == pytest.approx([v for e in figures["memory"] for v in e], abs=1e-3)


def test_a_run_over_the_memory_budget_says_its_images_are_on_disk_in_the_cli_and_the_run(split, tmp_path,
                                                                                       monkeypatch, capsys):
    from core import runs
    from core.cli import main

    monkeypatch.setattr(cache, "DEFAULT_MEMORY_BUDGET", 1000)
    monkeypatch.setenv("CNN_STUDIO_WORKSPACE", str(tmp_path / "ws"))
    assert main(["train", "--data", str(split), "--model", "simple_cnn", "--img-size", "24", "--epochs", "1",
                 "--batch-size", "6"]) == 0
    [run] = runs.list_runs(tmp_path / "ws" / "runs")
    notes = [r for r in runs.read_metrics(run.path) if r["type"] == "note"]
    assert notes == [{"type": "note", "epoch": 0, "key": "data.cache_disk", "params": {"needed_mb": 0, "budget_mb": 0}}]
    assert i18n.t("data.cache_disk", "en", needed_mb=0, budget_mb=0) in capsys.readouterr().out
