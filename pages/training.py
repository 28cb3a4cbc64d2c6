import streamlit as st

import ui

st.title(ui.t("nav.training"))
ui.coming("page.training.what")
