"""Good results by default: a run with every default (the `auto` recipe) on real photo folders,
its test accuracy and wall time, beside the plain old defaults (simple_cnn, 64 px, 10 epochs,
the "seed" augmentation) on the same split.

Folders (made under --work, never in the project; the sources are only read):
- clothing-mini: ../shared/datasets/clothing-mini (400 photos, 5 classes), split 60/20/20.
- cifar-imb: 3,700 photos of ../shared/datasets/cifar10-train.zip in 10 classes, 680 down to 100
  per class (6.8:1, like the issue's 3,781-photo clothing folder), split 60/20/20.
Each run is `python -m core train ... --json` in a fresh process, as a user's would be; the wall
time is the whole command (recipe measurement, image caching, training, testing).

    .venv/bin/python bench/bench_defaults.py [--work /tmp/bench-defaults] [--only clothing-mini] [--no-old]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"
CIFAR_COUNTS = (680, 600, 520, 450, 390, 330, 270, 210, 150, 100)


def core(*args: str) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "core", *args, "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"core {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def cifar_folder(work: Path) -> Path:
    out = work / "cifar-imb"
    if out.is_dir():
        return out
    rng = random.Random(0)
    with zipfile.ZipFile(DATASETS / "cifar10-train.zip") as zf:
        names = [n for n in zf.namelist() if n.endswith(".jpg")]
        classes = sorted({n.split("/")[1] for n in names})
        for cls, count in zip(classes, CIFAR_COUNTS):
            files = sorted(n for n in names if n.split("/")[1] == cls)
            rng.shuffle(files)
            (out / cls).mkdir(parents=True)
            for name in files[:count]:
                (out / cls / Path(name).name).write_bytes(zf.read(name))
    return out


def split_of(name: str, src: Path, work: Path) -> Path:
    out = work / f"{name}-split"
    if not (out / "split.json").is_file():
        core("split", str(src), str(out), "--mode", "copy", "--val", "0.2", "--test", "0.2")
    return out


def train(split: Path, runs: Path, *flags: str) -> tuple[dict, float]:
    start = time.perf_counter()
    records = core("train", "--data", str(split), "--runs-dir", str(runs), *flags)
    wall = time.perf_counter() - start
    final = records[-1]
    config = json.loads((Path(final["run"]) / "config.json").read_text(encoding="utf-8"))
    return {"test_acc": final["summary"].get("test_acc"), "epochs": config["epochs"],
            "img_size": config["img_size"]}, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/bench-defaults")
    parser.add_argument("--only", choices=("clothing-mini", "cifar-imb"))
    parser.add_argument("--no-old", action="store_true", help="skip the plain old defaults")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    folders = {"clothing-mini": lambda: DATASETS / "clothing-mini", "cifar-imb": lambda: cifar_folder(work)}
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  cores {os.cpu_count()}  load {os.getloadavg()[0]:.2f}", flush=True)
    for name, folder in folders.items():
        if args.only and name != args.only:
            continue
        split = split_of(name, folder(), work)
        suggestion = core("recipes", "--suggest", str(split))[0]
        print(f"\n{name}:", *(f"  - {r}" for r in suggestion["reasons"]), sep="\n", flush=True)
        runs = work / "runs"
        found, wall = train(split, runs, "--recipe", "auto", "--name", f"auto-{name}")
        print(f"  auto: test {found['test_acc']:.1%} in {wall:.0f} s ({found['epochs']} epochs at "
              f"{found['img_size']} px, load {os.getloadavg()[0]:.2f})", flush=True)
        if not args.no_old:
            found, wall = train(split, runs, "--name", f"old-{name}")
            print(f"  old defaults: test {found['test_acc']:.1%} in {wall:.0f} s ({found['epochs']} epochs at "
                  f"{found['img_size']} px, load {os.getloadavg()[0]:.2f})", flush=True)


if __name__ == "__main__":
    main()
