import streamlit as st

import ui

st.title(ui.t("nav.model"))
ui.coming("page.model.what")
