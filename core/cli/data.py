"""`demo`, `check`, `split` and `import-cifar`: create, inspect and split a dataset (a folder of
class folders, an existing split kept as given, separate train/test folders, CIFAR batches)."""
from __future__ import annotations

import argparse

from core.cli import Output
from core.errors import UserError
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

    p = sub.add_parser("split", help=t("data.cli.split_help", lang), description=t("data.cli.split_about", lang))
    p.add_argument("src", metavar="SRC", nargs="?", help=t("data.cli.split_src", lang))
    p.add_argument("out", metavar="OUT", help=t("data.cli.split_out", lang))
    p.add_argument("--train", metavar="DIR", help=t("data.cli.train_dir", lang))
    p.add_argument("--val", metavar="FRACTION|DIR", help=t("data.cli.val", lang))
    p.add_argument("--test", metavar="FRACTION|DIR", help=t("data.cli.test", lang))
    p.add_argument("--resplit", action="store_true", help=t("data.cli.resplit", lang))
    p.add_argument("--seed", type=int, default=42, help=t("data.cli.seed", lang))
    p.add_argument("--mode", choices=("link", "copy"), default="link", help=t("data.cli.mode", lang))
    p.add_argument("--force", action="store_true", help=t("data.cli.force", lang))
    p.add_argument("--small-classes", choices=("refuse", "leave-out", "train-only"), default="refuse",
                   help=t("data.cli.small_classes", lang))
    p.add_argument("--exclude", metavar="CLASS", action="append", default=[], help=t("data.cli.exclude", lang))
    p.set_defaults(handler=split)

    p = sub.add_parser("import-cifar", help=t("data.cli.cifar_help", lang))
    p.add_argument("src", metavar="DIR", help=t("data.cli.cifar_src", lang))
    p.add_argument("out", metavar="OUT", help=t("data.cli.split_out", lang))
    p.add_argument("--val", type=float, default=0.1, help=t("data.cli.cifar_val", lang))
    p.add_argument("--seed", type=int, default=42, help=t("data.cli.seed", lang))
    p.add_argument("--force", action="store_true", help=t("data.cli.force", lang))
    p.set_defaults(handler=import_cifar)


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
    from core.data.cifar import find_cifar
    from core.data.existing import find_existing
    from core.data.scan import IMBALANCE_WARN, imbalance, scan

    cifar = find_cifar(args.src)
    if cifar is not None:
        return _check_cifar(cifar, out)
    existing = find_existing(args.src)
    if existing is not None:
        return _check_existing(existing, out)
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
    balance = imbalance({c.name: c.images for c in report.classes})
    if balance:
        record["imbalance"] = {"ratio": round(balance.ratio, 3), "largest": balance.largest, "smallest": balance.smallest}
        lines.append(out.t("data.cli.imbalance", ratio=f"{balance.ratio:.1f}", largest=balance.largest,
                           largest_n=balance.largest_n, smallest=balance.smallest, smallest_n=balance.smallest_n))
        if balance.warn:
            lines.append(out.t("data.cli.unbalanced", limit=f"{IMBALANCE_WARN:g}"))
    lines += _issue_lines(report, out)
    out.emit(record, "\n".join(lines))
    return 0


def _issue_lines(report, out: Output, prefix: str = "") -> list[str]:
    """Problem files, notes and duplicate groups of a report, one per line."""
    lines = [out.t("data.cli.problems", n=len(report.problems))]
    lines += [f"  {prefix}{p.path}: {out.t('data.reason.' + p.kind)}" + (f" ({p.detail})" if p.detail else "")
              for p in report.problems]
    lines.append(out.t("data.cli.notes", n=len(report.notes)))
    lines += [f"  {prefix}{p.path}: {out.t('data.reason.' + p.kind)}" for p in report.notes]
    copies, conflicts = report.plain_duplicates(), report.label_conflicts()
    lines.append(out.t("data.cli.duplicates", n=len(copies)))
    lines += ["  " + " = ".join(prefix + path for path in group) for group in copies]
    lines.append(out.t("data.cli.conflicts", n=len(conflicts)))
    lines += ["  " + " = ".join(f"{prefix}{path} ({cls})" for path, cls in group) for group in conflicts]
    return lines


def _check_existing(existing, out: Output) -> int:
    from core.data.existing import import_command, inspect_existing, summary_params

    report = inspect_existing(existing)
    parts = list(report.reports)
    lines = [out.t("data.existing.summary", root=existing.source, **summary_params(report))]
    if existing.is_split():
        lines.append(out.t("data.existing.ready", path=existing.root))
    else:
        lines.append(out.t("data.existing.import_with", command=import_command(existing)))
    if existing.unlabeled:
        lines.append(out.t("data.existing.unlabeled", names=", ".join(existing.unlabeled)))
    display = report.display_of()
    rows = report.counts()
    lines.append(f"  {out.t('data.cli.class'):<32}" + "".join(f"{existing.given(p):>12}" for p in parts))
    for name in _natural(list(rows)):
        label = name if display.get(name, name) == name else f"{name} ({display[name]})"
        lines.append(f"  {label:<32}" + "".join(f"{rows[name][p]:>12}" for p in parts))
    for part, names in report.missing().items():
        lines.append(out.t("data.existing.missing", part=existing.given(part), names=", ".join(names)))
    for part, r in report.reports.items():
        lines.append(f"[{existing.given(part)}]")
        lines += ["  " + line for line in _issue_lines(r, out, prefix=f"{existing.given(part)}/")]
    lines.append(out.t("data.existing.leakage", n=len(report.leakage)))
    lines += ["  " + " = ".join(group) for group in report.leakage]
    out.emit(report.to_dict(), "\n".join(lines))
    return 0


def _check_cifar(cifar, out: Output) -> int:
    from core.data.cifar import import_command, summary

    record = summary(cifar)
    command = import_command(cifar)
    text = "\n".join([out.t("data.cifar.summary", **record), out.t("data.existing.import_with", command=command)])
    out.emit(record | {"command": command}, text)
    return 0


def _natural(names: list[str]) -> list[str]:
    from core.data.files import natural_order

    return [names[i] for i in natural_order(names)]


def _fraction_or_folder(value: str | None) -> tuple[float | None, str | None]:
    """`--val` / `--test` take a fraction (0.1) or a folder: a number is a fraction."""
    if value is None:
        return None, None
    try:
        return float(value), None
    except ValueError:
        return None, value


def split(args: argparse.Namespace, out: Output) -> int:
    from core.data.existing import find_existing, from_parts, pooled
    from core.data.scan import scan
    from core.data.split import split_dataset
    from core.workspace import Workspace, default_root

    runs_dir = Workspace(default_root()).runs  # runs made before splits carried markers; not created here
    val, val_dir = _fraction_or_folder(args.val)
    test, test_dir = _fraction_or_folder(args.test)
    if args.train:
        if args.src:
            raise UserError("data.cli.train_and_src", src=args.src)
        if test is not None:
            raise UserError("data.cli.kept_test_fraction")
        return _keep_as_given(from_parts(args.train, val_dir, test_dir), val, args, out, runs_dir)
    if args.src is None:
        raise UserError("data.cli.need_src")
    if val_dir or test_dir:
        raise UserError("data.cli.folders_need_train", value=val_dir or test_dir)
    existing = find_existing(args.src)
    if existing is not None and not args.resplit:
        if test is not None:
            raise UserError("data.cli.kept_test_fraction")
        return _keep_as_given(existing, val, args, out, runs_dir)
    report = pooled(existing) if existing is not None else scan(args.src)
    info = split_dataset(report.root, args.out, 0.2 if val is None else val, 0.2 if test is None else test,
                         args.seed, args.mode, args.force, report=report, small=args.small_classes.replace("-", "_"),
                         exclude=args.exclude, runs_dir=runs_dir)
    _print_split(info, report, args.out, out)
    return 0


def _keep_as_given(existing, hold_out: float | None, args: argparse.Namespace, out: Output, runs_dir) -> int:
    from core.data.existing import import_existing, inspect_existing

    report = inspect_existing(existing)
    info = import_existing(report, args.out, hold_out, args.seed, args.mode, args.force,
                           small=args.small_classes.replace("-", "_"), exclude=args.exclude, runs_dir=runs_dir)
    _print_split(info, report.reports["train"], args.out, out)
    return 0


def import_cifar(args: argparse.Namespace, out: Output) -> int:
    from core.data.cifar import import_cifar as run_import
    from core.workspace import Workspace, default_root

    info = run_import(args.src, args.out, args.val, args.seed, args.force, runs_dir=Workspace(default_root()).runs)
    _print_split(info, None, args.out, out)
    return 0


def _print_split(info: dict, report, target: str, out: Output) -> None:
    """The split's table (classes by part, in reading order), its notes and the files left out."""
    from core.data.split import SPLITS, left_out_note

    labels = {c: c if d == c else f"{c} ({d})" for c, d in zip(info["classes"], info["display_names"])}
    header = f"{out.t('data.cli.class'):<32}" + "".join(f"{out.t('data.split.' + s):>8}" for s in SPLITS)
    rows = [f"{labels[c]:<32}" + "".join(f"{info['counts'][c][s]:>8}" for s in SPLITS) for c in _natural(info["classes"])]
    totals = {s: sum(c[s] for c in info["counts"].values()) for s in SPLITS}
    rows.append(f"{out.t('data.cli.total'):<32}" + "".join(f"{totals[s]:>8}" for s in SPLITS))
    by_name = {c.name: c.label for c in report.classes} if report is not None else {}
    notes = []
    if info.get("kept_as_given"):
        notes.append(out.t("data.cli.kept_as_given", held_out=round(100 * info.get("held_out", 0))))
    for item in info["left_out"]:
        if report is not None and item["class"] in by_name:
            key, params = left_out_note(item, report)
        else:
            key, params = f"data.left_out.{item['reason']}", {"n": item["images"]}
        notes.append(out.t("data.cli.left_out", name=by_name.get(item["class"], item["class"]), reason=out.t(key, **params)))
    notes += [out.t("data.cli.train_only", name=by_name.get(name, name)) for name in info["train_only"]]
    if info.get("leakage"):
        notes.append(out.t("data.existing.leakage", n=len(info["leakage"])))
    skipped = [f"  {s['path']}: {out.t('data.reason.' + s['reason'])}" for s in info["skipped"]]
    text = "\n".join([out.t("data.cli.split_done", out=target, mode=info["mode"]), header, *rows, *notes,
                      out.t("data.cli.skipped", n=len(skipped)), *skipped])
    out.emit({"out": target, **info}, text)
