"""`export RUN`: the run as an ONNX folder with a standalone predict.py, and its parity check."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from core.cli import Output
from core.i18n import cli_lang, t

FORMATS = ("onnx",)  # core.export.FORMATS, named here so that --help does not import torch


def register(sub) -> None:
    lang = cli_lang()
    p = sub.add_parser("export", help=t("export.cli.help", lang))
    p.add_argument("run", metavar="RUN", help=t("export.cli.run_arg", lang))
    # Not argparse choices: a wrong value gets core's own translated message (and JSON with --json).
    p.add_argument("--format", default="onnx", help=t("export.cli.format_arg", lang, choices=", ".join(FORMATS)))
    p.add_argument("--out", metavar="DIR", help=t("export.cli.out_arg", lang))
    p.add_argument("--opset", type=int, default=None, metavar="N", help=t("export.cli.opset_arg", lang))
    p.add_argument("--dynamic-batch", action="store_true", help=t("export.cli.dynamic_arg", lang))
    p.add_argument("--check-only", action="store_true", help=t("export.cli.check_only_arg", lang))
    p.set_defaults(handler=export_command)


def figure_lines(parity: dict[str, Any], lang: str) -> list[str]:
    """The parity figures as aligned lines of prose."""
    from core.export import figures

    head, rows = figures(parity, lang)
    width = max(len(name) for name, _, _ in rows)
    return [head] + [f"  {name:<{width}}  {value:<10} {note}".rstrip() for name, value, note in rows]


def export_command(args: argparse.Namespace, out: Output) -> int:
    from core.export import export_run, problems_text, recheck
    from core.runs import find_run
    from core.workspace import Workspace

    run_dir = find_run(args.run, Workspace.open().runs)
    if args.check_only:
        result = recheck(run_dir, args.out)
        head = out.t("export.cli.rechecked", path=result.folder, run=run_dir.name)
    else:
        result = export_run(run_dir, args.out, args.format, args.opset, args.dynamic_batch)
        head = out.t("export.cli.exported", run=run_dir.name, path=result.folder, opset=result.record["opset"],
                     input=result.record["input"])
    parity = result.record["parity"]
    lines = [head, *figure_lines(parity, out.lang)]
    if result.passed:
        lines.append(out.t("export.cli.passed"))
    out.emit({"folder": str(result.folder), **result.record}, "\n".join(lines))
    if result.passed:
        return 0
    message = out.t("export.check.failed", path=result.folder, problems=problems_text(parity, out.lang))
    if not out.as_json and sys.stderr.isatty():
        message = f"\033[31m{message}\033[0m"
    out.error(message, key="export.check.failed", problems=parity["problems"])
    return 2
