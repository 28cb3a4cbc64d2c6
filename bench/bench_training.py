"""Benchmark: the training loop the course writes by hand vs `python -m core train`, same model, data and epochs.

    .venv/bin/python bench/bench_training.py          # real CIFAR-10 JPEGs, then 128 px generated JPEGs; 5 epochs
    .venv/bin/python bench/bench_training.py --sources cifar --models simple_cnn --epochs 2

Sources (one table row each):
  * cifar:     `--images` real CIFAR-10 JPEGs (32 px files, equal per class) taken from
               ../shared/datasets/cifar10-train.zip, split 80/10/10 (8,000 training images by
               default), trained at 32 px with the course's CIFAR transforms: RandomCrop(32, 4),
               flip, ToTensor, Normalize (ours: the "light" preset, the same ops);
  * generated: `--images` generated 128 px JPEGs (core.data.demo) resized to 32 px, with
               Resize, flip, pad-crop, colour jitter (ours: the "seed" preset).
Each model trains twice per repeat, alternating who goes first, each as a whole process:
  * course:  this script's `--child course`: torchvision ImageFolder + per-image transforms +
             DataLoader(num_workers=2), batch 64, Adam 1e-3, the val loop after every epoch,
             best weights saved with torch.save, a test pass;
  * ours:    `python -m core train` on the same split in a fresh workspace (so the decode-once
             cache is built inside the timing), batched augmentation, val after every epoch,
             atomic checkpoints, the run folder, the test evaluation with predictions.csv.
It prints, per model: training images/s (train loop only), whole-process wall time (from the
interpreter's start to its exit, imports included), their ratios, both test accuracies, and the
model's bare forward+backward+step rate on ready tensors (same optimizer, same memory layout
as our run chose) with our training rate as a share of it. Last, the first model is trained
from the Training page (Streamlit AppTest, redrawn every second like its live fragment) and
with the same config as the CLI trains: the app's images/s as a share of the CLI's.

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
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import runs  # noqa: E402
from core.data.augment import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from core.data.cache import load_images  # noqa: E402
from core.data.demo import make_demo  # noqa: E402
from core.data.split import split_dataset  # noqa: E402
from core.models import build_model  # noqa: E402
from core.training.batches import Batches  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402
from core.training.engine import Trainer  # noqa: E402
from core.training.optim import make_optimizer  # noqa: E402

CIFAR_ZIP = ROOT.parent / "shared" / "datasets" / "cifar10-train.zip"
# ours: the preset whose ops are the course loop's transforms for that source
AUGMENT = {"cifar": "light", "generated": "seed"}


def cifar_subset(out: Path, images: int) -> None:
    """`images` real CIFAR-10 JPEGs, the same number per class, unpacked into out/<class>/."""
    with zipfile.ZipFile(CIFAR_ZIP) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".jpg"))
        classes = sorted({n.split("/")[-2] for n in names})
        per_class = images // len(classes)
        for c in classes:
            for name in [n for n in names if n.split("/")[-2] == c][:per_class]:
                target = out / c / Path(name).name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(name))


# --- the course's loop, as written by hand (run in its own process: `--child course`) ----------
def course_loaders(split: Path, source: str, size: int, batch: int, workers: int):
    from torchvision import datasets, transforms

    norm = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    if source == "cifar":  # the course's CIFAR-10 lessons
        train_tf = transforms.Compose([transforms.RandomCrop(size, padding=4), transforms.RandomHorizontalFlip(),
                                       transforms.ToTensor(), norm])
        eval_tf = transforms.Compose([transforms.ToTensor(), norm])
    else:
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


def course_run(split: Path, source: str, preset: str, args, work: Path) -> dict:
    torch.manual_seed(args.seed)
    train_loader, val_loader, test_loader = course_loaders(split, source, args.img_size, args.batch, args.workers)
    model = build_model({"preset": preset}, len(train_loader.dataset.classes), args.img_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    train_seconds, seen, best = 0.0, 0, -1.0
    for _ in range(args.epochs):
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
    return {"train_img_per_s": seen / train_seconds, "best_val_acc": best,
            "test_acc": course_accuracy(model, test_loader)}


def cpu_seconds_of_children() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def whole_process(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, stdout) of one process from its start to its exit."""
    cpu, start = cpu_seconds_of_children(), time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return wall, cpu_seconds_of_children() - cpu, done.stdout


def course_process(split: Path, source: str, preset: str, args, work: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", "course", "--child-split", str(split), "--sources", source,
           "--models", preset, "--img-size", str(args.img_size), "--epochs", str(args.epochs),
           "--batch", str(args.batch), "--workers", str(args.workers), "--seed", str(args.seed),
           "--keep", str(work)]
    wall, cpu, out = whole_process(cmd)
    res = json.loads(out.strip().splitlines()[-1])
    n_train = sum(1 for p in (split / "train").rglob("*") if p.is_file())
    return res | {"wall_s": wall, "img_per_cpu_s": n_train * args.epochs / cpu}


def ours_process(split: Path, source: str, preset: str, args, work: Path, tag: str) -> dict:
    """`python -m core train` in a fresh workspace: the cache build is part of the time."""
    ws = work / f"ws-{preset}-{tag}"
    shutil.rmtree(ws, ignore_errors=True)
    cmd = [sys.executable, "-m", "core", "train", "--data", str(split), "--model", preset, "--name", tag,
           "--img-size", str(args.img_size), "--batch-size", str(args.batch), "--epochs", str(args.epochs),
           "--optimizer", "adam", "--lr", "0.001", "--augment", AUGMENT[source], "--device", "cpu",
           "--seed", str(args.seed)]
    wall, cpu, _ = whole_process(cmd, env=os.environ | {"CNN_STUDIO_WORKSPACE": str(ws)})
    [run] = runs.list_runs(ws / "runs")
    summary, config = runs.read_summary(run.path), runs.read_config(run.path)
    seen = (config["n_train"] - (config["n_train"] % args.batch == 1)) * summary["epochs_done"]
    return {"train_img_per_s": summary["img_per_s"], "wall_s": wall, "img_per_cpu_s": seen / cpu,
            "best_val_acc": summary["best_val_acc"], "test_acc": summary.get("test_acc"),
            "memory_format": summary.get("memory_format", "contiguous")}


def bare_rate(split: Path, source: str, preset: str, args, work: Path, channels_last: bool,
              batches_per_pass: int = 40, passes: int = 3) -> dict:
    """The model's forward+backward+Adam step alone on ready tensors (in the layout our run chose)
    vs our data pipeline alone for the same batches; alternating passes, medians."""
    images = load_images(split, "train", args.img_size, work / "cache-bare")
    batches = Batches(images, args.batch, torch.device("cpu"), IMAGENET_MEAN, IMAGENET_STD, AUGMENT[source],
                      torch.Generator().manual_seed(0), channels_last, args.img_size)
    torch.manual_seed(args.seed)
    model = build_model({"preset": preset}, len(images.classes), args.img_size)
    model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format).train()
    cfg = TrainConfig(data=str(split), optimizer="adam").validated()
    optimizer, criterion = make_optimizer(model, cfg, 1e-3), nn.CrossEntropyLoss()
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
    return {"bare_img_per_s": n / compute, "data_ms_per_100": 1e5 * data / n, "compute_ms_per_100": 1e5 * compute / n}


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


def make_split(source: str, args, work: Path) -> Path:
    src, split = work / f"src-{source}", work / f"split-{source}"
    if not (split / "split.json").is_file():
        t0 = time.perf_counter()
        if source == "cifar":
            cifar_subset(src, args.images)
        else:
            make_demo(src, classes=args.classes, per_class=args.images // args.classes, size=args.side, seed=0)
        split_dataset(src, split, val=0.1, test=0.1, seed=args.seed)
        print(f"{source}: {args.images} JPEGs ready and split in {time.perf_counter() - t0:.1f} s", flush=True)
    return split


def compare_model(split: Path, source: str, preset: str, args, work: Path) -> dict:
    pairs = {"course": [], "ours": []}
    for r in range(args.repeats):
        # Alternate who goes first, so a load spike on the shared machine hits both alike.
        for who in (("course", "ours") if r % 2 == 0 else ("ours", "course")):
            res = (course_process(split, source, preset, args, work) if who == "course"
                   else ours_process(split, source, preset, args, work, f"r{r}"))
            pairs[who].append(res)
            print(f"{source:<9} {preset:<11} {who:<6} train {res['train_img_per_s']:7.0f} img/s   whole process "
                  f"{res['wall_s']:6.1f} s ({res['img_per_cpu_s']:.0f} img per CPU-s)   val {res['best_val_acc']:.3f}"
                  f"   test {res['test_acc']:.3f}", flush=True)
    med = {who: {k: statistics.median(p[k] for p in pairs[who]) for k in pairs[who][0] if k != "memory_format"}
           for who in pairs}
    channels_last = pairs["ours"][0]["memory_format"] == "channels_last"
    bare = bare_rate(split, source, preset, args, work, channels_last)
    entry = {"course": med["course"], "ours": med["ours"], "bare": bare, "channels_last": channels_last,
             "train_speedup": med["ours"]["train_img_per_s"] / med["course"]["train_img_per_s"],
             "wall_speedup": med["course"]["wall_s"] / med["ours"]["wall_s"],
             "cpu_speedup": med["ours"]["img_per_cpu_s"] / med["course"]["img_per_cpu_s"],
             "share_of_bare": med["ours"]["train_img_per_s"] / bare["bare_img_per_s"]}
    print(f"{source:<9} {preset:<11} ours/course: training {entry['train_speedup']:.2f}x, whole process "
          f"{entry['wall_speedup']:.2f}x, per CPU-second {entry['cpu_speedup']:.2f}x; test acc "
          f"{med['ours']['test_acc']:.3f} vs {med['course']['test_acc']:.3f}; ours trains at "
          f"{100 * entry['share_of_bare']:.0f}% of the bare forward+backward+step rate "
          f"({bare['bare_img_per_s']:.0f} img/s, {'channels_last' if channels_last else 'contiguous'}); data "
          f"pipeline {bare['data_ms_per_100']:.1f} ms vs compute {bare['compute_ms_per_100']:.1f} ms per 100 images",
          flush=True)
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", nargs="+", default=["cifar", "generated"], choices=["cifar", "generated"])
    parser.add_argument("--images", type=int, default=10_000, help="JPEGs per source (80%% of them train)")
    parser.add_argument("--classes", type=int, default=5, help="classes of the generated set")
    parser.add_argument("--side", type=int, default=128, help="side of the generated JPEGs")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the course loop")
    parser.add_argument("--models", nargs="+", default=["simple_cnn", "cbam_cnn"])
    parser.add_argument("--repeats", type=int, default=1, help="alternating pairs per model (median reported)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--live-epochs", type=int, default=1,
                        help="epochs of the app-vs-CLI check (first source and model only; 0 skips it)")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (data reused when present)")
    parser.add_argument("--child", choices=["course"], help=argparse.SUPPRESS)
    parser.add_argument("--child-split", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(course_run(Path(args.child_split), args.sources[0], args.models[0], args, Path(args.keep))))
        return
    if "cifar" in args.sources and not CIFAR_ZIP.is_file():
        raise SystemExit(f"{CIFAR_ZIP} not found: run with --sources generated")

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {platform.platform()}"
    print(machine, f"load average {os.getloadavg()[0]:.1f}", flush=True)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_training_"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": machine, "args": vars(args), "rows": {}}
    try:
        for source in args.sources:
            split = make_split(source, args, work)
            results["rows"][source] = {p: compare_model(split, source, p, args, work) for p in args.models}
        if args.live_epochs:
            live = app_vs_cli(make_split(args.sources[0], args, work), args.models[0], args, work)
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
