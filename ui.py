"""What every page shares: the user's language, the workspace, this session's split, showing user errors.

Pages stay thin: they lay out widgets and call `core`; this module is the only glue.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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


def option_label(pattern: str) -> Callable[[object], str]:
    """A format_func showing option `v` as the translation of `pattern.format(v)` ("x.act_{}"),
    in the language of this run (fixed now: the function may be called outside the script)."""
    now = lang()
    return lambda value: i18n.t(pattern.format(value), now)


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


def setting(name: str, default: object = None) -> object:
    """A page setting (a folder, a slider value): this session's own, else the last one set in
    this workspace by any session (its default for new tabs), else `default`.

    Kept outside widget keys: Streamlit drops a widget's state on pages that do not draw it, so
    a slider would reset after a visit to another page."""
    ws = workspace()
    mine = st.session_state.setdefault("settings", {}).setdefault(str(ws.root), {})
    if name in mine:
        return mine[name]
    return ws.state().get("settings", {}).get(name, default)


def set_setting(name: str, value: object, shared: bool = True) -> None:
    """Set this session's `name`; `shared` also makes it the workspace's default for new sessions."""
    ws = workspace()
    st.session_state.setdefault("settings", {}).setdefault(str(ws.root), {})[name] = value
    if shared:
        ws.remember(settings=ws.state().get("settings", {}) | {name: value})


def bind(widget_key: str, name: str, default: object, shared: bool = True) -> None:
    """Give the widget `widget_key` its remembered value before it is drawn (pair with
    `on_change=ui.keep, args=(widget_key, name)`)."""
    if widget_key not in st.session_state:
        st.session_state[widget_key] = setting(name, default)


def keep(widget_key: str, name: str, shared: bool = True) -> None:
    """on_change callback: remember the widget's new value as setting `name`."""
    set_setting(name, st.session_state[widget_key], shared)


def image_size() -> int:
    """The image size shared by the Model and Training pages for this session's split: the one
    the user set for it, else a default from the split's own image sizes."""
    split = current_split()
    chosen = setting("img_size")
    if isinstance(chosen, dict) and chosen.get("split") == split and isinstance(chosen.get("size"), int):
        return chosen["size"]
    return _suggested_size(split)


def set_image_size(size: int) -> None:
    """Remember `size` for this session's split (the Model and Training pages both read it)."""
    set_setting("img_size", {"split": current_split(), "size": int(size)})


@st.cache_data(show_spinner=False, max_entries=16)
def _suggested_size(split: str | None) -> int:
    from core.data.sizes import suggest_image_size

    return suggest_image_size(split)


# The Explain page's starting point, set by pages that open it (Compare): which runs to show
# side by side and, optionally, which image. st.session_state["explain_request"] holds
# {"runs": [run ids (folder names under the workspace's runs/); the first two are shown],
#  "image": absolute path of an image, or None, "id": a number that changes with each request}.
# It stays in the session (tests and a reloaded Explain page can read it); Explain applies each
# request once through take_explain_request(), which remembers the last id it handed out.
EXPLAIN_REQUEST = "explain_request"
EXPLAIN_REQUEST_TAKEN = "explain_request_taken"


def request_explain(runs: list[str], image: str | None = None) -> None:
    """Ask the Explain page to show `runs` and, when given, `image`; the caller then switches page."""
    number = st.session_state.get(EXPLAIN_REQUEST, {}).get("id", 0) + 1
    st.session_state[EXPLAIN_REQUEST] = {"runs": list(runs), "image": image, "id": number}


def take_explain_request() -> dict | None:
    """The request not yet applied ({"runs", "image", "id"}), once; None when there is none."""
    request = st.session_state.get(EXPLAIN_REQUEST)
    if not request or st.session_state.get(EXPLAIN_REQUEST_TAKEN) == request["id"]:
        return None
    st.session_state[EXPLAIN_REQUEST_TAKEN] = request["id"]
    return request


@st.cache_data(show_spinner=False, max_entries=512)
def thumbnail(path: str, side: int = 160, mtime_ns: int = 0):
    """A square thumbnail of one image, cached (pass the file's mtime to see a changed file); None
    for a file that cannot be read (the caller shows a note)."""
    from core.data.images import open_image, square_thumbnail

    try:
        return square_thumbnail(open_image(path), side)
    except UserError:
        return None


def prediction_grid(view, key: str, on_explain: Callable[[str], None] | None = None, columns: int = 6,
                    rows: int = 2) -> None:
    """The course's prediction grid for one run (a `core.runs.compare.RunView`): a seeded random
    batch of its test images, each captioned "predicted (true) · confidence", green when right
    and red when wrong; with `on_explain`, a button under each image hands it its path."""
    from core.runs.compare import prediction_sample

    st.caption(t("compare.grid_help"))
    seed = st.number_input(t("compare.grid_seed"), min_value=0, value=0, step=1, width=200, key=f"{key}_seed")
    cols = st.columns(columns)
    for k, row in enumerate(prediction_sample(view, count=columns * rows, seed=int(seed)).itertuples()):
        with cols[k % columns]:
            image = thumbnail(row.file)
            if image is None:
                st.caption(t("compare.missing_image", path=Path(row.file).name))
                continue
            st.image(image, width="stretch")
            colour = "green" if row.pred == row.true else "red"
            st.markdown(f":{colour}[{view.names[row.pred]} ({view.names[row.true]}) · {row.confidence:.1%}]")
            if on_explain is not None and st.button(t("compare.explain_image"), key=f"{key}_{k}", type="tertiary",
                                                    icon=":material/search:", help=t("compare.explain_image_help")):
                on_explain(str(row.file))


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def uploader_texts(key: str, kinds: str, limit_mb: int = 200) -> None:
    """Show the texts Streamlit draws inside the file uploader `key` (its "Upload" button and its
    "200MB per file • ZIP" line, English only) in the user's language: st.file_uploader has no
    setting for them, so a style scoped to that uploader replaces them. Call it beside the uploader."""
    button, limit = t("common.upload"), t("common.upload_limit", mb=limit_mb, kinds=kinds)
    scope = f".st-key-{key}"
    st.html(f"""<style>
{scope} [data-testid="stFileUploaderDropzone"] button p {{ font-size: 0; }}
{scope} [data-testid="stFileUploaderDropzone"] button p::after {{ content: {_css_string(button)}; font-size: 14px; }}
{scope} [data-testid="stFileUploaderDropzoneInstructions"] span {{ font-size: 0; }}
{scope} [data-testid="stFileUploaderDropzoneInstructions"] span::after {{ content: {_css_string(limit)}; font-size: 14px; }}
</style>""")


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
