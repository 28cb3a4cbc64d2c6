"""Explain: one photo, two runs side by side — prediction, top-k, CAM heatmap and overlay.

The photo controls sit in one row and the two runs' results right below them, so a chosen
photo's predictions show without scrolling on a laptop screen.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

import ui
from core import charts
from core.data.images import open_image, square_thumbnail
from core.data.labels import field_of
from core.errors import UserError
from core.explain import (
    METHOD_LABELS,
    METHODS,
    class_choices,
    explain,
    feature_layers,
    model_input,
    pictures,
    run_class,
)
from core.explain.layers import (
    COURSE,
    course_layer,
    default_layer,
    distinct,
    kept_layer,
    layer_label,
)
from core.explain.render import (
    colorbar,
    colorize,
    difference,
    difference_bar,
    display_copy,
    feature_maps,
    feature_maps_grid,
    filters_grid,
    overlay,
)
from core.inference import load_model
from core.models import describe_ref
from core.runs import checkpoint_stamp, display_name, read_config, runs_with_weights
from core.runs.compare import default_pair

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"]
TOP_K = 5
GRID_COLUMNS = 6
THUMB_SIDE = 96
SHORT_NAME = 26
ss = st.session_state


@st.cache_resource(show_spinner=False, max_entries=6)
def cached_model(run_dir: str, stamp: float):
    """Model, info and feature-map layers of a run, loaded once per checkpoint (`stamp`)."""
    model, info = load_model(run_dir)
    return model, info, feature_layers(model, int(field_of(info, "img_size")))


@st.cache_data(show_spinner=False, max_entries=8)
def cached_pictures(split: str, stamp: float) -> list[pictures.Picture]:
    return pictures.listed(split)


@st.cache_data(show_spinner=False, max_entries=16)
def cached_mistakes(run_dir: str, stamp: float) -> set[str] | None:
    return pictures.mistakes(run_dir)


def stamp(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


def run_names(run: Path) -> tuple[str, str]:
    """(short name for the picker, full name for its tooltip): the name the user gave it, else its
    model and the date in its folder id, else its folder id."""
    config = read_config(run)
    model = describe_ref(config.get("model", {}))
    name = display_name(run, config)
    rid = run.name
    if name == rid:
        digits = rid[4:15].replace("-", "")
        name = f"{digits[:2]}-{digits[2:4]} {digits[4:6]}:{digits[6:8]}" if len(digits) == 10 and digits.isdigit() else rid
        return f"{model} · {name}", f"{model} · {rid}"
    return f"{name} · {model}", f"{name} · {model} · {rid}"


def short(name: str, most: int = SHORT_NAME) -> str:
    """`name` cut to `most` characters (with "…"): a long run name would not fit its column."""
    return name if len(name) <= most else name[:most - 1].rstrip() + "…"


def load(run: Path):
    try:
        return cached_model(str(run), checkpoint_stamp(run))
    except UserError as err:
        ui.show_error(err)
        return None


def choose_picture(path: str) -> None:
    ss.explain_picture = path
    ss.explain_pick_open = False  # the grid folds away: the results come right below


ws = ui.workspace()
st.title(ui.t("nav.explain"), help=ui.t("explain.page.intro"))

runs = runs_with_weights(ws.runs)
if not runs:
    st.info(ui.t("explain.page.no_runs"))
    st.stop()
run_ids = [r.name for r in runs]
by_id = {r.name: r for r in runs}
names = {rid: run_names(by_id[rid]) for rid in run_ids}

# --- 0. Where the page starts: the default pair, this session's last choice, or a request -----
pair = default_pair(runs)
for key, run in (("explain_run_a", pair[0]), ("explain_run_b", pair[-1])):
    if ss.get(key) not in by_id:
        ss[key] = ui.setting(key) if ui.setting(key) in by_id else run.name
request = ui.take_explain_request()  # what Compare asked this page to show, once
if request:
    wanted = pictures.requested_runs(request.get("runs") or [], runs)
    if wanted:
        ss.explain_run_a = wanted[0].name
        others = [r.name for r in wanted[1:]] or [r.name for r in pair if r.name != wanted[0].name] or [wanted[0].name]
        ss.explain_run_b = others[0]
    if request.get("image"):
        ss.explain_source = "test"
        ss.explain_picture = str(request["image"])
        ss.explain_pick_class = ""
        ss.explain_pick_mistakes = False
        ss.explain_pick_goto = str(request["image"])
chosen = [ss.explain_run_a, ss.explain_run_b]

# --- 1. The photo: source, picker, and what was picked, in one row ---------------------------
SOURCES = ("upload", "camera", "test")
source_col, pick_col, shown_col = st.columns([2, 6, 2.5], vertical_alignment="top")
source = source_col.radio(ui.t("explain.page.source"), SOURCES, key="explain_source",
                          format_func=ui.option_label("explain.page.source_{}"))
image, picked, image_name = None, None, None
grid_slot = st.container()
with ui.user_errors():
    if source == "upload":
        with pick_col:
            upload = st.file_uploader(ui.t("explain.page.upload"), type=UPLOAD_TYPES, key="explain_upload",
                                      help=ui.t("explain.page.upload_help"))
            ui.uploader_texts("explain_upload", "JPG, PNG, WEBP")  # BMP and TIFF too: named in its help
        if upload is not None:
            image, image_name = open_image(upload), upload.name
    elif source == "camera":
        shot = pick_col.camera_input(ui.t("explain.page.camera"), key="explain_camera")
        if shot is not None:
            image, image_name = open_image(shot), ui.t("explain.page.source_camera")
    else:
        run_split = Path(str(read_config(by_id[chosen[0]]).get("data") or ""))
        split = str(run_split) if (run_split / "test").is_dir() else ui.current_split()
        everything = cached_pictures(split, stamp(Path(split) / "split.json")) if split else []
        if not everything:
            pick_col.info(ui.t("explain.page.no_test_split"))
        else:
            folders = list(dict.fromkeys(p.folder for p in everything))
            shown_names = {p.folder: p.name for p in everything}
            wrong = cached_mistakes(str(by_id[chosen[0]]), stamp(by_id[chosen[0]] / "predictions.csv"))
            filter_row = pick_col.container(horizontal=True, vertical_alignment="bottom")
            if ss.get("explain_pick_class") not in folders:
                ss.explain_pick_class = ""
            folder = filter_row.selectbox(ui.t("explain.page.pick_class"), ["", *folders], key="explain_pick_class",
                                          format_func=({"": ui.t("explain.page.all_classes")} | shown_names).get)
            only = filter_row.toggle(ui.t("explain.page.only_mistakes"), key="explain_pick_mistakes",
                                     disabled=wrong is None,
                                     help=ui.t("explain.page.only_mistakes_help" if wrong is not None
                                               else "explain.page.no_predictions", run=names[chosen[0]][0]))
            offered = pictures.filtered(everything, folder or None, wrong if only and wrong is not None else None)
            goto = ss.pop("explain_pick_goto", None)
            if goto and pictures.page_of(offered, goto):
                ss.explain_pick_page = pictures.page_of(offered, goto)
            page_count = pictures.pages(len(offered))
            if ss.get("explain_pick_page", 1) > page_count:
                ss.explain_pick_page = page_count
            current = ss.get("explain_picture")
            picked = pictures.find(everything, current) if current else None
            if picked is None and current and Path(current).is_file():
                picked = pictures.outside_image(current, shown_names)  # e.g. from Compare, another split
            if picked is None and offered:
                picked = offered[0]
            pick_col.caption(ui.t("explain.page.pick_count", count=len(offered), total=len(everything)))
            # Labels that never change: a widget whose label changes is a new one, and would fold or reset.
            with grid_slot.expander(ui.t("explain.page.pick_open"), key="explain_pick_open", on_change="rerun",
                                    icon=":material/photo_library:") as grid:
                if not offered:
                    st.info(ui.t("explain.page.pick_none"))
                elif grid.open:
                    pager = st.container(horizontal=True, vertical_alignment="bottom")
                    number = pager.number_input(ui.t("explain.page.pick_page"), 1, page_count,
                                                key="explain_pick_page", width=160)
                    pager.caption(ui.t("explain.page.pick_pages", pages=page_count))
                    cells = st.columns(GRID_COLUMNS, gap="small")
                    for k, item in enumerate(pictures.page(offered, number)):
                        with cells[k % GRID_COLUMNS]:
                            path = str(item.path)
                            thumb = ui.thumbnail(path, THUMB_SIDE, item.path.stat().st_mtime_ns if item.path.exists() else 0)
                            if thumb is None:
                                st.caption(ui.t("explain.page.unreadable"))
                            else:
                                st.image(thumb, width="stretch")
                            mine = picked is not None and pictures.find([item], picked.path) is not None
                            # its number in the list: a file name would not fit under a thumbnail
                            st.button(str((number - 1) * pictures.PAGE_SIZE + k + 1), key=f"explain_pick_{k}",
                                      on_click=choose_picture,
                                      args=(path,), type="primary" if mine else "secondary", width="stretch",
                                      help=f"{item.name} · {item.path.name}")
            if picked is not None:
                image, image_name = open_image(picked.path), picked.path.name
if image is None and source != "test":
    pick_col.info(ui.t("explain.page.pick_image"))
true_class = picked.folder if picked is not None and picked.folder else None
if image is not None:
    shown = display_copy(image)
    shown_col.image(square_thumbnail(shown, THUMB_SIDE * 2), width=THUMB_SIDE)
    facts = ui.t("explain.page.image_facts", name=image_name, width=image.width, height=image.height)
    shown_col.caption(facts + (" · " + ui.t("explain.page.true_class", name=picked.name) if true_class else ""))

# --- 2. What each run predicts --------------------------------------------------------------
# The CAM settings are drawn below the predictions (they change only the heatmaps) but read here,
# from this session's last choice, so that one pass per run gives both.
loaded = [load(by_id[rid]) for rid in chosen]
usable = [x for x in loaded if x is not None]
lang = ui.lang()
layer_options: dict[str, str] = {}
class_options: dict[str, str] = {}
if usable:
    menus = [distinct(x[2]) for x in usable]
    common = [x.name for x in menus[0] if all(any(y.name == x.name for y in menu) for menu in menus[1:])]
    courses = {course_layer(x[0], [y.name for y in x[2]]) for x in usable}
    first = {x.name: x for x in menus[0]}
    layer_options = {"": ui.t("explain.page.default_layer"),
                     COURSE: ui.t("explain.page.course_layer") if len(courses) > 1 else
                     ui.t("explain.page.course_layer_named", label=layer_label(kept_layer(usable[0][2], *courses), lang))}
    layer_options |= {name: layer_label(first[name], lang, course=courses == {name}) for name in common}
    class_options = class_choices([x[1] for x in usable])  # by folder name: the runs may know different classes
for key, options, default in (("explain_method", METHODS, "gradcam"), ("explain_layer", layer_options, ""),
                              ("explain_target", class_options, "")):
    if ss.get(key) not in options:
        ss[key] = default
ss.setdefault("explain_opacity", 0.5)
method, layer, target, opacity = ss.explain_method, ss.explain_layer, ss.explain_target, ss.explain_opacity

results: list = []
tops = st.columns(2)
for n, (col, key) in enumerate(zip(tops, ("explain_run_a", "explain_run_b"))):
    with col:
        st.selectbox(ui.t(f"explain.page.run_{'ab'[n]}"), run_ids, key=key, format_func=lambda r: short(names[r][0]),
                     help=names[ss[key]][1], on_change=ui.keep, args=(key, key, False))
        item = loaded[n]
        if item is None or image is None:
            results.append(None)
            continue
        model, info, layers = item
        try:
            wanted = run_class(info, target or None, class_options.get(target))
            result = explain(model, info, image, method=method, layer=layer or None, target=wanted,
                             names=[x.name for x in layers], cam_size=shown.size)
        except UserError as err:
            ui.show_error(err)
            results.append(None)
            continue
        results.append(result)
        classes = list(field_of(info, "classes"))
        truth = classes.index(true_class) if true_class in classes else None
        mark = "" if truth is None else " ✅" if result.pred == truth else " ❌"
        st.metric(ui.t("explain.page.prediction"), result.names[result.pred] + mark)
        st.progress(result.confidence, text=ui.t("explain.page.confidence", p=result.confidence))
        top = result.topk(TOP_K)
        figure = charts.topk_bars([name for name, _ in top], [p for _, p in top], ui.t("explain.page.topk", k=TOP_K),
                                  highlight=None if truth is None else result.names[truth])
        st.plotly_chart(figure.update_layout(height=40 + 28 * len(top), margin={"t": 30, "b": 10, "r": 24}),
                        key=f"topk_{n}", config={"displayModeBar": False})
if image is None or not usable:
    st.stop()

# --- 3. Where they look: the CAM settings, then heatmaps, overlays and their difference -------
st.subheader(ui.t("explain.page.where_title"))
c1, c2 = st.columns([3, 2])
raw = first.get(layer)
c2.selectbox(ui.t("explain.page.method"), list(METHODS), format_func=METHOD_LABELS.__getitem__, key="explain_method")
c1.selectbox(ui.t("explain.page.layer"), list(layer_options), key="explain_layer",
             format_func=layer_options.__getitem__,
             help=ui.t("explain.page.layer_help") + ("" if raw is None else "\n\n" + ui.t(
                 "explain.page.layer_raw", name=raw.name, same=", ".join(raw.same_as) or "-")))
c3, c4 = st.columns([3, 2])
c3.selectbox(ui.t("explain.page.target"), ["", *class_options], key="explain_target",
             format_func=({"": ui.t("explain.page.predicted_class")} | class_options).get,
             help=ui.t("explain.page.target_help"))
c4.slider(ui.t("explain.page.opacity"), 0.0, 1.0, step=0.05, key="explain_opacity")
if method == "scorecam":
    st.caption(ui.t("explain.page.scorecam_slow"))

panels = st.columns(3)
for n, (col, result, item) in enumerate(zip(panels, results, loaded)):
    with col:
        st.markdown(f"**{ui.t(f'explain.page.run_{chr(97 + n)}')}**", help=names[chosen[n]][1])
        if result is None:
            continue
        where = kept_layer(item[2], result.layer)
        where_label = layer_label(where, lang) if where else result.layer
        for note, params in result.notes:
            st.warning(ui.t(note, **(params | {"layer": where_label} if "layer" in params else params)))
        st.image(colorize(result.cam), caption=ui.t("explain.page.heatmap", layer=where_label,
                                                    target=result.names[result.target]), width="stretch")
        st.image(colorbar(), caption=ui.t("explain.page.colorbar"), width="stretch")
        st.image(overlay(shown, result.cam, opacity), caption=ui.t("explain.page.overlay"), width="stretch")
with panels[2]:
    st.markdown(f"**{ui.t('explain.page.difference')}**")
    if len(results) == 2 and all(r is not None for r in results):
        picture, mean_abs = difference(results[0].cam, results[1].cam)
        st.image(picture, width="stretch")
        st.image(difference_bar(), width="stretch",
                 caption=ui.t("explain.page.difference_help", a=short(names[chosen[0]][0]),
                              b=short(names[chosen[1]][0])))
        st.metric(ui.t("explain.page.mean_difference"), f"{mean_abs:.2f}",
                  help=ui.t("explain.page.mean_difference_help"))

# --- 4. Filters and feature maps -----------------------------------------------------------
st.header(ui.t("explain.page.filters_title"))
fm_run = st.selectbox(ui.t("explain.page.filters_run"), [rid for rid, x in zip(chosen, loaded) if x is not None],
                      format_func=lambda rid: names[rid][0], key="explain_filters_run")
model, info, layers = loaded[chosen.index(fm_run)]
menu = distinct(layers)
labels = {x.name: layer_label(x, ui.lang()) for x in menu}
f_col, m_col = st.columns([1, 2])
with f_col:
    st.image(filters_grid(model), caption=ui.t("explain.page.filters"), width="stretch")
with m_col:
    start = kept_layer(layers, default_layer(model, [x.name for x in layers]))
    fm_layer = st.selectbox(ui.t("explain.page.feature_layer"), list(labels), key="explain_feature_layer",
                            index=list(labels).index(start.name) if start else 0, format_func=labels.__getitem__)
    maps = feature_maps(model, model_input([image], info), fm_layer)
    st.image(feature_maps_grid(maps), width="stretch",
             caption=ui.t("explain.page.feature_maps", shown=min(32, maps.shape[0]), total=maps.shape[0],
                          h=maps.shape[1], w=maps.shape[2]))
