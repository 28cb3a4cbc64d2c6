"""Benchmark: the training loop the course writes by hand vs `core.training`, same model, data and epochs.

    .venv/bin/python bench/bench_training.py                       # 10,000 JPEGs, 32 px, 3 epochs
    .venv/bin/python bench/bench_training.py --images 2000 --epochs 2 --models simple_cnn

Generates a demo set of `--images` JPEGs (`core.data.demo`, `--side` px) in a temporary folder,
splits it, then trains each model twice in one process, alternating:
  * course:  torchvision ImageFolder + per-image transforms (Resize, flip, pad-crop, colour
             jitter, ToTensor, Normalize) + DataLoader(num_workers=2), batch 64, Adam, the
             val loop after every epoch, best weights saved with torch.save, a test pass;
  * ours:    `core.training.engine.Trainer` on the same split: decode-once cache (built inside
             the timing), batched "seed" augmentation, val after every epoch, atomic
             checkpoints, runs on disk, the test evaluation with predictions.csv.
It prints, per model: training images/s (train loop only) and end-to-end images/s (everything
from the first decoded file to the test accuracy), their ratios, both test accuracies, and
where our time goes: the pure forward/backward/step on ready tensors vs our data pipeline
(cache gather + augmentation + normalisation) for the same batches. Last, the first model is
trained from the Training page (Streamlit AppTest, redrawn every second like its live fragment)
and then with the same config as the CLI trains: the app's images/s as a share of the CLI's.

Numbers depend on the machine and its load: compare the ratios printed in one run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data.augment import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from core.data.cache import load_images  # noqa: E402
from core.data.demo import make_demo  # noqa: E402
from core.data.split import split_dataset  # noqa: E402
from core.models import build_model  # noqa: E402
from core import runs  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402
from core.training.batches import Batches  # noqa: E402
from core.training.engine import Trainer  # noqa: E402


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the DataLoader workers): on a shared
    machine, images per CPU-second compares the two loops fairly when wall time is noisy."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# --- the course's loop, as written by hand ----------------------------------------------------
def course_loaders(split: Path, size: int, batch: int, workers: int):
    from torchvision import datasets, transforms

    norm = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = transforms.Compose([transforms.Resize((size, size)), transforms.RandomHorizontalFlip(),
                                   transforms.RandomCrop(size, padding=size // 8),
                                   transforms.ColorJitter(0.2, 0.2, 0.2), transforms.ToTensor(), norm])
    eval_tf = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(), norm])
    loader = lambda name, tf, shuffle: torch.utils.data.DataLoader(  # noqa: E731
        datasets.ImageFolder(str(split / name), tf), batch_size=batch, shuffle=shuffle, num_workers=workers)
    return loader("train", train_tf, True), loader("val", eval_tf, False), loader("test", eval_tf, False)


def course_accuracy(model: nn.Module, loader) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return correct / total


def course_run(split: Path, preset: str, args, work: Path) -> dict:
    start, cpu = time.perf_counter(), cpu_seconds()
    torch.manual_seed(args.seed)
    train_loader, val_loader, test_loader = course_loaders(split, args.img_size, args.batch, args.workers)
    model = build_model({"preset": preset}, len(train_loader.dataset.classes), args.img_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    train_seconds, seen, best = 0.0, 0, -1.0
    for epoch in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        running_loss = correct = 0
        for x, y in train_loader:
            optimizer.zero_grad()
            out = model(x)
            loss = criterion(out, y)
            loss.backward()
            optimizer.step()
            running_loss += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            seen += len(y)
        train_seconds += time.perf_counter() - t0
        val_acc = course_accuracy(model, val_loader)
        if val_acc > best:
            best = val_acc
            torch.save(model.state_dict(), work / f"course_{preset}_best.pt")
    model.load_state_dict(torch.load(work / f"course_{preset}_best.pt", weights_only=True))
    test_acc = course_accuracy(model, test_loader)
    del train_loader, val_loader, test_loader  # workers reaped: their CPU time is counted
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return {"train_img_per_s": seen / train_seconds, "wall_img_per_s": seen / wall, "wall_s": wall,
            "img_per_cpu_s": seen / cpu,
            "train_s": train_seconds, "best_val_acc": best, "test_acc": test_acc}


# --- core.training -----------------------------------------------------------------------------
def ours_run(split: Path, preset: str, args, work: Path, tag: str) -> dict:
    cache = work / f"cache-{tag}"  # fresh per run: the cache build is part of the time
    start, cpu = time.perf_counter(), cpu_seconds()
    cfg = TrainConfig(data=str(split), model={"preset": preset}, img_size=args.img_size, batch_size=args.batch,
                      epochs=args.epochs, optimizer="adam", lr=1e-3, augment="seed", device="cpu", seed=args.seed)
    run_dir = runs.new_run_dir(work / "runs", f"{preset}-{tag}")
    summary = Trainer(cfg, run_dir, cache_dir=cache).run()
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    n_train = runs.read_config(run_dir)["n_train"]
    seen = (n_train - (n_train % args.batch == 1)) * len(runs.read_metrics(run_dir, "epoch"))  # a batch of 1 is dropped
    train_s = seen / summary["img_per_s"]
    return {"train_img_per_s": summary["img_per_s"], "wall_img_per_s": seen / wall, "wall_s": wall,
            "img_per_cpu_s": seen / cpu,
            "train_s": train_s, "best_val_acc": summary["best_val_acc"], "test_acc": summary.get("test_acc")}


def pipeline_split(split: Path, preset: str, args, work: Path, batches_per_pass: int = 40, passes: int = 3) -> dict:
    """Our data pipeline alone vs forward+backward+step alone on the same batches (ms per 100 images).

    The two alternate `passes` times and the medians are compared, so a load spike on the shared
    machine does not land on one side only.
    """
    images = load_images(split, "train", args.img_size, work / "cache-split")
    batches = Batches(images, args.batch, torch.device("cpu"), IMAGENET_MEAN, IMAGENET_STD, "seed",
                      torch.Generator().manual_seed(0))
    torch.manual_seed(args.seed)
    model = build_model({"preset": preset}, len(images.classes), args.img_size)
    optimizer, criterion = torch.optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()
    model.train()
    data_s, compute_s = [], []
    for _ in range(passes):
        start = time.perf_counter()
        ready = [(x, y) for (x, y, _), _ in zip(batches, range(batches_per_pass))]
        data_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        for x, y in ready:
            optimizer.zero_grad(set_to_none=True)
            criterion(model(x), y).backward()
            optimizer.step()
        compute_s.append(time.perf_counter() - start)
    n = sum(len(y) for _, y in ready)
    data, compute = statistics.median(data_s), statistics.median(compute_s)
    return {"data_ms_per_100": 1e5 * data / n, "compute_ms_per_100": 1e5 * compute / n,
            "data_over_compute": data / compute}


def train_from_page(ws, preset: str, args) -> dict:
    """One run started from the Training page, redrawn every second until it ends; its summary."""
    from streamlit.testing.v1 import AppTest

    from core.i18n import t
    from core.training.jobs import registry

    before = {r.id for r in runs.list_runs(ws.runs)}
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/training.py").run()

    def widget(kind: str, key: str):
        return next(w for w in getattr(at, kind) if w.label == t(key, "en"))

    widget("selectbox", "training.model").set_value(preset)
    widget("number_input", "training.img_size").set_value(args.img_size)
    widget("number_input", "training.batch_size").set_value(args.batch)
    widget("number_input", "training.epochs").set_value(args.live_epochs)
    widget("button", "training.start").click().run()
    [run] = [r for r in runs.list_runs(ws.runs) if r.id not in before]
    redraws = 0
    while registry().busy():
        time.sleep(1.0)
        at.run()  # what the fragment's run_every=1 does while the page is open
        redraws += 1
    assert not at.exception, [e.value for e in at.exception]
    return runs.read_summary(run.path) | {"redraws": redraws, "run_dir": run.path}


def app_vs_cli(split: Path, preset: str, args, work: Path) -> dict:
    """Training images/s of runs started from the Training page, the live charts redrawn every
    second as the page's fragment does, vs the same config trained as `python -m core train` does
    (the Trainer on the main thread); alternating, medians. Streamlit's AppTest runs the page in
    this process, so the page's drawing competes for the same cores as under `streamlit run`."""
    from core.workspace import ENV_VAR, Workspace

    ws = Workspace.open(work / "workspace")
    os.environ[ENV_VAR] = str(ws.root)
    ws.remember(current_split=str(split))
    app, cli, redraws, cfg = [], [], [], None
    for r in range(max(1, args.repeats)):
        for who in (("app", "cli") if r % 2 == 0 else ("cli", "app")):
            if who == "app" or cfg is None:
                summary = train_from_page(ws, preset, args)
                cfg = TrainConfig.from_dict({k: v for k, v in runs.read_config(summary["run_dir"]).items()
                                             if k in TrainConfig.__dataclass_fields__})
                app.append(summary["img_per_s"])
                redraws.append(summary["redraws"])
            else:
                cli.append(Trainer(cfg, runs.new_run_dir(ws.runs, f"{preset}-cli"), cache_dir=ws.cache).run()["img_per_s"])
    return {"app_img_per_s": statistics.median(app), "cli_img_per_s": statistics.median(cli),
            "app_runs": app, "cli_runs": cli, "redraws": statistics.median(redraws),
            "app_over_cli": statistics.median(app) / statistics.median(cli)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="JPEGs in the generated set")
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--side", type=int, default=128,
                        help="side of the generated JPEGs (clothing-mini's photos are 144x192)")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the course loop")
    parser.add_argument("--models", nargs="+", default=["simple_cnn", "cbam_cnn"])
    parser.add_argument("--repeats", type=int, default=1, help="alternating pairs per model (median reported)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--live-epochs", type=int, default=1,
                        help="epochs of the app-vs-CLI check (first model only; 0 skips it)")
    parser.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it (reused when present)")
    args = parser.parse_args()

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {platform.platform()}"
    print(machine, flush=True)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_training_"))
    results: dict = {"machine": machine, "args": vars(args), "models": {}}
    try:
        src, split = work / "src", work / "split"
        if not (split / "split.json").is_file():
            t0 = time.perf_counter()
            make_demo(src, classes=args.classes, per_class=args.images // args.classes, size=args.side, seed=0)
            split_dataset(src, split, val=0.1, test=0.1, seed=args.seed)
            print(f"generated and split {args.images} JPEGs in {time.perf_counter() - t0:.1f} s", flush=True)
        for preset in args.models:
            pairs = {"course": [], "ours": []}
            for r in range(args.repeats):
                # Alternate who goes first, so a load spike on the shared machine hits both alike.
                order = ("course", "ours") if r % 2 == 0 else ("ours", "course")
                for who in order:
                    res = (course_run(split, preset, args, work) if who == "course"
                           else ours_run(split, preset, args, work, f"r{r}"))
                    pairs[who].append(res)
                    print(f"{preset:<11} {who:<6} train {res['train_img_per_s']:7.0f} img/s   end-to-end "
                          f"{res['wall_img_per_s']:7.0f} img/s ({res['wall_s']:.1f} s, "
                          f"{res['img_per_cpu_s']:.0f} img per CPU-s)   val {res['best_val_acc']:.3f}"
                          f"   test {res['test_acc']:.3f}", flush=True)
            med = {who: {k: statistics.median(p[k] for p in pairs[who]) for k in pairs[who][0]} for who in pairs}
            split_cost = pipeline_split(split, preset, args, work)
            entry = {"course": med["course"], "ours": med["ours"], "pipeline": split_cost,
                     "train_speedup": med["ours"]["train_img_per_s"] / med["course"]["train_img_per_s"],
                     "end_to_end_speedup": med["ours"]["wall_img_per_s"] / med["course"]["wall_img_per_s"],
                     "cpu_speedup": med["ours"]["img_per_cpu_s"] / med["course"]["img_per_cpu_s"]}
            results["models"][preset] = entry
            print(f"{preset:<11} ours/course: training {entry['train_speedup']:.2f}x, end-to-end "
                  f"{entry['end_to_end_speedup']:.2f}x, per CPU-second {entry['cpu_speedup']:.2f}x; test acc {med['ours']['test_acc']:.3f} vs "
                  f"{med['course']['test_acc']:.3f}; data pipeline {split_cost['data_ms_per_100']:.1f} ms vs "
                  f"forward/backward {split_cost['compute_ms_per_100']:.1f} ms per 100 images "
                  f"({100 * split_cost['data_over_compute']:.1f}%)", flush=True)
        if args.live_epochs:
            live = app_vs_cli(split, args.models[0], args, work)
            results["app_vs_cli"] = live
            print(f"{args.models[0]:<11} started from the Training page with live charts ({live['redraws']} redraws): "
                  f"{live['app_img_per_s']:.0f} img/s vs {live['cli_img_per_s']:.0f} img/s as the CLI trains "
                  f"({100 * live['app_over_cli']:.0f}%)", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, default=float))


if __name__ == "__main__":
    main()
