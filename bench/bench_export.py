"""CPU inference speed of an exported model: onnxruntime vs PyTorch, per preset.

    .venv/bin/python bench/bench_export.py                     # presets at 64 px, batch 1 and 64
    .venv/bin/python bench/bench_export.py --size 32 --threads 2 --repeats 5 --json

Each preset (random weights: speed does not depend on them) is exported through the studio's
own path (`core.export.onnx.to_onnx`, any batch size) and both runtimes get the same uint8
batch, normalisation included, with the same number of threads. Repeats alternate between the
two, so a noisy shared machine slows both alike; images/s is the median over repeats.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.export.onnx import ExportGraph, to_onnx
from core.inference import ModelInfo
from core.models import PRESETS, build_model

CLASSES = 5
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def timed(fn, min_seconds: float) -> float:
    """Calls per second of `fn`, run for at least `min_seconds` (after one warm-up call)."""
    fn()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds:
        fn()
        calls += 1
    return calls / elapsed


def bench_preset(preset: str, size: int, batches: list[int], repeats: int, threads: int,
                 min_seconds: float) -> list[dict]:
    import onnxruntime as ort

    torch.manual_seed(0)
    model = build_model({"preset": preset}, CLASSES, size).eval()
    info = ModelInfo(run_dir=Path(preset), classes=[str(i) for i in range(CLASSES)],
                     display_names=[str(i) for i in range(CLASSES)], img_size=size, mean=MEAN, std=STD,
                     model={"preset": preset}, checkpoint="-")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        to_onnx(model, info, path, dynamic_batch=True)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    graph = ExportGraph(model, MEAN, STD).eval()
    rows = []
    for batch in batches:
        pixels = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
        array = pixels.numpy()

        @torch.inference_mode()
        def run_torch(pixels: torch.Tensor = pixels) -> None:
            graph(pixels)

        def run_ort(array=array) -> None:
            session.run(["probs"], {"image": array})

        speeds: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
        for _ in range(repeats):
            speeds["torch"].append(timed(run_torch, min_seconds) * batch)
            speeds["onnxruntime"].append(timed(run_ort, min_seconds) * batch)
        torch_ips, ort_ips = (statistics.median(speeds[k]) for k in ("torch", "onnxruntime"))
        rows.append({"preset": preset, "size": size, "batch": batch, "threads": threads,
                     "torch_img_s": round(torch_ips, 1), "onnxruntime_img_s": round(ort_ips, 1),
                     "speedup": round(ort_ips / torch_ips, 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--size", type=int, default=64, help="image size (the training default: 64)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum time per measurement")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for preset in args.presets:
        for row in bench_preset(preset, args.size, args.batches, args.repeats, args.threads, args.seconds):
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(f"{row['preset']:<14} {row['size']:>4} px  batch {row['batch']:>3}  "
                      f"PyTorch {row['torch_img_s']:>8.1f} img/s  onnxruntime {row['onnxruntime_img_s']:>8.1f} img/s  "
                      f"x{row['speedup']:.2f}", flush=True)


if __name__ == "__main__":
    main()
