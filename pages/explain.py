import streamlit as st

import ui

st.title(ui.t("nav.explain"))
ui.coming("page.explain.what")
