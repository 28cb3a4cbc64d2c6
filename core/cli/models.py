"""`models` lists what can be built; `summary` shows a network's layer table, params and FLOPs."""
from __future__ import annotations

import argparse

from core.cli import Output
from core.i18n import cli_lang, t
from core.workspace import Workspace


def register(sub) -> None:
    lang = cli_lang()
    p = sub.add_parser("models", help=t("models.cli.models_help", lang))
    p.set_defaults(handler=list_models)
    p = sub.add_parser("summary", help=t("models.cli.summary_help", lang))
    p.add_argument("model", metavar="MODEL_OR_SPEC", help=t("models.cli.model_arg", lang))
    p.add_argument("--img-size", type=int, default=32, help=t("models.cli.img_size_arg", lang))
    p.add_argument("--classes", type=int, default=10, help=t("models.cli.classes_arg", lang))
    p.add_argument("--freeze", default="all", help=t("models.cli.freeze_arg", lang))
    p.add_argument("--depth", type=int, default=3, help=t("models.cli.depth_arg", lang))
    p.set_defaults(handler=summary)


def list_models(args: argparse.Namespace, out: Output) -> int:
    from core.models import BACKBONES, PRESETS, list_specs, pretrained_available

    saved = list_specs(Workspace.open().models)
    backbones = [{"name": b, "pretrained_cached": pretrained_available(b)} for b in BACKBONES]
    yes, no = out.t("models.cli.cached"), out.t("models.cli.not_cached")
    lines = [out.t("models.cli.presets"), *(f"  {p}" for p in PRESETS), out.t("models.cli.backbones")]
    lines += [f"  {b['name']:<20} {out.t('models.cli.pretrained')}: {yes if b['pretrained_cached'] else no}" for b in backbones]
    lines += [out.t("models.cli.saved"), *(f"  {s}" for s in saved or ["-"])]
    out.emit({"presets": list(PRESETS), "backbones": backbones, "saved": saved}, "\n".join(lines))
    return 0


def summary(args: argparse.Namespace, out: Output) -> int:
    from core.models import build_model, describe_ref, freeze, load_ref, summarize

    ref = load_ref(args.model, Workspace.open().models)
    model = build_model(ref, args.classes, args.img_size)
    freeze(model, args.freeze)
    s = summarize(model, args.img_size, depth=args.depth)
    col = {c: out.t(f"models.page.col_{c}") for c in ("name", "type", "output_shape", "params", "trainable")}
    header = f"{col['name']:<40} {col['type']:<20} {col['output_shape']:<22} {col['params']:>12} {col['trainable']:>12}"
    rows = [
        f"{('  ' * (r.depth - 1) + r.name.rsplit('.', 1)[-1])[:40]:<40} {r.type[:20]:<20} "
        f"{str(r.output_shape)[:22]:<22} {r.params:>12,} {r.trainable:>12,}"
        for r in s.rows
    ]
    totals = out.t("models.cli.totals", total=f"{s.total_params:,}", trainable=f"{s.trainable_params:,}",
                   size=f"{s.size_mb:.2f}", flops=f"{s.flops / 1e6:,.1f}", img_size=args.img_size)
    text = "\n".join([describe_ref(ref), header, "-" * len(header), *rows, "-" * len(header), totals])
    out.emit({"model": describe_ref(ref), "ref": ref, "classes": args.classes, **s.to_dict()}, text)
    return 0
