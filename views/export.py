"""Export: a run as an ONNX folder with a standalone predict.py, checked against the studio."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

import ui
from core.export import (
    default_out,
    export_run,
    figures,
    problems_text,
    read_export,
    zip_bytes,
)
from core.export.onnx import max_opset
from core.models import describe_ref
from core.runs import read_config, runs_with_weights


def run_label(run: Path) -> str:
    return f"{run.name} · {describe_ref(read_config(run).get('model', {}))}"


def show_export(folder: Path, record: dict) -> None:
    """The folder's last export: its figures, then the zip (only when it passed)."""
    st.caption(ui.t("export.page.last", created=record.get("created", "?"), opset=record.get("opset", "?")))
    st.caption(ui.t("export.page.folder", path=folder))
    parity = record.get("parity", {})
    head, rows = figures(parity, ui.lang())
    st.markdown(f"**{head}**")
    for col, (name, value, note) in zip(st.columns(len(rows)), rows):
        col.metric(name, value, help=note or None)
    if record.get("passed"):
        st.success(ui.t("export.page.passed"))
        st.download_button(ui.t("export.page.download"), data=lambda: zip_bytes(folder),
                           file_name=f"{record.get('run') or folder.name}-onnx.zip", mime="application/zip",
                           icon="📦", key="export_download")
    else:
        st.error(ui.t("export.check.failed", path=folder, problems=problems_text(parity, ui.lang())), icon="⚠️")
        st.caption(ui.t("export.page.no_download"))


ws = ui.workspace()
st.title(ui.t("nav.export"))
st.caption(ui.t("export.page.intro"))

runs = runs_with_weights(ws.runs)
if not runs:
    st.info(ui.t("export.page.no_runs"))
    st.stop()

run = st.selectbox(ui.t("export.page.run"), runs, format_func=run_label, key="export_run")
left, right = st.columns(2)
opset = left.number_input(ui.t("export.page.opset"), min_value=0, max_value=max_opset(), value=0, step=1,
                          key="export_opset")
dynamic = right.checkbox(ui.t("export.page.dynamic"), help=ui.t("export.page.dynamic_help"), key="export_dynamic")
folder = default_out(run)

if st.button(ui.t("export.page.button"), type="primary", key="export_go"):
    with ui.user_errors(), st.status(ui.t("export.page.working")) as status:
        export_run(run, folder, opset=int(opset) or None, dynamic_batch=dynamic,
                   on_step=lambda step: status.update(label=ui.t(f"export.page.step.{step}")))
        status.update(state="complete")

record = read_export(folder)
if record:
    show_export(folder, record)

with st.expander(ui.t("export.page.contents")):
    st.markdown(ui.t("export.page.contents_text", size=read_config(run).get("img_size", "S")))
