"""Benchmark: validation accuracy against wall-clock time, the course's CBAM-CNN recipe vs fast_cifar10.

    .venv/bin/python bench/bench_time_to_accuracy.py                  # 15 minutes each, all 50,000 images
    .venv/bin/python bench/bench_time_to_accuracy.py --budget 120 --images 5000 --recipes fast_cifar10

Unpacks ../shared/datasets/cifar10-train.zip (the 50,000 CIFAR-10 training JPEGs; the official
test set is not there) and splits it 90/2/8 with seed 0: 45,000 train, 1,000 validation and
4,000 test images carved from the training set - the figures say so. Then each recipe trains on
that split as a whole `python -m core train --recipe NAME` process, one after the other, for at
most `--budget` seconds of wall time from the process's start (cache build included); a run still
going then is stopped as Ctrl-C stops it. Each epoch's validation accuracy is stamped with the
time since its process started (read from metrics.jsonl as it is written). A run that finished
within the budget reports its test accuracy (with its test-time augmentation) as part of its
time; a stopped one is evaluated on the test images afterwards, outside the budget.

Prints accuracy against time for both, the time each first reached 80 / 85 / 90% validation
accuracy, and writes the plot (`--plot`, PNG) and the raw figures (`--json`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import runs  # noqa: E402
from core.data.split import split_dataset  # noqa: E402

CIFAR_ZIP = ROOT.parent / "shared" / "datasets" / "cifar10-train.zip"
TARGETS = (0.80, 0.85, 0.90)


def prepare(work: Path, images: int) -> Path:
    """The split folder (made once, reused): `images` CIFAR-10 JPEGs, equal per class, 90/2/8."""
    split = work / f"cifar10-{images}-split"
    if (split / "split.json").is_file():
        return split
    src = work / f"cifar10-{images}"
    with zipfile.ZipFile(CIFAR_ZIP) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".jpg"))
        classes = sorted({n.split("/")[-2] for n in names})
        for c in classes:
            for name in [n for n in names if n.split("/")[-2] == c][:images // len(classes)]:
                target = src / c / Path(name).name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(name))
    split_dataset(src, split, val=0.02, test=0.08, seed=0)
    return split


def train(recipe: str, split: Path, work: Path, budget: float, extra: list[str]) -> dict:
    """One recipe as a whole process, stopped at `budget` seconds; its epochs stamped with time."""
    ws = work / f"ws-{recipe}"
    shutil.rmtree(ws, ignore_errors=True)  # a fresh cache: building it is part of the time
    env = os.environ | {"CNN_STUDIO_WORKSPACE": str(ws)}
    cmd = [sys.executable, "-m", "core", "train", "--recipe", recipe, "--data", str(split), *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stamped: dict[int, float] = {}
    stopped = False
    while proc.poll() is None:
        time.sleep(0.5)
        found = runs.list_runs(ws / "runs") if (ws / "runs").is_dir() else []
        if found:
            for rec in runs.read_metrics(found[0].path, "epoch"):
                stamped.setdefault(rec["epoch"], time.perf_counter() - start)
        if not stopped and time.perf_counter() - start > budget:
            proc.send_signal(signal.SIGINT)  # the CLI stops cleanly at the next batch
            stopped = True
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 130):
        raise SystemExit(f"{recipe} failed ({proc.returncode}):\n{proc.stderr.read()[-3000:]}")
    [run] = runs.list_runs(ws / "runs")
    epochs = runs.read_metrics(run.path, "epoch")
    summary = runs.read_summary(run.path)
    test_acc = summary.get("test_acc")
    if test_acc is None:  # stopped at the budget: its best weights on the test images, after the budget
        subprocess.run([sys.executable, "-m", "core", "evaluate", str(run.path)], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        test_acc = runs.read_summary(run.path).get("test_acc")
    curve = [{"epoch": r["epoch"], "seconds": round(stamped.get(r["epoch"], wall), 1), "val_acc": r["val_acc"]}
             for r in epochs]
    reached = {f"{int(100 * t)}%": next((p["seconds"] for p in curve if p["val_acc"] >= t), None) for t in TARGETS}
    return {"recipe": recipe, "status": summary["status"], "wall_s": round(wall, 1), "test_acc": test_acc,
            "test_in_budget": summary["status"] == "finished", "best_val_acc": summary.get("best_val_acc"),
            "epochs": len(epochs), "curve": curve, "time_to": reached,
            "img_per_s": summary.get("img_per_s"), "memory_format": summary.get("memory_format")}


def plot(results: list[dict], path: Path, budget: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for res in results:
        xs = [0] + [p["seconds"] / 60 for p in res["curve"]]
        ys = [10] + [100 * p["val_acc"] for p in res["curve"]]  # 10%: chance, before the first epoch
        line, = ax.plot(xs, ys, marker="o", markersize=3, label=res["recipe"])
        if res.get("test_acc") is not None:  # the final test (with its test-time augmentation): a star
            x = (res["wall_s"] if res["test_in_budget"] else res["curve"][-1]["seconds"]) / 60
            ax.plot([x], [100 * res["test_acc"]], marker="*", markersize=11, color=line.get_color())
            ax.annotate(f"test {100 * res['test_acc']:.1f}%", (x, 100 * res["test_acc"]), xytext=(-62, 6),
                        textcoords="offset points", color=line.get_color(), fontsize=8)
    for t in TARGETS:
        ax.axhline(100 * t, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlim(0, budget / 60)
    ax.set_ylim(10, 100)
    ax.set_xlabel("wall-clock minutes since the process started (2 CPU cores)")
    ax.set_ylabel("validation accuracy, %")
    ax.set_title("CIFAR-10, validation and test carved from the 50,000 training images", fontsize=9)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["fast_cifar10", "cifar10_cbam_cnn"])
    parser.add_argument("--budget", type=float, default=900, help="seconds of wall time per recipe")
    parser.add_argument("--images", type=int, default=50_000, help="CIFAR-10 images used (equal per class)")
    parser.add_argument("--work", default=str(ROOT / "workspace" / "bench-tta"), help="data and runs go here")
    parser.add_argument("--plot", default=str(ROOT / "docs" / "bench" / "time_to_accuracy.png"))
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--also", metavar="JSON", help="a recipe's figures from an earlier run of this script "
                                                       "(same split and budget), shown with these")
    parser.add_argument("extra", nargs="*", help="after --: flags for every `core train`, e.g. -- --epochs 12")
    args = parser.parse_args()
    if not CIFAR_ZIP.is_file():
        raise SystemExit(f"{CIFAR_ZIP} not found")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    split = prepare(work, args.images)
    results = []
    for recipe in args.recipes:
        res = train(recipe, split, work, args.budget, args.extra)
        results.append(res)
        for p in res["curve"]:
            print(f"{recipe:<18} epoch {p['epoch']:>3}  {p['seconds']:7.1f} s  val {100 * p['val_acc']:5.1f}%",
                  flush=True)
        times = ", ".join(f"{k}: {'-' if v is None else f'{v:.0f} s'}" for k, v in res["time_to"].items())
        print(f"{recipe:<18} {res['status']} after {res['wall_s']:.0f} s ({res['epochs']} epochs, "
              f"{res['img_per_s']:.0f} img/s); test {100 * res['test_acc']:.2f}%"
              f"{'' if res['test_in_budget'] else ' (evaluated after the budget)'}; time to val {times}",
              flush=True)
    if args.also:
        results += json.loads(Path(args.also).read_text(encoding="utf-8"))
    plot(results, Path(args.plot), args.budget)
    print(f"plot: {args.plot}; load average now {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
