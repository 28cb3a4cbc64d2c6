"""The translation table: every user-facing string, in Chinese and English.

The table lives in `assets/i18n/*.json`, one file per part of the app, each mapping a key to
`{"en": ..., "zh": ...}`. Keeping both languages of a key side by side makes a missing
translation visible in review and lets each part of the app own its own file.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

LANGS = ("zh", "en")
LANG_NAMES = {"zh": "中文", "en": "English"}
TABLE_DIR = Path(__file__).resolve().parent.parent / "assets" / "i18n"


@lru_cache(maxsize=1)
def table() -> dict[str, dict[str, str]]:
    merged: dict[str, dict[str, str]] = {}
    for path in sorted(TABLE_DIR.glob("*.json")):
        part = json.loads(path.read_text(encoding="utf-8"))
        clash = merged.keys() & part.keys()
        if clash:
            raise ValueError(f"{path.name} redefines keys: {sorted(clash)}")
        merged.update(part)
    return merged


def t(key: str, lang: str = "en", **params: object) -> str:
    """The text for `key` in `lang`, formatted with `params`.

    An unknown key comes back as the key itself, so a missing entry is visible on screen
    (and caught by the tests) instead of crashing a page.
    """
    entry = table().get(key)
    if entry is None:
        return key
    text = entry.get(lang) or entry["en"]
    return text.format(**params) if params else text


def cli_lang() -> str:
    """The CLI's language: `CNN_STUDIO_LANG` if set to a known language, else English."""
    lang = os.environ.get("CNN_STUDIO_LANG", "en")
    return lang if lang in LANGS else "en"


def lang_from_accept_language(header: str | None) -> str:
    """Chinese when the browser asks for it first among our languages, else English."""
    for part in (header or "").split(","):
        code = part.split(";")[0].strip().lower()
        if code.startswith("zh"):
            return "zh"
        if code.startswith("en"):
            return "en"
    return "en"
