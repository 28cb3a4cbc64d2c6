"""`train`, `evaluate` and `predict`: the Training page's work, without a screen.

`train` has a flag for every TrainConfig field, made from the dataclass itself (its names,
types and defaults), so a setting added there is on the command line at once; `--config FILE`
reads the same settings from JSON, and the flags given override it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import threading
import types
import typing
from pathlib import Path
from typing import Any

from core.cli import Output
from core.errors import UserError
from core.i18n import cli_lang, t
from core.training.config import (
    BALANCES,
    CACHES,
    EARLY_STOP_METRICS,
    FROZEN_BN,
    MEMORY_FORMATS,
    NORMALIZATIONS,
    OPTIMIZERS,
    PLATEAU_METRICS,
    SCHEDULERS,
    TTAS,
    TrainConfig,
)

# core.data.augment.AUGMENT_PRESETS and core.device.CHOICES, named here so that --help does not import torch
AUGMENTS = ("none", "light", "seed", "strong")
DEVICES = ("auto", "cpu", "cuda", "mps")
# Listed in --help only: a wrong value gets core's own translated message (and JSON with --json).
CHOICES = {"optimizer": OPTIMIZERS, "scheduler": SCHEDULERS, "augment": AUGMENTS, "device": DEVICES,
           "normalization": NORMALIZATIONS, "early_stop_metric": EARLY_STOP_METRICS, "frozen_bn": FROZEN_BN,
           "plateau_metric": PLATEAU_METRICS, "balance": BALANCES, "cache": CACHES, "tta": TTAS,
           "memory_format": MEMORY_FORMATS}
METAVARS = {"data": "SPLIT", "model": "NAME_OR_SPEC"}
NOT_KIND = {int: "training.cli.not_int", float: "training.cli.not_float", bool: "training.cli.not_bool",
            str: "training.cli.not_text"}


@dataclasses.dataclass(frozen=True)
class Unset:
    """A flag's default: --help shows TrainConfig's value, and a flag left out stays apart from
    one given with that same value (which must still override --config)."""

    value: Any

    def __str__(self) -> str:
        return str(self.value)


def field_kinds() -> dict[str, Any]:
    """TrainConfig's field names -> their types (`X | None` read as X), in declaration order."""
    hints = typing.get_type_hints(TrainConfig)
    kinds = {}
    for f in dataclasses.fields(TrainConfig):
        kind, args = hints[f.name], typing.get_args(hints[f.name])
        kinds[f.name] = args[0] if len(args) == 2 and args[1] is type(None) else kind
    return kinds


def field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def add_config_flags(p: argparse.ArgumentParser, lang: str) -> None:
    """`--field-name VALUE` for each TrainConfig field; `--flag/--no-flag` for a yes/no one."""
    kinds = field_kinds()
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        text = t(f"training.cli.{f.name}", lang, choices=", ".join(CHOICES.get(f.name, ())))
        if kinds[f.name] is bool:
            action = p.add_argument(flag, action=argparse.BooleanOptionalAction, default=Unset(field_default(f)))
            action.help = text  # set afterwards: Python < 3.13 would add an English "(default: ...)"
        else:
            p.add_argument(flag, default=Unset(field_default(f)), metavar=METAVARS.get(f.name, f.name.upper()),
                           help=text)


def register(sub) -> None:
    lang = cli_lang()
    p = sub.add_parser("train", help=t("training.cli.train_help", lang))
    p.add_argument("--recipe", metavar="NAME", help=t("recipes.cli.recipe", lang))
    p.add_argument("--config", metavar="FILE", help=t("training.cli.config", lang))
    add_config_flags(p, lang)
    p.add_argument("--print-config", action="store_true", help=t("training.cli.print_config", lang))
    p.add_argument("--runs-dir", metavar="DIR", help=t("training.cli.runs_dir", lang))
    p.add_argument("--resume", metavar="RUN", help=t("training.cli.resume", lang))
    p.add_argument("--more-epochs", metavar="N", type=int, help=t("training.cli.more_epochs", lang))
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


def read_config_file(path: str) -> dict[str, Any]:
    file = Path(path).expanduser()
    try:
        values = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise UserError("training.cli.config_missing", path=str(file)) from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError("training.cli.config_bad", path=str(file), reason=str(err)) from err
    if not isinstance(values, dict):
        raise UserError("training.cli.config_not_object", path=str(file))
    return values


def convert(name: str, kind: Any, value: Any) -> Any:
    """`value` (a flag's text or a JSON value) as the field's type, or a UserError naming the field."""
    try:
        if _name_or_object(kind) and isinstance(value, str) and not value.lstrip().startswith("{"):
            return value  # a name (augment "seed", normalization "imagenet"); else JSON settings
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and not isinstance(value, bool) and isinstance(value, (int, str)):
            return int(value)
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if kind is float and not isinstance(value, bool) and isinstance(value, (int, float, str)):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
        if kind not in NOT_KIND:  # e.g. a dict: JSON on the command line, as it is in a file
            return json.loads(value) if isinstance(value, str) else value
    except ValueError as err:  # json.JSONDecodeError is a ValueError too
        if kind not in NOT_KIND:
            raise UserError("training.cli.not_json", field=name, value=value) from err
    raise UserError(NOT_KIND.get(kind, "training.cli.not_json"), field=name, value=value)


def _name_or_object(kind: Any) -> bool:
    """A field that takes a name or a JSON object of settings (`str | dict`)."""
    return typing.get_origin(kind) in (typing.Union, types.UnionType) and str in typing.get_args(kind)


def resolve_config(args: argparse.Namespace, models_dir: Path) -> TrainConfig:
    """TrainConfig's defaults, then the --recipe's settings, then the --config file's values,
    then the flags given."""
    from core.models import check_ref, load_ref

    kinds = field_kinds()
    values = read_config_file(args.config) if args.config else {}
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise UserError("training.config_unknown", keys=", ".join(unknown))
    values |= {name: getattr(args, name) for name in kinds if not isinstance(getattr(args, name), Unset)}
    if not values.get("data"):
        raise UserError("training.cli.need_data")
    if getattr(args, "recipe", None):
        from core import recipes

        # the data is known first: a computed recipe is made from it
        values = recipes.load(args.recipe, Path(str(values["data"])).expanduser()).values() | values
    model = values.pop("model", None)
    values = {name: convert(name, kinds[name], value) for name, value in values.items()}
    values["data"] = str(Path(values["data"]).expanduser().resolve())
    if isinstance(model, str):
        values["model"] = load_ref(model, models_dir)
    elif model is not None:
        check_ref(model)
        values["model"] = model
    return TrainConfig(**values).validated()


def train(args: argparse.Namespace, out: Output) -> int:
    from core import runs
    from core.runs import create_run
    from core.training.distributed import Launcher
    from core.training.engine import Trainer
    from core.workspace import Workspace

    ws = Workspace.open()
    from_checkpoint = False
    if args.more_epochs is not None and not args.resume:
        raise UserError("training.cli.more_needs_resume")
    if args.resume and not isinstance(args.epochs, Unset):
        raise UserError("training.cli.resume_epochs", n=args.epochs)
    if args.resume:
        run_dir = find_run(args.resume)
        config = TrainConfig.of_run(runs.read_config(run_dir))
        if not isinstance(args.nproc, Unset):  # a run may go on in another number of processes
            config = dataclasses.replace(config, nproc=convert("nproc", int, args.nproc)).validated()
        if args.print_config:
            if args.more_epochs is not None:
                config.epochs = int(runs.read_summary(run_dir).get("epochs_done", 0)) + args.more_epochs
            return print_config(config, out)
        runs.mark_interrupted(run_dir.parent)  # a run whose process was killed mid-training
        if args.more_epochs is not None:
            from core.training.more import add_epochs

            more = add_epochs(run_dir, args.more_epochs)
            config, from_checkpoint = dataclasses.replace(more, nproc=config.nproc), True
        else:
            from_checkpoint = runs.resume_from_checkpoint(run_dir)
    else:
        config = resolve_config(args, ws.models)
        if args.print_config:
            return print_config(config, out)
        run_dir = create_run(config, Path(args.runs_dir) if args.runs_dir else ws.runs)

    def on_record(record: dict) -> None:
        if record["type"] == "epoch":
            out.emit({k: v for k, v in record.items() if k != "type"}, out.t("training.cli.epoch_line", **record))
        elif record["type"] == "note":
            out.emit({"note": record["key"]}, out.t(record["key"], **record.get("params", {})))

    stop = threading.Event()
    _stop_on_ctrl_c(stop)
    out.emit({"run": str(run_dir), "event": "start"}, out.t("training.cli.started", run=run_dir))
    # --nproc N > 1: the same training in N processes under torchrun (core.training.distributed)
    runner = Trainer if config.nproc == 1 else Launcher
    summary = runner(config, run_dir, cache_dir=ws.cache, stop=stop, on_record=on_record).run(resume=from_checkpoint)
    out.emit({"run": str(run_dir), "summary": summary},
             out.t("training.cli.done", status=summary["status"], best=summary.get("best_val_acc") or 0.0,
                   test=summary.get("test_acc") if summary.get("test_acc") is not None else float("nan"), run=run_dir))
    return 0


def print_config(config: TrainConfig, out: Output) -> int:
    """The settings a run would get, as JSON (one line with --json), ready for --config."""
    values = config.to_dict()
    out.emit(values, json.dumps(values, indent=2, ensure_ascii=False))
    return 0


def evaluate(args: argparse.Namespace, out: Output) -> int:
    from core import runs
    from core.data.labels import class_names
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
    from core.inference import load_model
    from core.inference import predict as predict_probs

    model, info = load_model(find_run(args.run))
    for path in args.images:
        probs = predict_probs(model, [open_image(path)], info)[0]
        top = probs.topk(min(args.topk, len(probs)))
        ranked = [{"class": info.classes[i], "name": info.display_names[i], "p": round(float(p), 6)}
                  for p, i in zip(top.values.tolist(), top.indices.tolist())]
        text = f"{path}\n" + "\n".join(f"  {r['name']:<24} {r['p']:.3f}" for r in ranked)
        out.emit({"image": path, "top": ranked}, text)
    return 0
