"""Benchmark: training from the in-memory cache vs the disk-backed (memory-mapped) cache.

    .venv/bin/python bench/bench_cache.py                      # 200,000 JPEGs at 32 px, one epoch each
    .venv/bin/python bench/bench_cache.py --n 20000 --batches 100

Generates `--n` distinct `--size` px JPEGs in `--classes` class folders (in parallel, under
`workspace/bench-<n>` or `--data`; kept and reused by later runs) and splits them (hard links,
80/10/10). The decode-once cache of the split is built once, then simple_cnn trains in a fresh
subprocess per cache form - "memory" (the split read whole into RAM) and "disk" (the same .npy
file mapped read-only) - alternating, `--repeats` times each, one epoch (or `--batches`
batches), through the app's own path: `load_data`, `Batches` with the "seed" augmentation and
`train_one_epoch`. Printed per form: training images/s (median), the disk/memory ratio (target:
>= 80%), the time to load the data, and the peak resident memory of the training process
(ru_maxrss: the kernel's high-water mark; target < 1.5 GB for disk). Mapped file pages count
in a process's resident memory while they are touched, but they are page cache the kernel can
drop at any time; `rss_anon` (at the end, Linux) is the part that cannot be.

The file is warm in the page cache after the build, as it is after a first epoch; `--cold`
asks the kernel to drop its pages (posix_fadvise) before each disk run, the first epoch of a
dataset larger than memory. Numbers depend on the machine and its load: compare the ratio
printed in one run.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FORMS = ("memory", "disk")


# --- the dataset ----------------------------------------------------------------------------
def _write_chunk(job: tuple[str, int, int, int, int]) -> int:
    """Images start..stop-1 of one class: noise (so no two files are alike) under a square of
    the class's colour at a random place, so the model has something to learn."""
    from PIL import Image

    folder, cls, start, stop, size = job
    rng = np.random.default_rng([cls, start])
    colour = np.array([(cls * 71) % 256, (cls * 139 + 60) % 256, (cls * 197 + 120) % 256], dtype=np.int16)
    for i in range(start, stop):
        img = rng.integers(0, 256, (size, size, 3), dtype=np.int16) // 2 + 64
        side = size // 2
        x, y = rng.integers(0, size - side + 1, 2)
        img[y:y + side, x:x + side] = (img[y:y + side, x:x + side] // 4 + colour * 3 // 4)
        Image.fromarray(img.astype(np.uint8)).save(Path(folder) / f"{i:07d}.jpg", quality=90)
    return stop - start


def make_dataset(root: Path, n: int, classes: int, size: int, workers: int) -> Path:
    """`root/src` (class folders of JPEGs) and `root/split`, each made once and reused."""
    from core.data.split import read_split_info, split_dataset

    src, split, done = root / "src", root / "split", root / "src" / ".complete"
    per_class = n // classes
    if not (done.is_file() and done.read_text() == f"{per_class * classes} {classes} {size}"):
        jobs = []
        for c in range(classes):
            folder = src / f"class_{c:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            jobs += [(str(folder), c, s, min(s + 2000, per_class), size) for s in range(0, per_class, 2000)]
        start = time.perf_counter()
        with Pool(workers) as pool:
            made = sum(pool.imap_unordered(_write_chunk, jobs))
        done.write_text(f"{made} {classes} {size}")
        print(f"generated {made:,} JPEGs in {time.perf_counter() - start:.1f} s", flush=True)
    if not (split / "split.json").is_file():
        start = time.perf_counter()
        split_dataset(src, split, val=0.1, test=0.1, force=True)
        print(f"split (scan + hard links) in {time.perf_counter() - start:.1f} s", flush=True)
    counts = read_split_info(split)["counts"]
    print(f"split: {sum(c['train'] for c in counts.values()):,} train, "
          f"{sum(c['val'] for c in counts.values()):,} val images", flush=True)
    return split


def config(split: Path, form: str, args: argparse.Namespace):
    from core.training.config import TrainConfig

    return TrainConfig(data=str(split), model={"preset": "simple_cnn"}, img_size=args.size,
                       batch_size=args.batch_size, augment="seed", seed=0, device="cpu", cache=form).validated()


# --- one training process -------------------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    """Load the split's data in the given form and train; print one JSON line."""
    import torch
    from torch import nn

    from core.models import build_model
    from core.training.batches import Batches, load_data
    from core.training.loops import train_one_epoch

    torch.set_num_threads(args.threads)
    cfg = config(Path(args.split), args.child, args)
    start = time.perf_counter()
    data = load_data(cfg, Path(args.cache_dir))
    load_s = time.perf_counter() - start
    assert data.train.storage == args.child, data.train.storage

    class First(Batches):
        def __len__(self) -> int:
            return min(super().__len__(), args.batches) if args.batches else super().__len__()

        def __iter__(self):
            return itertools.islice(super().__iter__(), len(self))

    torch.manual_seed(0)
    model = build_model(cfg.model, len(data.classes), cfg.img_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    batches = First(data.train, cfg.batch_size, torch.device("cpu"), data.mean, data.std, cfg.augment,
                    torch.Generator().manual_seed(0), img_size=cfg.img_size)
    start = time.perf_counter()
    loss, acc, seen, _ = train_one_epoch(model, nn.CrossEntropyLoss(), optimizer, batches, epoch=1, step=0,
                                         log_every=50)
    train_s = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    status = {}
    if Path("/proc/self/status").is_file():
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("RssAnon", "RssFile"):
                status[name.lower()] = int(value.split()[0]) * 1024
    print(json.dumps({"form": args.child, "images": seen, "train_s": train_s, "images_per_s": seen / train_s,
                      "load_s": load_s, "peak_rss": peak, **status, "loss": loss, "acc": acc}), flush=True)


def drop_page_cache(file: Path) -> None:
    """Ask the kernel to forget the file's cached pages (clean pages: no root needed)."""
    if hasattr(os, "posix_fadvise"):
        fd = os.open(file, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def run_child(form: str, split: Path, cache_dir: Path, args: argparse.Namespace) -> dict:
    argv = [sys.executable, __file__, "--child", form, "--split", str(split), "--cache-dir", str(cache_dir),
            "--size", str(args.size), "--batch-size", str(args.batch_size), "--batches", str(args.batches),
            "--threads", str(args.threads)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"the {form} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="images to generate")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--size", type=int, default=32, help="side of the generated JPEGs and the training size")
    parser.add_argument("--data", help="folder for the generated dataset (default workspace/bench-<n>)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=0, help="batches per training run (0: one epoch)")
    parser.add_argument("--repeats", type=int, default=1, help="training runs of each form, alternating")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each training process")
    parser.add_argument("--cold", action="store_true", help="drop the cache file from the page cache before disk runs")
    parser.add_argument("--child", choices=FORMS, help=argparse.SUPPRESS)
    parser.add_argument("--split", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    root = Path(args.data) if args.data else ROOT / "workspace" / f"bench-{args.n // 1000}k"
    print(f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}; data in {root}", flush=True)
    split = make_dataset(root, args.n, args.classes, args.size, workers=os.cpu_count() or 2)

    from core.training.batches import load_data

    cache_dir = root / "cache"
    os.environ["CNN_STUDIO_CACHE_CAP"] = str(1 << 62)  # the bench's own folder: nothing evicted between runs
    start = time.perf_counter()
    built = load_data(config(split, "disk", args), cache_dir)  # the file both forms read
    files = [built.train.cache_file, built.val.cache_file]
    print(f"cache file ready in {time.perf_counter() - start:.1f} s: {files[0].stat().st_size / 2**20:,.0f} MB "
          f"(train) at {files[0]}", flush=True)
    del built

    results: dict[str, list[dict]] = {form: [] for form in FORMS}
    for _ in range(args.repeats):
        for form in FORMS:
            if form == "disk" and args.cold:
                for file in files:
                    drop_page_cache(file)
            results[form].append(run_child(form, split, cache_dir, args))
            r = results[form][-1]
            print(f"  {form:<6} {r['images']:>8,} images  {r['images_per_s']:8,.0f} img/s  load {r['load_s']:5.1f} s  "
                  f"peak RSS {r['peak_rss'] / 2**30:.2f} GB", flush=True)

    def median(form: str, key: str) -> float:
        return statistics.median(r[key] for r in results[form])

    print(f"\n{'cache':<8} {'img/s':>9} {'load s':>7} {'peak RSS GB':>12} {'anon GB':>8} {'file GB':>8}")
    for form in FORMS:
        anon = median(form, "rssanon") / 2**30 if "rssanon" in results[form][0] else float("nan")
        file = median(form, "rssfile") / 2**30 if "rssfile" in results[form][0] else float("nan")
        print(f"{form:<8} {median(form, 'images_per_s'):>9,.0f} {median(form, 'load_s'):>7.1f} "
              f"{max(r['peak_rss'] for r in results[form]) / 2**30:>12.2f} {anon:>8.2f} {file:>8.2f}")
    ratio = median("disk", "images_per_s") / median("memory", "images_per_s")
    peak_disk = max(r["peak_rss"] for r in results["disk"]) / 2**30
    print(f"disk / memory images/s: {ratio:.0%} (target >= 80%); disk peak RSS {peak_disk:.2f} GB (target < 1.5 GB)"
          f"{'; cold page cache' if args.cold else ''}")
    print(json.dumps({"args": vars(args), "ratio": round(ratio, 3), "runs": results}))


if __name__ == "__main__":
    main()
