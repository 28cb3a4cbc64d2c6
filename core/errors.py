"""Errors a user can cause and fix: shown as a translated message, never a traceback."""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (bad folder, broken image, wrong checkpoint...).

    It carries a translation key and its parameters rather than a finished sentence, so the
    page shows it in the user's language and the CLI in its own; `str()` is the English text.
    """

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params

    def message(self, lang: str = "en") -> str:
        from core.i18n import t

        return t(self.key, lang, **self.params)

    def __str__(self) -> str:
        return self.message("en")
