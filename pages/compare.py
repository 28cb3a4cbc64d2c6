import streamlit as st

import ui

st.title(ui.t("nav.compare"))
ui.coming("page.compare.what")
