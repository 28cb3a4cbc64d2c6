"""Forward+backward speed of the presets, and ours vs the course's straightforward CBAM.

    .venv/bin/python bench/bench_models.py                    # all presets at 32/64/128/224 px
    .venv/bin/python bench/bench_models.py --sizes 32 64 --repeats 5 --json

Prints images/s (median over repeats) per preset and size, then the course's CBAM-CNN
(written here as the course writes it: two MLP calls, 1x1 convs, AdaptiveAvg/MaxPool) against
ours, timed alternately in the same run so that a noisy shared machine hits both alike; the
ratio is the median of the paired per-repeat speed-ups (>1: ours is faster), "best-of" the
ratio of the fastest repeats (least disturbed by other work on a shared machine). Attention
blocks alone (CBAM, SE) are compared the same way.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.models import CBAM, PRESETS, SE, build_model  # noqa: E402

BATCH = {32: 64, 64: 32, 128: 16, 224: 8}


class CourseChannelAttention(nn.Module):
    def __init__(self, in_planes: int, ratio: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Sequential(nn.Conv2d(in_planes, in_planes // ratio, 1, bias=False), nn.ReLU(),
                                nn.Conv2d(in_planes // ratio, in_planes, 1, bias=False))
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        return self.sigmoid(self.fc(self.avg_pool(x)) + self.fc(self.max_pool(x)))


class CourseSpatialAttention(nn.Module):
    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        avg_out = torch.mean(x, dim=1, keepdim=True)
        max_out, _ = torch.max(x, dim=1, keepdim=True)
        return self.sigmoid(self.conv1(torch.cat([avg_out, max_out], dim=1)))


class CourseCBAM(nn.Module):
    def __init__(self, in_planes: int, ratio: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.ca = CourseChannelAttention(in_planes, ratio)
        self.sa = CourseSpatialAttention(kernel_size)

    def forward(self, x):
        x = x * self.ca(x)
        return x * self.sa(x)


class CourseSE(nn.Module):
    def __init__(self, channel: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(channel, channel // reduction, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(channel // reduction, channel, bias=False), nn.Sigmoid())

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)
        return x * y.expand_as(x)


class CourseCBAMCNN(nn.Module):
    """The course's CBAM-CNN; its flatten size is fixed by the image size it is made for."""

    def __init__(self, num_classes: int = 10, img_size: int = 32) -> None:
        super().__init__()
        def block(i, o):
            return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2), CourseCBAM(o)]
        self.features = nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 128))
        self.fc1 = nn.Linear(128 * (img_size // 8) ** 2, 512)
        self.dropout = nn.Dropout(0.5)
        self.fc2 = nn.Linear(512, num_classes)

    def forward(self, x):
        x = torch.flatten(self.features(x), 1)
        return self.fc2(self.dropout(torch.relu(self.fc1(x))))


def step_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    start = time.perf_counter()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def step_times(models: dict[str, nn.Module], size: int, batch: int, repeats: int, channels_last: bool = False) -> dict[str, list[float]]:
    """Seconds per forward+backward step for each model, timed in turn (A, B, A, B, ...)."""
    x = torch.rand(batch, 3, size, size)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
        models = {k: m.to(memory_format=torch.channels_last) for k, m in models.items()}
    y = torch.randint(0, 10, (batch,))
    for m in models.values():
        m.train()
        step_seconds(m, x, y)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(repeats):
        for k, m in models.items():
            times[k].append(step_seconds(m, x, y))
    return times


def block_times(ours: nn.Module, course: nn.Module, shape: tuple[int, ...], repeats: int) -> dict[str, list[float]]:
    """Seconds per forward+backward of one attention block on a [B, C, H, W] map, alternating."""
    x = torch.rand(*shape, requires_grad=True)
    times: dict[str, list[float]] = {"ours": [], "course": []}
    for i in range(repeats + 1):
        for k, m in (("ours", ours), ("course", course)):
            start = time.perf_counter()
            m(x).sum().backward()
            if i:  # the first round warms up
                times[k].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 224])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = {"threads": args.threads, "torch": torch.__version__, "presets": {}, "cbam_vs_course": {}}

    for preset in PRESETS:
        for size in args.sizes:
            model, batch = build_model({"preset": preset}, 10, size), BATCH.get(size, 8)
            times = step_times({preset: model}, size, batch, args.repeats)[preset]
            # The fastest step is the one least disturbed by other work on a shared machine.
            ips, best = batch / statistics.median(times), batch / min(times)
            results["presets"].setdefault(preset, {})[size] = {"median": round(ips, 1), "best": round(best, 1)}
            if not args.json:
                print(f"{preset:<14} {size:>4} px  batch {batch:>3}  {ips:8.1f} img/s (best-of {best:8.1f})", flush=True)

    for size in args.sizes:
        ours = build_model({"preset": "cbam_cnn"}, 10, size)
        course = CourseCBAMCNN(10, size)
        assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in course.parameters())
        for layout in ("contiguous", "channels_last"):
            batch = BATCH.get(size, 8)
            t = step_times({"ours": ours, "course": course}, size, batch, args.repeats, layout == "channels_last")
            r = {k: batch / statistics.median(v) for k, v in t.items()}
            # Paired: each repeat times both back to back, so load changes hit both alike.
            ratio = statistics.median(c / o for o, c in zip(t["ours"], t["course"]))
            best = min(t["course"]) / min(t["ours"])
            results["cbam_vs_course"].setdefault(size, {})[layout] = {k: round(v, 1) for k, v in r.items()} | {
                "ratio": round(ratio, 3), "ratio_best": round(best, 3)}
            if not args.json:
                print(f"cbam_cnn {size:>4} px {layout:<13}  ours {r['ours']:8.1f}  course {r['course']:8.1f} img/s  "
                      f"ratio {ratio:.2f} (best-of {best:.2f})", flush=True)
    results["blocks"] = {}
    for shape in [(64, 32, 16, 16), (16, 64, 56, 56), (16, 256, 14, 14)]:
        for name, ours, course in [("cbam", CBAM(shape[1]), CourseCBAM(shape[1])), ("se", SE(shape[1]), CourseSE(shape[1]))]:
            t = block_times(ours, course, shape, args.repeats * 2)
            ratio = statistics.median(c / o for o, c in zip(t["ours"], t["course"]))
            key = f"{name} {'x'.join(map(str, shape))}"
            best = min(t["course"]) / min(t["ours"])
            results["blocks"][key] = {k: round(statistics.median(v) * 1e3, 2) for k, v in t.items()} | {
                "ratio": round(ratio, 3), "ratio_best": round(best, 3)}
            if not args.json:
                print(f"{key:<18} fwd+bwd ms  ours {statistics.median(t['ours']) * 1e3:7.2f}  course "
                      f"{statistics.median(t['course']) * 1e3:7.2f}  ratio {ratio:.2f} (best-of {best:.2f})", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
