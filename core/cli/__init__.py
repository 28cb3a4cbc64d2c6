"""`python -m core ...`: every operation of the app, without a screen.

Each sub-command module exposes `register(subparsers)`, adding parsers whose `handler`
default is a function `(args, out) -> int`. Handlers print through `out` so that `--json`
turns every message into one JSON object per line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from core.errors import UserError
from core.i18n import cli_lang, t

COMMAND_MODULES = ("data", "models", "train", "recipes", "explain", "export")


class Output:
    """Prose for people, or one JSON object per line for programs."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.lang = cli_lang()

    def t(self, key: str, **params: Any) -> str:
        return t(key, self.lang, **params)

    def emit(self, record: dict[str, Any], text: str | None = None) -> None:
        """Print `record` as JSON, or `text` (if given) as prose."""
        if self.as_json:
            print(json.dumps(record, ensure_ascii=False, default=str), flush=True)
        elif text is not None:
            print(text, flush=True)

    def error(self, message: str, **record: Any) -> None:
        if self.as_json:
            print(json.dumps({"error": message, **record}, ensure_ascii=False), flush=True)
        else:
            print(f"{t('cli.error', self.lang)}: {message}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    from importlib import import_module

    parser = argparse.ArgumentParser(prog="python -m core", description=t("cli.description", cli_lang()))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        import_module(f"core.cli.{name}").register(sub)
    for command in sub.choices.values():
        command.add_argument("--json", action="store_true", help=t("cli.json_help", cli_lang()))
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except BrokenPipeError:
        # The reader stopped early (`... --json | head -1`): end quietly, as other tools do. Python
        # flushes stdout once more on the way out; pointed at devnull, that flush cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Output(args.json)
    try:
        return args.handler(args, out)
    except UserError as err:
        out.error(err.message(out.lang), key=err.key)
        return 2
    except KeyboardInterrupt:
        out.error(t("cli.interrupted", out.lang))
        return 130
