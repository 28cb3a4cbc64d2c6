"""Compare: several finished runs side by side — curves, metrics, confusion, mistakes."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

import ui
from core import charts
from core import runs as run_folders
from core.errors import UserError
from core.runs import advice, compare

GALLERY_COLUMNS = 6
CELL_IMAGES = 12  # images of a clicked cell shown right under the matrices
PCT = ".1%"  # every percentage on the page: one decimal
ss = st.session_state


@st.cache_data(show_spinner=False, max_entries=64)
def cached_view(run_dir: str, stamp: float) -> compare.RunView:
    """A run's files read once per change (`stamp`: the newest modification time of its files)."""
    return compare.load_view(run_dir)


def stamp(run: Path) -> float:
    files = [run / name for name in ("summary.json", "predictions.csv", "metrics.jsonl")]
    return max((f.stat().st_mtime for f in files if f.exists()), default=0.0)


def pct(value) -> str:
    return "–" if value is None or pd.isna(value) else format(value, PCT)


def selected_cell(event) -> tuple[int, int] | None:
    """(true, pred) of the confusion-matrix cell a chart's selection event points at, if any."""
    points = (getattr(event, "selection", None) or {}).get("points", []) if event else []
    for point in points:
        data = point.get("customdata")
        if isinstance(data, (list, tuple)) and len(data) == 2:
            return int(data[0]), int(data[1])
    return None


def picker_label(view: compare.RunView) -> str:
    """Name, model (when the name is not already the model) and folder id: tells any two runs apart."""
    parts = [view.name] + ([view.model_label] if view.model_label != view.name else []) + [view.run_id]
    return " · ".join(parts)


def explain(run_ids: list[str], image: str | None = None) -> None:
    """Open the Explain page on these runs (and image): see ui.request_explain."""
    ui.request_explain(run_ids, image)
    st.switch_page("views/explain.py")


def gallery(frame: pd.DataFrame, view: compare.RunView, key: str, truth_colour: bool) -> None:
    """Test images with "predicted (true) · confidence" captions (green when right, red when
    wrong when `truth_colour`), each with a button that opens it in Explain."""
    cols = st.columns(GALLERY_COLUMNS)
    others = [rid for rid in chosen if rid != view.run_id]
    for k, row in enumerate(frame.itertuples()):
        with cols[k % GALLERY_COLUMNS]:
            image = ui.thumbnail(row.file)
            if image is None:
                st.caption(ui.t("compare.missing_image", path=Path(row.file).name))
                continue
            st.image(image, width="stretch")
            caption = f"{view.names[row.pred]} ({view.names[row.true]}) · {pct(row.confidence)}"
            if truth_colour:
                caption = f":{'green' if row.pred == row.true else 'red'}[{caption}]"
            st.markdown(caption)
            if st.button(ui.t("compare.explain_image"), key=f"{key}_{k}", icon=":material/search:",
                         help=ui.t("compare.explain_image_help"), type="tertiary"):
                explain([view.run_id, *others], str(row.file))


def run_manager() -> None:
    """Rename or delete a run (any status; a running or queued run cannot be deleted)."""
    with st.expander(ui.t("compare.manage"), icon=":material/edit:"):
        every = run_folders.list_runs(ws.runs)
        if not every:
            st.caption(ui.t("compare.manage_none"))
            return
        by_id = {r.id: r for r in every}
        rid = st.selectbox(ui.t("compare.manage_run"), list(by_id), key="manage_run",
                           format_func=lambda r: f"{by_id[r].name} · {by_id[r].model} · {r}")
        row = st.container(horizontal=True, vertical_alignment="bottom", gap="small")
        new_name = row.text_input(ui.t("compare.new_name"), value=by_id[rid].name, key=f"manage_name_{rid}",
                                  max_chars=run_folders.folder.NAME_MAX, width=320)
        if row.button(ui.t("compare.rename"), key="manage_rename", icon=":material/edit:"):
            with ui.user_errors():
                shown = run_folders.rename_run(by_id[rid].path, new_name)
                ss.compare_flash = ui.t("compare.renamed", name=shown)
                cached_view.clear()
                st.rerun()
        if row.button(ui.t("compare.delete"), key="manage_delete", icon=":material/delete:"):
            ss.compare_confirm_delete = rid
        if ss.get("compare_confirm_delete") == rid:
            if by_id[rid].status in run_folders.folder.BUSY:
                st.error(ui.t(f"runs.delete_{by_id[rid].status}", run=by_id[rid].name))
                ss.pop("compare_confirm_delete")
                return
            st.warning(ui.t("compare.delete_ask", name=by_id[rid].name, run=rid))
            yes, no = st.columns(2)
            if yes.button(ui.t("compare.delete_yes"), key="manage_delete_yes", type="primary"):
                ss.pop("compare_confirm_delete", None)
                with ui.user_errors():
                    run_folders.delete_run(by_id[rid].path)
                    ss.compare_flash = ui.t("compare.deleted", name=by_id[rid].name)
                    ss.pop("manage_run", None)
                    st.rerun()
            if no.button(ui.t("compare.delete_no"), key="manage_delete_no"):
                ss.pop("compare_confirm_delete", None)
                st.rerun()


ws = ui.workspace()
st.title(ui.t("nav.compare"))
st.caption(ui.t("compare.intro"))
if flash := ss.pop("compare_flash", None):
    st.success(flash)
run_manager()

runs = compare.comparable_runs(ws.runs)
if not runs:
    st.info(ui.t("compare.need_one"))
    st.stop()

views_by_id: dict[str, compare.RunView] = {}
for run in runs:
    try:
        views_by_id[run.name] = cached_view(str(run), stamp(run))
    except UserError as err:
        ui.show_error(err)
# The choice is this session's (kept across pages: Streamlit forgets a widget's value on a page
# that does not draw it); runs deleted since are dropped from it.
remembered = ui.setting("compare_runs")
ss.compare_runs = ([rid for rid in remembered if rid in views_by_id] if remembered is not None
                   else [p.name for p in compare.default_selection(runs) if p.name in views_by_id])
picker = st.container(horizontal=True, vertical_alignment="bottom", gap="small")
chosen = picker.multiselect(
    ui.t("compare.pick"), options=list(views_by_id), key="compare_runs",
    format_func=lambda rid: picker_label(views_by_id[rid]),
    on_change=lambda: ui.set_setting("compare_runs", ss.compare_runs, shared=False), placeholder=ui.t("common.choose"),
)
if picker.button(ui.t("compare.explain_runs"), key="compare_explain", icon=":material/search:",
                 disabled=not chosen, help=ui.t("compare.explain_runs_help")):
    explain(chosen)
if not chosen:
    st.info(ui.t("compare.pick_one"))
    st.stop()
if len(chosen) == 1:  # one run: its own figures and the course's prediction grid
    st.caption(ui.t("compare.one_run"))
views = [views_by_id[rid] for rid in chosen]
names = compare.short_names(views)  # run id -> legend name
colors = charts.run_colors([names[v.run_id] for v in views])  # one colour per run on every chart
if len({v.dataset for v in views}) > 1:
    st.warning(ui.t("compare.different_data"))
if len({tuple(v.classes) for v in views}) > 1:
    st.warning(ui.t("compare.different_classes"))
for v in views:  # a model that mostly answers one class: said per run, with what to try
    if found := advice.run_advice(v):
        st.warning(f"**{names[v.run_id]}** · " + "\n\n".join(ui.t(a.key, **a.params) for a in found), icon="⚠️")

# --- Metrics -------------------------------------------------------------------------------
st.header(ui.t("compare.metrics"))
ui.bind("compare_target", "compare_target", round(100 * compare.DEFAULT_TARGET))
target = st.number_input(ui.t("compare.target"), min_value=1, max_value=100, step=1, key="compare_target",
                         help=ui.t("compare.target_help"), width=220,
                         on_change=ui.keep, args=("compare_target", "compare_target", False))
table = compare.metrics_table(views, target / 100)
# What a run achieved and how soon first (in view at 1,024 px), then what it is made of.
shown = pd.DataFrame({
    ui.t("compare.col.name"): [names[rid] for rid in table["run"]],
    ui.t("compare.col.model"): table["model"],
    ui.t("compare.col.best_val_acc"): 100 * table["best_val_acc"].astype(float),
    ui.t("compare.col.test_acc"): 100 * table["test_acc"].astype(float),
    ui.t("compare.col.test_top5"): 100 * table["test_top5"].astype(float),
    ui.t("compare.col.time_to_best"): table["time_to_best"],
    ui.t("compare.col.time_to_target", target=target): [  # said in words when never reached
        ui.t("compare.not_reached") if pd.isna(epoch) else None if pd.isna(seconds) else f"{seconds:.1f}"
        for seconds, epoch in zip(table["time_to_target"], table["target_epoch"])],
    ui.t("compare.col.seconds"): table["seconds"],
    ui.t("compare.col.epochs"): table["epochs"],
    ui.t("compare.col.img_per_s"): table["img_per_s"],
    ui.t("compare.col.params"): table["params"],
    ui.t("compare.col.flops"): table["flops"].map(lambda f: None if pd.isna(f) else f / 1e6),
    ui.t("compare.col.run"): table["run"],  # the folder id last: the least read, first to scroll away
})
shown = shown.dropna(axis="columns", how="all")  # e.g. no top-5 accuracy with 5 classes or fewer
percent = st.column_config.NumberColumn(format="%.1f%%")  # as pct() writes them: one decimal
st.dataframe(shown, hide_index=True, column_config={
    ui.t("compare.col.name"): st.column_config.TextColumn(pinned=True),  # stays while the table scrolls
    ui.t("compare.col.best_val_acc"): percent, ui.t("compare.col.test_acc"): percent,
    ui.t("compare.col.test_top5"): percent,
    ui.t("compare.col.params"): st.column_config.NumberColumn(format="localized"),
    ui.t("compare.col.flops"): st.column_config.NumberColumn(format="%.1f"),
    ui.t("compare.col.seconds"): st.column_config.NumberColumn(format="%.1f", help=ui.t("compare.seconds_help")),
    ui.t("compare.col.time_to_best"): st.column_config.NumberColumn(format="%.1f",
                                                                    help=ui.t("compare.time_to_best_help")),
    ui.t("compare.col.time_to_target", target=target): st.column_config.TextColumn(
        help=ui.t("compare.time_to_target_help", target=target), alignment="right"),
    ui.t("compare.col.img_per_s"): st.column_config.NumberColumn(format="%.0f"),
})

# --- Curves --------------------------------------------------------------------------------
st.header(ui.t("compare.curves"))
ui.bind("compare_x", "compare_x", "epoch")
axis = st.segmented_control(ui.t("compare.x_axis"), ("epoch", "time"), required=True, key="compare_x",
                            format_func=ui.option_label("compare.x_axis.{}"), help=ui.t("compare.time_help"),
                            on_change=ui.keep, args=("compare_x", "compare_x", False))
series = {names[v.run_id]: compare.timeline(v.epochs) for v in views}
x_axis = {"x_label": ui.t("compare.epoch")}
if axis == "time":
    unit, size = compare.time_unit(max((e["elapsed"] for t in series.values() for e in t
                                        if e["elapsed"] is not None), default=None))
    x_axis = {"x_label": ui.t(f"compare.time_axis.{unit}"), "x": "elapsed", "x_scale": size}
    if untimed := [name for name, t in series.items() if any(e["elapsed"] is None for e in t)]:
        st.caption(ui.t("compare.no_time", runs=", ".join(untimed)))
left, right = st.columns(2)
train, val = ui.t("compare.train"), ui.t("compare.val")
left.plotly_chart(charts.run_curves(series, "loss", ui.t("compare.loss"), train, val, colors=colors, **x_axis))
right.plotly_chart(charts.run_curves(series, "acc", ui.t("compare.accuracy"), train, val, colors=colors, percent=True,
                                     **x_axis))

# --- Confusion matrices, and the images of a clicked cell right below them ---------------------
st.header(ui.t("compare.confusion"))
normalised = st.toggle(ui.t("compare.row_normalised"), key="compare_normalised")
st.caption(ui.t("compare.click_cell_below"))
cells = ss.setdefault("compare_cells", {})  # run id -> (true, pred) last clicked: kept while it is shown
seen = ss.setdefault("compare_cell_events", {})  # chart key -> the cell its event named last
for col, v in zip(st.columns(min(len(views), 3)) * ((len(views) + 2) // 3), views):
    key = f"cm_{v.run_id}_{int(normalised)}"
    event_cell = selected_cell(ss.get(key))
    if event_cell is not None and event_cell != seen.get(key):  # a new click on this chart
        cells[v.run_id] = event_cell
    seen[key] = event_cell
    with col:
        matrix = compare.confusion(v, normalise=normalised).tolist()
        fig = charts.confusion_matrix(matrix, v.names, names[v.run_id], ui.t("compare.true"), ui.t("compare.predicted"),
                                      percent=normalised, selected=cells.get(v.run_id), number_format=PCT)
        st.plotly_chart(fig, on_select="rerun", selection_mode="points", key=key)
for v in views:
    cell = cells.get(v.run_id)
    if cell is None or not all(0 <= k < len(v.names) for k in cell):
        continue
    true, pred = cell
    images = compare.ranked(v.predictions[(v.predictions["true"] == true) & (v.predictions["pred"] == pred)], "confident")
    with st.container(border=True, key=f"cell_{v.run_id}"):
        head = st.container(horizontal=True, vertical_alignment="center")
        head.markdown(ui.t("compare.cell_title", run=names[v.run_id], pred=v.names[pred], true=v.names[true],
                           count=len(images)), width="stretch")
        if head.button(ui.t("compare.cell_clear"), key=f"clear_cell_{v.run_id}", icon=":material/close:",
                       type="tertiary"):
            cells.pop(v.run_id, None)
            st.rerun()
        if images.empty:
            st.caption(ui.t("compare.cell_empty"))
        else:
            gallery(images.head(CELL_IMAGES), v, f"cell_explain_{v.run_id}", truth_colour=True)

# --- Per-class scores and confused pairs ---------------------------------------------------
st.header(ui.t("compare.per_class"))
scores = {names[v.run_id]: compare.per_class_scores(v) for v in views}
classes = scores[names[views[0].run_id]]["class"].tolist()
for tab, metric in zip(st.tabs([ui.t("compare.precision"), ui.t("compare.recall"), ui.t("compare.f1")]),
                       ("precision", "recall", "f1")):
    with tab:
        data = {label: frame[metric].tolist() for label, frame in scores.items()}
        st.plotly_chart(charts.grouped_bars(classes, data, ui.t(f"compare.{metric}"), ui.t(f"compare.{metric}"),
                                            colors, percent=True), width="stretch")

st.header(ui.t("compare.confused_pairs"))
for col, v in zip(st.columns(min(len(views), 3)) * ((len(views) + 2) // 3), views):
    with col:
        st.markdown(f"**{names[v.run_id]}**")
        pairs = compare.most_confused(v)
        if pairs.empty:
            st.caption(ui.t("compare.no_mistakes"))
        else:
            st.dataframe(pd.DataFrame({  # three narrow columns: two runs side by side fit a laptop
                ui.t("compare.taken_for"): [ui.t("compare.true_as_pred", true=t, pred=p)
                                            for t, p in zip(pairs["true"], pairs["pred"])],
                ui.t("compare.count"): pairs["count"], ui.t("compare.share_short"): 100 * pairs["share"],
            }), hide_index=True, column_config={
                ui.t("compare.share_short"): st.column_config.NumberColumn(format="%.1f%%", help=ui.t("compare.share"))})

# --- Images to look at: top losses, or mistakes by confidence ------------------------------
st.header(ui.t("compare.look_at"))
by_id = {v.run_id: v for v in views}
clicked_run = next((v.run_id for v in views if v.run_id in cells), views[0].run_id)
row = st.columns(3)
run_id = row[0].selectbox(ui.t("compare.gallery_run"), list(by_id), index=list(by_id).index(clicked_run),
                          format_func=names.__getitem__, key="compare_gallery_run")
view = by_id[run_id]
order_labels = {o: ui.t(f"compare.order.{o}") for o in compare.ORDERS}
order = row[1].selectbox(ui.t("compare.order"), compare.ORDERS, format_func=order_labels.__getitem__,
                         key="compare_order", help=ui.t("compare.order_help"))
pairs = compare.most_confused(view, top=len(view.classes) ** 2)
pair_options = [None] + list(zip(pairs["true_index"], pairs["pred_index"]))
pair_labels = {p: ui.t("compare.all_pairs") if p is None else
               ui.t("compare.pair_label", pred=view.names[p[1]], true=view.names[p[0]]) for p in pair_options}
pair = row[2].selectbox(ui.t("compare.pair"), pair_options, format_func=pair_labels.__getitem__,
                        key=f"compare_pair_{run_id}")
if order == "top_losses" and pair is None:
    picked = compare.top_losses(view)
    st.caption(ui.t("compare.top_losses_count", total=len(view.predictions),
                    wrong=int((view.predictions["true"] != view.predictions["pred"]).sum())))
else:
    picked = compare.misclassified(view, *(pair or (None, None)), order=order)
    st.caption(ui.t("compare.mistake_count", count=len(picked), total=len(view.predictions)))
if picked.empty:
    st.info(ui.t("compare.no_mistakes"))
else:
    gallery(picked.head(GALLERY_COLUMNS * 3), view, "gallery_explain", truth_colour=order == "top_losses")

# --- The course's prediction grid ----------------------------------------------------------
st.header(ui.t("compare.grid"))
ui.prediction_grid(view, "grid_explain", lambda image: explain([view.run_id, *(r for r in chosen if r != view.run_id)], image),
                   columns=GALLERY_COLUMNS)
