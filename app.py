"""CNN Studio: `streamlit run app.py`."""
from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import ui
from core import device, i18n
from core.training.jobs import registry
from core.workspace import Workspace, default_root

st.set_page_config(page_title="CNN Studio", page_icon="🧠", layout="wide")


def sidebar() -> DeltaGenerator:
    """The sidebar; returns the slot for the current split, drawn again once the page has run."""
    with st.sidebar:
        st.selectbox(
            ui.t("sidebar.language"),
            i18n.LANGS,
            index=i18n.LANGS.index(ui.lang()),
            format_func=i18n.LANG_NAMES.__getitem__,
            key="lang",
        )
        root = st.text_input(
            ui.t("sidebar.workspace"),
            value=st.session_state.get("workspace_root") or str(default_root()),
            help=ui.t("sidebar.workspace_help"),
        )
        try:
            Workspace.open(root)
            st.session_state.workspace_root = root
        except OSError as err:
            st.error(ui.t("sidebar.workspace_bad", path=root, reason=err.strerror or err))
        split_slot = st.empty()
        show_split(split_slot)
        st.caption(f"{ui.t('sidebar.device')}: {device.describe(device.resolve('auto'), ui.lang())}")
    return split_slot


def show_split(slot: DeltaGenerator) -> None:
    split = ui.current_split()
    slot.caption(f"{ui.t('sidebar.current_split')}: {split}" if split else ui.t("sidebar.no_split"))


ui.lang()
split_slot = sidebar()
# Runs left `running` by an app that was closed or killed show as interrupted on every page.
registry().attach(ui.workspace().runs)
# Streamlit serves the default page at the root whatever its url_path, so a typed or bookmarked
# /data would find no page: a hidden page there sends the browser on to the Data page.
data_page = st.Page("views/data.py", title=ui.t("nav.data"), icon="🗂️", url_path="home", default=True)
pages = [
    data_page,
    st.Page("views/model.py", title=ui.t("nav.model"), icon="🧱", url_path="model"),
    st.Page("views/training.py", title=ui.t("nav.training"), icon="📈", url_path="training"),
    st.Page("views/compare.py", title=ui.t("nav.compare"), icon="⚖️", url_path="compare"),
    st.Page("views/explain.py", title=ui.t("nav.explain"), icon="🔍", url_path="explain"),
    st.Page("views/export.py", title=ui.t("nav.export"), icon="📦", url_path="export"),
    st.Page(lambda: st.switch_page(data_page), title=ui.t("nav.data"), url_path="data", visibility="hidden"),
]
try:
    st.navigation(pages).run()
finally:
    show_split(split_slot)  # the page may have just made a split (st.stop() ends a page early)

