"""`demo`, `check` and `split`: create, inspect and split a class-folder dataset."""
from __future__ import annotations

import argparse

from core.cli import Output
from core.i18n import cli_lang, t


def register(sub) -> None:
    lang = cli_lang()
    p = sub.add_parser("demo", help=t("data.cli.demo_help", lang))
    p.add_argument("out", metavar="OUT", help=t("data.cli.demo_out", lang))
    p.add_argument("--classes", type=int, default=5, help=t("data.cli.classes", lang))
    p.add_argument("--per-class", type=int, default=200, help=t("data.cli.per_class", lang))
    p.add_argument("--size", type=int, default=96, help=t("data.cli.size", lang))
    p.add_argument("--seed", type=int, default=0, help=t("data.cli.seed", lang))
    p.set_defaults(handler=demo)

    p = sub.add_parser("check", help=t("data.cli.check_help", lang))
    p.add_argument("src", metavar="SRC", help=t("data.cli.src", lang))
    p.set_defaults(handler=check)

    p = sub.add_parser("split", help=t("data.cli.split_help", lang))
    p.add_argument("src", metavar="SRC", help=t("data.cli.src", lang))
    p.add_argument("out", metavar="OUT", help=t("data.cli.split_out", lang))
    p.add_argument("--val", type=float, default=0.2, help=t("data.cli.val", lang))
    p.add_argument("--test", type=float, default=0.2, help=t("data.cli.test", lang))
    p.add_argument("--seed", type=int, default=42, help=t("data.cli.seed", lang))
    p.add_argument("--mode", choices=("link", "copy"), default="link", help=t("data.cli.mode", lang))
    p.add_argument("--force", action="store_true", help=t("data.cli.force", lang))
    p.add_argument("--small-classes", choices=("refuse", "leave-out", "train-only"), default="refuse",
                   help=t("data.cli.small_classes", lang))
    p.add_argument("--exclude", metavar="CLASS", action="append", default=[], help=t("data.cli.exclude", lang))
    p.set_defaults(handler=split)


def demo(args: argparse.Namespace, out: Output) -> int:
    from core.data.demo import make_demo

    path = make_demo(args.out, args.classes, args.per_class, args.size, args.seed)
    record = {"path": str(path), "classes": args.classes, "per_class": args.per_class, "size": args.size}
    out.emit(record, out.t("data.cli.demo_done", path=path, images=args.classes * args.per_class, classes=args.classes))
    return 0


def class_note(c, out: Output) -> str:
    """Why a class's usable count is below its file count, in words ("" when nothing to say)."""
    note = c.note()
    return out.t(note[0], **note[1]) if note else ""


def check(args: argparse.Namespace, out: Output) -> int:
    from core.data.scan import scan

    report = scan(args.src)
    lines = [out.t("data.cli.check_root", root=report.root, images=report.total_images, classes=len(report.classes))]
    record = report.to_dict()
    for c, row in zip(report.classes, record["classes"]):
        row["note"] = class_note(c, out)
    for c in report.listed():
        why = [text for text in (out.t("data.cli.bad", n=c.problems) if c.problems else "", class_note(c, out)) if text]
        lines.append(f"  {c.label:<32} {c.images:>7}" + (f"  ({'; '.join(why)})" if why else ""))
    for axis, s in report.sizes.items():
        lines.append(out.t(f"data.cli.{axis}", **s))
    lines.append(out.t("data.cli.formats", formats=", ".join(f"{k} {v}" for k, v in sorted(report.formats.items()))))
    lines.append(out.t("data.cli.problems", n=len(report.problems)))
    lines += [f"  {p.path}: {out.t('data.reason.' + p.kind)}" + (f" ({p.detail})" if p.detail else "") for p in report.problems]
    lines.append(out.t("data.cli.notes", n=len(report.notes)))
    lines += [f"  {p.path}: {out.t('data.reason.' + p.kind)}" for p in report.notes]
    lines.append(out.t("data.cli.duplicates", n=len(report.duplicates)))
    lines += ["  " + " = ".join(group) for group in report.duplicates]
    out.emit(record, "\n".join(lines))
    return 0


def split(args: argparse.Namespace, out: Output) -> int:
    from core.data.scan import scan
    from core.data.split import SPLITS, left_out_note, split_dataset
    from core.workspace import Workspace, default_root

    report = scan(args.src)
    runs_dir = Workspace(default_root()).runs  # runs made before splits carried markers; not created here
    info = split_dataset(args.src, args.out, args.val, args.test, args.seed, args.mode, args.force, report=report,
                         small=args.small_classes.replace("-", "_"), exclude=args.exclude, runs_dir=runs_dir)
    header = f"{out.t('data.cli.class'):<32}" + "".join(f"{out.t('data.split.' + s):>8}" for s in SPLITS)
    rows = [f"{c.label:<32}" + "".join(f"{info['counts'][c.name][s]:>8}" for s in SPLITS)
            for c in report.listed() if c.name in info["counts"]]
    totals = {s: sum(c[s] for c in info["counts"].values()) for s in SPLITS}
    rows.append(f"{out.t('data.cli.total'):<32}" + "".join(f"{totals[s]:>8}" for s in SPLITS))
    by_name = {c.name: c for c in report.classes}
    notes = []
    for item in info["left_out"]:
        key, params = left_out_note(item, report)
        notes.append(out.t("data.cli.left_out", name=by_name[item["class"]].label, reason=out.t(key, **params)))
    notes += [out.t("data.cli.train_only", name=by_name[name].label) for name in info["train_only"]]
    skipped = [f"  {s['path']}: {out.t('data.reason.' + s['reason'])}" for s in info["skipped"]]
    text = "\n".join([out.t("data.cli.split_done", out=args.out, mode=info["mode"]), header, *rows, *notes,
                      out.t("data.cli.skipped", n=len(skipped)), *skipped])
    out.emit({"out": args.out, **info}, text)
    return 0
