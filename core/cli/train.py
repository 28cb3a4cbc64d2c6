"""`train`, `evaluate` and `predict`: the Training page's work, without a screen."""
from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from core.cli import Output
from core.errors import UserError
from core.i18n import cli_lang, t
from core.training.config import OPTIMIZERS, SCHEDULERS

# core.data.augment.AUGMENT_PRESETS and core.device.CHOICES, named here so that --help does not import torch
AUGMENTS = ("none", "light", "seed", "strong")
DEVICES = ("auto", "cpu", "cuda", "mps")


def register(sub) -> None:
    lang = cli_lang()
    p = sub.add_parser("train", help=t("training.cli.train_help", lang))
    p.add_argument("--data", metavar="SPLIT", help=t("training.cli.data", lang))
    p.add_argument("--model", metavar="NAME_OR_SPEC", default="simple_cnn", help=t("training.cli.model", lang))
    p.add_argument("--epochs", type=int, default=10, help=t("training.cli.epochs", lang))
    p.add_argument("--img-size", type=int, default=64, help=t("training.cli.img_size", lang))
    p.add_argument("--batch-size", type=int, default=64, help=t("training.cli.batch_size", lang))
    p.add_argument("--lr", type=float, default=1e-3, help=t("training.cli.lr", lang))
    # Not argparse choices: a wrong value gets core's own translated message (and JSON with --json).
    for flag, default, names in (("--optimizer", "adam", OPTIMIZERS), ("--scheduler", "none", SCHEDULERS),
                                 ("--augment", "seed", AUGMENTS), ("--device", "auto", DEVICES)):
        p.add_argument(flag, default=default, help=t("training.cli.choice", lang, choices=", ".join(names)))
    p.add_argument("--runs-dir", metavar="DIR", help=t("training.cli.runs_dir", lang))
    p.add_argument("--name", default="", help=t("training.cli.name", lang))
    p.add_argument("--seed", type=int, default=42, help=t("training.cli.seed", lang))
    p.add_argument("--resume", metavar="RUN", help=t("training.cli.resume", lang))
    p.set_defaults(handler=train)

    p = sub.add_parser("evaluate", help=t("training.cli.evaluate_help", lang))
    p.add_argument("run", metavar="RUN", help=t("training.cli.run", lang))
    p.add_argument("--data", metavar="SPLIT", help=t("training.cli.data", lang))
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help=t("training.cli.split", lang))
    p.set_defaults(handler=evaluate)

    p = sub.add_parser("predict", help=t("training.cli.predict_help", lang))
    p.add_argument("run", metavar="RUN", help=t("training.cli.run", lang))
    p.add_argument("images", metavar="IMAGE", nargs="+", help=t("training.cli.images", lang))
    p.add_argument("--topk", type=int, default=5, help=t("training.cli.topk", lang))
    p.set_defaults(handler=predict)


def find_run(run: str) -> Path:
    """A run folder given by path, or by id in the workspace's runs folder."""
    from core import runs
    from core.workspace import Workspace

    return runs.find_run(run, Workspace.open().runs)


def _stop_on_ctrl_c(stop: threading.Event) -> None:
    signal.signal(signal.SIGINT, lambda *_: stop.set())


def train(args: argparse.Namespace, out: Output) -> int:
    from core.models import load_ref
    from core import runs
    from core.training.config import TrainConfig
    from core.runs import create_run
    from core.training.engine import Trainer
    from core.workspace import Workspace

    ws = Workspace.open()
    from_checkpoint = False
    if args.resume:
        run_dir = find_run(args.resume)
        runs.mark_interrupted(run_dir.parent)  # a run whose process was killed mid-training
        from_checkpoint = runs.resume_from_checkpoint(run_dir)
        config = TrainConfig.from_dict({k: v for k, v in runs.read_config(run_dir).items()
                                        if k in TrainConfig.__dataclass_fields__})
    else:
        if not args.data:
            raise UserError("training.cli.need_data")
        config = TrainConfig(
            data=str(Path(args.data).resolve()), model=load_ref(args.model, ws.models), name=args.name,
            img_size=args.img_size, batch_size=args.batch_size, epochs=args.epochs, optimizer=args.optimizer,
            lr=args.lr, scheduler=args.scheduler, augment=args.augment, device=args.device, seed=args.seed,
        ).validated()
        run_dir = create_run(config, Path(args.runs_dir) if args.runs_dir else ws.runs)

    def on_record(record: dict) -> None:
        if record["type"] == "epoch":
            out.emit({k: v for k, v in record.items() if k != "type"}, out.t("training.cli.epoch_line", **record))

    stop = threading.Event()
    _stop_on_ctrl_c(stop)
    out.emit({"run": str(run_dir), "event": "start"}, out.t("training.cli.started", run=run_dir))
    summary = Trainer(config, run_dir, cache_dir=ws.cache, stop=stop, on_record=on_record).run(resume=from_checkpoint)
    out.emit({"run": str(run_dir), "summary": summary},
             out.t("training.cli.done", status=summary["status"], best=summary.get("best_val_acc") or 0.0,
                   test=summary.get("test_acc") if summary.get("test_acc") is not None else float("nan"), run=run_dir))
    return 0


def evaluate(args: argparse.Namespace, out: Output) -> int:
    from core.data.labels import class_names
    from core import runs
    from core.training.evaluate import evaluate_run
    from core.workspace import Workspace

    run_dir = find_run(args.run)
    result = evaluate_run(run_dir, args.data, args.split, cache_dir=Workspace.open().cache)
    result.pop("predictions")
    # per_class follows the run's classes: the names cat_to_name.json gives, beside the folders'
    for row, name in zip(result["per_class"], class_names(runs.read_config(run_dir))):
        row["name"] = name
    lines = [out.t("training.cli.eval_head", split=args.split, n=result["n"], acc=result["accuracy"])]
    if not result["own_data"]:
        lines.insert(0, out.t("training.cli.eval_other", data=result["data"], split=args.split,
                              split_id=result["split_id"], stored=result["stored"],
                              why=out.t("training.eval_other." + result["other_reason"])))
    lines += [f"  {r['name']:<24} P {r['precision']:.3f}  R {r['recall']:.3f}  F1 {r['f1']:.3f}  n {r['support']}"
              for r in result["per_class"]]
    lines.append(out.t("training.cli.confusion"))
    lines += ["  " + " ".join(f"{v:>5}" for v in row) for row in result["confusion"]]
    out.emit(result, "\n".join(lines))
    return 0


def predict(args: argparse.Namespace, out: Output) -> int:
    from core.data.images import open_image
    from core.inference import load_model, predict as predict_probs

    model, info = load_model(find_run(args.run))
    for path in args.images:
        probs = predict_probs(model, [open_image(path)], info)[0]
        top = probs.topk(min(args.topk, len(probs)))
        ranked = [{"class": info.classes[i], "name": info.display_names[i], "p": round(float(p), 6)}
                  for p, i in zip(top.values.tolist(), top.indices.tolist())]
        text = f"{path}\n" + "\n".join(f"  {r['name']:<24} {r['p']:.3f}" for r in ranked)
        out.emit({"image": path, "top": ranked}, text)
    return 0
