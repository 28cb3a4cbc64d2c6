"""Compare: several finished runs side by side — curves, metrics, confusion, mistakes."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

import ui
from core import charts
from core.data.images import open_image
from core.errors import UserError
from core.runs import compare
from core.explain.render import display_copy

GALLERY_COLUMNS = 6


@st.cache_data(show_spinner=False, max_entries=64)
def cached_view(run_dir: str, stamp: float) -> compare.RunView:
    """A run's files read once per change (`stamp` is its summary's modification time)."""
    return compare.load_view(run_dir)


@st.cache_data(show_spinner=False, max_entries=512)
def thumbnail(path: str, side: int = 160):
    try:
        return display_copy(open_image(path), side)
    except UserError:
        return None


def stamp(run: Path) -> float:
    files = [run / name for name in ("summary.json", "predictions.csv", "metrics.jsonl")]
    return max((f.stat().st_mtime for f in files if f.exists()), default=0.0)


def selected_cell(event, key: str) -> tuple[int, int] | None:
    """(true, pred) of the confusion-matrix cell clicked in the chart `key`, if any."""
    points = (getattr(event, "selection", None) or {}).get("points", []) if event else []
    for point in points:
        data = point.get("customdata")
        if isinstance(data, (list, tuple)) and len(data) == 2:
            return int(data[0]), int(data[1])
    return None


def gallery(frame: pd.DataFrame, names: list[str], show_truth_colour: bool) -> None:
    """Test images with "predicted (true)" captions; green when right, red when wrong."""
    cols = st.columns(GALLERY_COLUMNS)
    for k, row in enumerate(frame.itertuples()):
        with cols[k % GALLERY_COLUMNS]:
            image = thumbnail(row.file)
            if image is None:
                st.caption(ui.t("compare.missing_image", path=Path(row.file).name))
                continue
            st.image(image)
            caption = f"{names[row.pred]} ({names[row.true]}) · {row.confidence:.0%}"
            if show_truth_colour:
                caption = f":{'green' if row.pred == row.true else 'red'}[{caption}]"
            st.markdown(caption)


ws = ui.workspace()
st.title(ui.t("nav.compare"))
st.caption(ui.t("compare.intro"))

runs = compare.comparable_runs(ws.runs)
if len(runs) < 2:
    st.info(ui.t("compare.need_two", count=len(runs)))
    st.stop()

views_by_id: dict[str, compare.RunView] = {}
for run in runs:
    try:
        views_by_id[run.name] = cached_view(str(run), stamp(run))
    except UserError as err:
        ui.show_error(err)
chosen = st.multiselect(
    ui.t("compare.pick"), options=list(views_by_id),
    default=[p.name for p in compare.default_selection(runs) if p.name in views_by_id],
    format_func=lambda rid: views_by_id[rid].label, key="compare_runs",
)
if len(chosen) < 2:
    st.info(ui.t("compare.pick_two"))
    st.stop()
views = [views_by_id[rid] for rid in chosen]
if len({v.dataset for v in views}) > 1:
    st.warning(ui.t("compare.different_data"))
if len({tuple(v.classes) for v in views}) > 1:
    st.warning(ui.t("compare.different_classes"))

# --- Metrics -------------------------------------------------------------------------------
st.header(ui.t("compare.metrics"))
table = compare.metrics_table(views)
shown = pd.DataFrame({
    ui.t("compare.col.run"): table["run"],
    ui.t("compare.col.model"): table["model"],
    ui.t("compare.col.params"): table["params"],
    ui.t("compare.col.flops"): table["flops"].map(lambda f: None if pd.isna(f) else f / 1e6),
    ui.t("compare.col.best_val_acc"): table["best_val_acc"],
    ui.t("compare.col.test_acc"): table["test_acc"],
    ui.t("compare.col.test_top5"): table["test_top5"],
    ui.t("compare.col.epochs"): table["epochs"],
    ui.t("compare.col.seconds"): table["seconds"],
    ui.t("compare.col.img_per_s"): table["img_per_s"],
})
percent = st.column_config.NumberColumn(format="percent")
st.dataframe(shown, hide_index=True, column_config={
    ui.t("compare.col.params"): st.column_config.NumberColumn(format="localized"),
    ui.t("compare.col.flops"): st.column_config.NumberColumn(format="%.1f"),
    ui.t("compare.col.best_val_acc"): percent, ui.t("compare.col.test_acc"): percent,
    ui.t("compare.col.test_top5"): percent,
    ui.t("compare.col.seconds"): st.column_config.NumberColumn(format="%.1f"),
    ui.t("compare.col.img_per_s"): st.column_config.NumberColumn(format="%.0f"),
})

# --- Curves --------------------------------------------------------------------------------
st.header(ui.t("compare.curves"))
series = {v.label: v.epochs for v in views}
left, right = st.columns(2)
train, val = ui.t("compare.train"), ui.t("compare.val")
left.plotly_chart(charts.run_curves(series, "loss", ui.t("compare.loss"), train, val))
right.plotly_chart(charts.run_curves(series, "acc", ui.t("compare.accuracy"), train, val))

# --- Confusion matrices --------------------------------------------------------------------
st.header(ui.t("compare.confusion"))
normalised = st.toggle(ui.t("compare.row_normalised"), key="compare_normalised")
st.caption(ui.t("compare.click_cell"))
clicked: dict[str, tuple[int, int]] = {}
for col, v in zip(st.columns(min(len(views), 3)) * ((len(views) + 2) // 3), views):
    with col:
        matrix = compare.confusion(v, normalise=normalised).tolist()
        fig = charts.confusion_matrix(matrix, v.names, v.label, ui.t("compare.true"), ui.t("compare.predicted"),
                                      percent=normalised)
        key = f"cm_{v.run_id}_{int(normalised)}"
        event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key=key)
        if (cell := selected_cell(event, key)) is not None:
            clicked[v.run_id] = cell

# --- Per-class scores and confused pairs ---------------------------------------------------
st.header(ui.t("compare.per_class"))
scores = {v.label: compare.per_class_scores(v) for v in views}
names = scores[views[0].label]["class"].tolist()
for tab, metric in zip(st.tabs([ui.t("compare.precision"), ui.t("compare.recall"), ui.t("compare.f1")]),
                       ("precision", "recall", "f1")):
    with tab:
        data = {label: frame[metric].tolist() for label, frame in scores.items()}
        st.plotly_chart(charts.grouped_bars(names, data, ui.t(f"compare.{metric}"), ui.t(f"compare.{metric}")),
                        width="stretch")

st.header(ui.t("compare.confused_pairs"))
for col, v in zip(st.columns(min(len(views), 3)) * ((len(views) + 2) // 3), views):
    with col:
        st.markdown(f"**{v.label}**")
        pairs = compare.most_confused(v)
        if pairs.empty:
            st.caption(ui.t("compare.no_mistakes"))
        else:
            st.dataframe(pd.DataFrame({
                ui.t("compare.true"): pairs["true"], ui.t("compare.predicted"): pairs["pred"],
                ui.t("compare.count"): pairs["count"], ui.t("compare.share"): pairs["share"],
            }), hide_index=True,
                column_config={ui.t("compare.share"): st.column_config.NumberColumn(format="percent")})

# --- Misclassified gallery -----------------------------------------------------------------
st.header(ui.t("compare.mistakes"))
by_label = {v.label: v for v in views}
clicked_run = next((v.label for v in views if v.run_id in clicked), views[0].label)
run_label = st.selectbox(ui.t("compare.gallery_run"), list(by_label), index=list(by_label).index(clicked_run))
view = by_label[run_label]
pairs = compare.most_confused(view, top=len(view.classes) ** 2)
pair_options = [None] + list(zip(pairs["true_index"], pairs["pred_index"]))
cell = clicked.get(view.run_id)
if cell is not None and cell not in pair_options:
    pair_options.append(cell)
pair = st.selectbox(
    ui.t("compare.pair"), pair_options, index=pair_options.index(cell) if cell in pair_options else 0,
    format_func=lambda p: ui.t("compare.all_pairs") if p is None else
    ui.t("compare.pair_label", pred=view.names[p[1]], true=view.names[p[0]]),
)
wrong = compare.misclassified(view, *(pair or (None, None)))
st.caption(ui.t("compare.mistake_count", count=len(wrong), total=len(view.predictions)))
if wrong.empty:
    st.info(ui.t("compare.no_mistakes"))
else:
    gallery(wrong.head(GALLERY_COLUMNS * 4), view.names, show_truth_colour=False)

# --- The course's prediction grid ----------------------------------------------------------
st.header(ui.t("compare.grid"))
st.caption(ui.t("compare.grid_help"))
seed = st.number_input(ui.t("compare.grid_seed"), min_value=0, value=0, step=1)
gallery(compare.prediction_sample(view, count=GALLERY_COLUMNS * 3, seed=int(seed)), view.names, show_truth_colour=True)
