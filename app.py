"""CNN Studio: `streamlit run app.py`."""
from __future__ import annotations

import streamlit as st

import ui
from core import device, i18n
from core.training.jobs import registry
from core.workspace import Workspace, default_root

st.set_page_config(page_title="CNN Studio", page_icon="🧠", layout="wide")


def sidebar() -> None:
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
        split = ui.workspace().state().get("current_split")
        st.caption(f"{ui.t('sidebar.current_split')}: {split}" if split else ui.t("sidebar.no_split"))
        st.caption(f"{ui.t('sidebar.device')}: {device.describe(device.resolve('auto'), ui.lang())}")


ui.lang()
sidebar()
# Runs left `running` by an app that was closed or killed show as interrupted on every page.
registry().attach(ui.workspace().runs)
pages = [
    st.Page("views/data.py", title=ui.t("nav.data"), icon="🗂️", url_path="data", default=True),
    st.Page("views/model.py", title=ui.t("nav.model"), icon="🧱", url_path="model"),
    st.Page("views/training.py", title=ui.t("nav.training"), icon="📈", url_path="training"),
    st.Page("views/compare.py", title=ui.t("nav.compare"), icon="⚖️", url_path="compare"),
    st.Page("views/explain.py", title=ui.t("nav.explain"), icon="🔍", url_path="explain"),
]
st.navigation(pages).run()
