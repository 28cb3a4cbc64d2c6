"""Benchmark: localisation (the pointing game) per model on the demo set, and CAM speed.

    .venv/bin/python bench/bench_explain.py [--per-class 200] [--img-size 64] [--epochs 8]
        [--models simple_cnn,cbam_cnn,resnet18_cbam] [--extra-layers resnet18_cbam:att3]
        [--methods gradcam,...] [--speed-size 224] [--repeats 7 (0: no speed test)]

1. Localisation: makes the demo set (5 shapes x --per-class, 96 px, with object boxes), splits
   it 60/20/20, trains each model for --epochs on it, then scores the Grad-CAM maximum of every
   correctly classified test image against its annotated box. Prints the hit rate per model.
2. Speed: for one 224 px photo, the two heatmaps of a side-by-side comparison (simple_cnn next
   to each other model, models already loaded, as the Explain page caches them): median of
   --repeats runs of `core.explain.explain` for both, after one warm-up.
Numbers depend on the machine and its load; compare figures printed in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data.augment import augment, dataset_mean_std, normalize  # noqa: E402
from core.data.cache import load_images  # noqa: E402
from core.data.demo import make_demo  # noqa: E402
from core.data.split import split_dataset  # noqa: E402
from core.explain import explain, layer_names  # noqa: E402
from core.explain.pointing import pointing_game  # noqa: E402
from core.models import build_model  # noqa: E402


def train(preset: str, split: Path, img_size: int, epochs: int, seed: int = 0):
    """Adam, light augmentation, batch 32: enough to learn the demo shapes.

    Kept local so the bench depends only on the model zoo; the training engine's own
    numbers are in its bench.
    """
    images = load_images(split, "train", img_size)
    mean, std = dataset_mean_std(images)
    torch.manual_seed(seed)
    model = build_model({"preset": preset}, len(images.classes), img_size)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(images), generator=generator).split(32):
            x = normalize(augment(images.batch(idx), "light", generator), mean, std)
            loss = torch.nn.functional.cross_entropy(model(x), images.labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval(), {"classes": images.classes, "img_size": img_size, "mean": mean, "std": std}


def localisation(args: argparse.Namespace, root: Path) -> list[dict]:
    make_demo(root / "demo", classes=5, per_class=args.per_class, size=96, seed=0)
    split_dataset(root / "demo", root / "split", val=0.2, test=0.2, mode="link")
    results = []
    for preset in args.models:
        start = time.perf_counter()
        model, info = train(preset, root / "split", args.img_size, args.epochs)
        trained = time.perf_counter() - start
        for layer in [None, *args.extra_layers.get(preset, [])]:
            r = pointing_game(model, info, root / "split" / "test", method="gradcam", layer=layer)
            row = {"model": preset, "layer": r.layer, "default_layer": layer is None, "test_images": r.total,
                   "correct": r.correct, "test_acc": round(r.correct / r.total, 4), "hits": r.hits,
                   "pointing": round(r.rate, 4), "train_s": round(trained, 1)}
            print(f"pointing  {preset:<14} layer {r.layer:<11} acc {row['test_acc']:.1%}  "
                  f"hits {r.hits}/{r.correct} = {r.rate:.1%}  (train {trained:.0f}s)", flush=True)
            results.append(row)
    return results


def speed(args: argparse.Namespace) -> list[dict]:
    size = args.speed_size
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8))
    info = {"classes": [f"c{i}" for i in range(5)], "img_size": size, "mean": [0.5] * 3, "std": [0.25] * 3}
    loaded = {}
    for preset in dict.fromkeys(["simple_cnn", *args.models]):
        model = build_model({"preset": preset}, 5, size).eval()
        loaded[preset] = (model, layer_names(model, info))
    results = []
    for other in [m for m in args.models if m != "simple_cnn"]:
        pair = [loaded["simple_cnn"], loaded[other]]
        for method in args.methods:
            def both() -> None:
                for model, names in pair:
                    explain(model, info, photo, method=method, names=names, cam_size=(640, 480))
            both()  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                both()
                times.append(time.perf_counter() - start)
            median = statistics.median(times)
            print(f"speed     simple_cnn + {other:<14} {method:<10} {size}px: median {median * 1000:.0f} ms "
                  f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}) for both heatmaps", flush=True)
            results.append({"pair": ["simple_cnn", other], "method": method, "img_size": size,
                            "median_s": round(median, 4), "min_s": round(min(times), 4), "max_s": round(max(times), 4)})
    return results


def extra_layers(text: str) -> dict[str, list[str]]:
    pairs = (item.split(":", 1) for item in text.split(",") if item)
    return {model: layers.split("+") for model, layers in pairs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--models", type=lambda s: s.split(","), default=["simple_cnn", "cbam_cnn", "resnet18_cbam"])
    parser.add_argument("--extra-layers", type=extra_layers, default={},
                        help="more layers to score, e.g. resnet18_cbam:att3+layer3,cbam_cnn:features.1")
    parser.add_argument("--methods", type=lambda s: s.split(","), default=["gradcam"])
    parser.add_argument("--speed-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--skip-localisation", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch threads {args.threads}, torch {torch.__version__}", flush=True)
    summary = {"speed": speed(args) if args.repeats else []}
    if not args.skip_localisation:
        with tempfile.TemporaryDirectory() as tmp:
            summary["localisation"] = localisation(args, Path(tmp))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
