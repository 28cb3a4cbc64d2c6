"""Benchmark: scan + split of a large folder, the decode-once cache, and one epoch with vs without it.

    .venv/bin/python bench/bench_data.py [--files 60000] [--classes 10] [--side 48] [--img-size 32] [--threads 2] [--repeats 3]

Generates `--files` small distinct JPEGs in a temporary folder (deleted afterwards), then times
each step once and prints one line per measurement plus a JSON summary. Numbers depend on the
machine and its load: compare the ratios printed in the same run, not figures across machines.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data.augment import augment  # noqa: E402
from core.data.cache import load_images  # noqa: E402
from core.data.scan import scan  # noqa: E402
from core.data.split import split_dataset  # noqa: E402


def make_folder(root: Path, files: int, classes: int, side: int) -> None:
    """Distinct noisy JPEGs (no accidental duplicates), `files // classes` per class."""
    per_class = files // classes

    def write(c: int) -> None:
        rng = np.random.default_rng(c)
        folder = root / f"class_{c:02d}"
        folder.mkdir(parents=True)
        base = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        for i in range(per_class):
            img = base.copy()
            img[i % side, :, :] = rng.integers(0, 256, (side, 3), dtype=np.uint8)  # make each file distinct
            img[:, (i // side) % side, 0] = i % 256
            Image.fromarray(img).save(folder / f"{i:06d}.jpg", quality=85)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(classes)))


def timed(label: str, fn, results: dict, count: int | None = None):
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    results[label] = {"seconds": round(seconds, 3), **({"per_s": round(count / seconds, 1)} if count else {})}
    rate = f"  ({count / seconds:,.0f}/s)" if count else ""
    print(f"{label:<44} {seconds:8.2f} s{rate}", flush=True)
    return value


def epoch_imagefolder(split_dir: Path, img_size: int, batch: int) -> int:
    """The usual course code: torchvision ImageFolder + per-image transforms, decoding every epoch."""
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.Resize((img_size, img_size)), transforms.RandomHorizontalFlip(),
                             transforms.RandomCrop(img_size, padding=img_size // 8),
                             transforms.ColorJitter(0.2, 0.2, 0.2), transforms.ToTensor()])
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(split_dir / "train", tf), batch_size=batch,
                                         shuffle=True, num_workers=0)
    return sum(len(x) for x, _ in loader)


def epoch_cached(images, batch: int) -> int:
    """The same epoch from the decode-once cache with batched tensor augmentation ("seed" preset)."""
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(images), generator=gen)
    n = 0
    for i in range(0, len(order), batch):
        n += len(augment(images.batch(order[i:i + batch]), "seed", gen))
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=60_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--side", type=int, default=48, help="side of the generated JPEGs")
    parser.add_argument("--img-size", type=int, default=32, help="training image size for the cache")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--repeats", type=int, default=3, help="epochs of each kind (median reported)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    results: dict = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
                     "args": vars(args), "torch": torch.__version__}
    print(results["machine"], flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench_data_"))
    try:
        src, out, cache_dir = work / "src", work / "split", work / "cache"
        timed("generate folder (not part of the app)", lambda: make_folder(src, args.files, args.classes, args.side),
              results)
        report = timed("scan (hash + full decode of every file)", lambda: scan(src), results, args.files)
        assert report.total_images == args.files // args.classes * args.classes and not report.duplicates
        timed("split, hard links", lambda: split_dataset(src, out, report=report), results, args.files)
        timed("split, copies", lambda: split_dataset(src, work / "split_copy", mode="copy", report=report),
              results, args.files)
        timed("scan + split (links), end to end", lambda: split_dataset(src, out, force=True), results, args.files)

        n_train = sum(c["train"] for c in json.loads((out / "split.json").read_text())["counts"].values())
        images = timed(f"cache build, train split ({args.img_size}px, thread pool)",
                       lambda: load_images(out, "train", args.img_size, cache_dir), results, n_train)
        timed("cache load from disk (second run)", lambda: load_images(out, "train", args.img_size, cache_dir),
              results, n_train)
        # The two epochs alternate, `--repeats` times each: on a shared machine the median of
        # interleaved runs is the fair comparison.
        runs: dict[str, list[float]] = {"cached": [], "imagefolder": []}
        for _ in range(args.repeats):
            for name, fn in (("cached", lambda: epoch_cached(images, args.batch)),
                             ("imagefolder", lambda: epoch_imagefolder(out, args.img_size, args.batch))):
                start = time.perf_counter()
                assert fn() == n_train
                runs[name].append(time.perf_counter() - start)
        for name, label in (("cached", "epoch from cache + batched 'seed' augmentation"),
                            ("imagefolder", "epoch with ImageFolder + per-image transforms")):
            median = statistics.median(runs[name])
            results[label] = {"seconds_median": round(median, 3), "runs": [round(r, 3) for r in runs[name]],
                              "per_s": round(n_train / median, 1)}
            print(f"{label:<44} {median:8.2f} s  ({n_train / median:,.0f}/s, median of {args.repeats})", flush=True)
        ratio = statistics.median(runs["imagefolder"]) / statistics.median(runs["cached"])
        results["epoch_speedup"] = round(ratio, 1)
        print(f"decode-once epoch is {ratio:.1f}x faster than decoding every epoch", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
