import streamlit as st

import ui

st.title(ui.t("nav.data"))
ui.coming("page.data.what")
