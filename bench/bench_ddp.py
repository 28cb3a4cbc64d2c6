"""Benchmark: one process vs several under torchrun (DDP), same run, same global batch.

    .venv/bin/python bench/bench_ddp.py                       # 1 process, torchrun x 1, torchrun x 2
    .venv/bin/python bench/bench_ddp.py --nproc 2 4 --images 20000 --model resnet18_cbam --img-size 64
    .venv/bin/python bench/bench_ddp.py --device cuda --nproc 1 2 4 8   # a GPU machine: one process per GPU

Rows, each a whole process timed from its start to its exit (imports, torchrun's start and the
ranks' included), on generated demo JPEGs (core.data.demo) whose decode-once cache is built
before the timing:
  * 1 process:     `Trainer`, as `python -m core train` without --nproc runs it;
  * torchrun x N:  `core.training.distributed.Launcher` with nproc N (N = 1 shows what torchrun
                   and DDP cost by themselves).
It prints training images/s (the training loop of all ranks together, from the run's summary),
wall seconds, both as a ratio to one process, and the last epoch's validation accuracy (the same
global batch: the runs should learn alike).

On a CPU, N processes share the machine's cores (each rank gets cores / N threads): DDP adds
gradient all-reduces and per-process overheads and gains nothing a single process's threads
do not already use, so expect no speed-up there; DDP pays off with one GPU per process.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def child(args: argparse.Namespace) -> None:
    """One timed run, in this process (the parent times the whole process)."""
    from core import runs
    from core.runs import create_run
    from core.training.config import TrainConfig
    from core.training.distributed import Launcher
    from core.training.engine import Trainer

    work = Path(args.work)
    cfg = TrainConfig(data=str(work / "split"), model={"preset": args.model}, img_size=args.img_size,
                      batch_size=args.batch, epochs=args.epochs, augment=args.augment, device=args.device,
                      nproc=max(1, args.child_nproc)).validated()
    run_dir = create_run(cfg, work / "runs")
    runner = Trainer if args.child_nproc == 0 else Launcher
    summary = runner(cfg, run_dir, cache_dir=work / "cache").run()
    epochs = runs.read_metrics(run_dir, "epoch")
    print(json.dumps({"img_per_s": summary.get("img_per_s"), "status": summary["status"],
                      "val_acc": epochs[-1]["val_acc"] if epochs else None, "device": summary.get("device")}))


def timed(args: argparse.Namespace, work: Path, nproc: int) -> dict:
    """nproc 0: one plain process; else torchrun with nproc ranks."""
    argv = [sys.executable, __file__, "--child", "--child-nproc", str(nproc), "--work", str(work),
            "--model", args.model, "--img-size", str(args.img_size), "--batch", str(args.batch),
            "--epochs", str(args.epochs), "--augment", args.augment, "--device", args.device]
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"run failed ({nproc=}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2], help="torchrun rows (processes each)")
    parser.add_argument("--images", type=int, default=2000, help="generated JPEGs (60%% of them train)")
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--side", type=int, default=64, help="side of the generated JPEGs")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--model", default="simple_cnn")
    parser.add_argument("--batch", type=int, default=64, help="the global batch (shared by the processes)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--augment", default="light")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (the data is reused)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-nproc", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from core.data.demo import make_demo
    from core.data.split import split_dataset
    from core.training.batches import load_data
    from core.training.config import TrainConfig

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-ddp-"))
    if not (work / "split").is_dir():
        make_demo(work / "demo", classes=args.classes, per_class=args.images // args.classes, size=args.side, seed=0)
        split_dataset(work / "demo", work / "split", val=0.2, test=0.2, seed=0)
    # the decoded images each run reads, cached here, outside the timing
    load_data(TrainConfig(data=str(work / "split"), img_size=args.img_size, augment=args.augment).validated(),
              work / "cache")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; {args.model} at {args.img_size} px, global batch {args.batch}, "
          f"{args.epochs} epochs, {args.images} images", flush=True)
    rows = [("1 process", timed(args, work, 0))]
    for n in args.nproc:
        rows.append((f"torchrun x {n}", timed(args, work, n)))
    base = rows[0][1]
    print(f"{'':<14} {'img/s':>8} {'vs 1':>6} {'wall s':>8} {'vs 1':>6} {'val acc':>8}  device")
    for name, r in rows:
        print(f"{name:<14} {r['img_per_s']:>8.0f} {r['img_per_s'] / base['img_per_s']:>5.2f}x {r['wall_s']:>8.1f} "
              f"{r['wall_s'] / base['wall_s']:>5.2f}x {r['val_acc']:>8.3f}  {r['device']}")
    print(json.dumps(dict(rows), default=float))


if __name__ == "__main__":
    main()
