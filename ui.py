"""What every page shares: the user's language, the workspace, this session's split, showing user errors.

Pages stay thin: they lay out widgets and call `core`; this module is the only glue.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import streamlit as st

from core import i18n
from core.errors import UserError
from core.workspace import Workspace


def lang() -> str:
    if "lang" not in st.session_state:
        st.session_state.lang = i18n.lang_from_accept_language(st.context.locale)
    return st.session_state.lang


def t(key: str, **params: object) -> str:
    return i18n.t(key, lang(), **params)


def workspace() -> Workspace:
    """The workspace chosen in the sidebar (or by CNN_STUDIO_WORKSPACE), created if missing."""
    root = st.session_state.get("workspace_root")
    return Workspace.open(root)


def current_split() -> str | None:
    """This browser session's split folder: the one it made last here. A session that has none
    yet takes the workspace's last one, so another tab splitting later never changes it."""
    ws = workspace()
    chosen = st.session_state.setdefault("current_splits", {})  # workspace root -> split
    if chosen.get(str(ws.root)) is None:
        chosen[str(ws.root)] = ws.state().get("current_split")
    return chosen[str(ws.root)]


def set_current_split(path: str | Path) -> None:
    """Make `path` this session's split, and the default for sessions that start later."""
    ws = workspace()
    st.session_state.setdefault("current_splits", {})[str(ws.root)] = str(path)
    ws.remember(current_split=str(path))


def show_error(err: UserError) -> None:
    st.error(err.message(lang()), icon="⚠️")


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a UserError raised inside the block into a message on the page."""
    try:
        yield
    except UserError as err:
        show_error(err)


def coming(what_key: str) -> None:
    """A page whose issue has not landed yet says what it will hold."""
    st.info(t("page.coming", what=t(what_key)), icon="🛠️")
