"""`recipes`: the training recipes (the course's lessons), with their key settings.

`train --recipe NAME` uses one (core/cli/train.py); `train --recipe NAME --print-config` shows
every setting it resolves to.
"""
from __future__ import annotations

import argparse
import textwrap
from typing import TYPE_CHECKING

from core.cli import Output
from core.i18n import cli_lang, t

if TYPE_CHECKING:
    from core.recipes import Recipe


def register(sub) -> None:
    lang = cli_lang()
    p = sub.add_parser("recipes", help=t("recipes.cli.help", lang))
    p.add_argument("--suggest", metavar="SPLIT", help=t("recipes.cli.suggest", lang))
    p.set_defaults(handler=list_recipes)


def reasons(recipe: Recipe, lang: str) -> list[str]:
    """A computed recipe's reasons, translated."""
    return [t(r["key"], lang, **r.get("params", {})) for r in recipe.reasons]


def suggest(split: str, out: Output) -> int:
    """The auto recipe for `split`: its settings, what they come to and why."""
    from pathlib import Path

    from core import recipes

    recipe = recipes.load("auto", Path(split).expanduser())
    why = reasons(recipe, out.lang)
    lines = [f"{recipe.name}  -  {recipe.title(out.lang)}", *(f"  {line}" for line in recipes.describe(recipe, out.lang)),
             "  " + out.t("recipes.cli.reasons")]
    for line in why:
        lines += textwrap.wrap(line, 100, initial_indent="  - ", subsequent_indent="    ")
    lines.append("  " + out.t("recipes.cli.use", name=recipe.name))
    out.emit({"name": recipe.name, "title": recipe.title(out.lang), "data": split, "settings": recipe.settings,
              "reasons": why, "reason_keys": list(recipe.reasons)}, "\n".join(lines))
    return 0


def list_recipes(args: argparse.Namespace, out: Output) -> int:
    from core import recipes
    from core.models import pretrained_available, weights_cache_path

    if getattr(args, "suggest", None):
        return suggest(args.suggest, out)
    rows, blocks = [], []
    for recipe in recipes.load_all():
        arch = recipe.weights()
        weights = None if arch is None else {"arch": arch, "available": pretrained_available(arch)}
        rows.append({"name": recipe.name, "title": recipe.title(out.lang), "settings": recipe.settings,
                     "split": recipe.split, "weights": weights, "notes": [out.t(k) for k in recipe.notes]})
        lines = [f"{recipe.name}  -  {recipe.title(out.lang)}", *(f"  {line}" for line in recipes.describe(recipe, out.lang))]
        if weights:
            key = "recipes.cli.weights_cached" if weights["available"] else "recipes.cli.weights_missing"
            lines.append("  " + out.t(key, name=arch, path=weights_cache_path(arch)))
        for key in recipe.notes:
            lines += textwrap.wrap(out.t(key), 100, initial_indent="  ", subsequent_indent="  ")
        lines.append("  " + out.t("recipes.cli.use", name=recipe.name))
        blocks.append("\n".join(lines))
    out.emit({"recipes": rows}, "\n\n".join(blocks))
    return 0
