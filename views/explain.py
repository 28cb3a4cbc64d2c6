"""Explain: one photo, two runs side by side — prediction, top-k, CAM heatmap and overlay."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

import ui
from core import charts
from core.data.images import open_image
from core.errors import UserError
from core.data.labels import field_of
from core.data.split import split_images
from core.explain import METHOD_LABELS, METHODS, class_choices, explain, feature_layers, model_input, run_class
from core.explain.layers import default_layer
from core.explain.render import colorize, difference, display_copy, feature_maps, feature_maps_grid, filters_grid, overlay
from core.inference import load_model
from core.runs import checkpoint_stamp, read_config, runs_with_weights
from core.runs.compare import default_pair
from core.models import describe_ref

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"]
TOP_K = 5


@st.cache_resource(show_spinner=False, max_entries=6)
def cached_model(run_dir: str, stamp: float):
    """Model, info and feature-map layers of a run, loaded once per checkpoint (`stamp`)."""
    model, info = load_model(run_dir)
    layers = [layer.name for layer in feature_layers(model, int(field_of(info, "img_size")))]
    return model, info, layers


def run_label(run: Path) -> str:
    return f"{run.name} · {describe_ref(read_config(run).get('model', {}))}"


def load(run: Path):
    try:
        return cached_model(str(run), checkpoint_stamp(run))
    except UserError as err:
        ui.show_error(err)
        return None


ws = ui.workspace()
st.title(ui.t("nav.explain"))
st.caption(ui.t("explain.page.intro"))

runs = runs_with_weights(ws.runs)
if not runs:
    st.info(ui.t("explain.page.no_runs"))
    st.stop()

# --- 1. The photo --------------------------------------------------------------------------
SOURCES = ("upload", "camera", "test")
source = st.radio(ui.t("explain.page.source"), SOURCES, horizontal=True, key="explain_source",
                  format_func=lambda s: ui.t(f"explain.page.source_{s}"))
image, true_class, true_name, image_name = None, None, None, None
with ui.user_errors():
    if source == "upload":
        upload = st.file_uploader(ui.t("explain.page.upload"), type=UPLOAD_TYPES, key="explain_upload")
        if upload is not None:
            image, image_name = open_image(upload), upload.name
    elif source == "camera":
        shot = st.camera_input(ui.t("explain.page.camera"), key="explain_camera")
        if shot is not None:
            image, image_name = open_image(shot), ui.t("explain.page.source_camera")
    else:
        split = ui.current_split()
        pictures = split_images(split) if split else []
        if not pictures:
            st.info(ui.t("explain.page.no_test_split"))
        else:
            index = st.selectbox(ui.t("explain.page.test_image"), range(len(pictures)), key="explain_test_index",
                                 format_func=lambda i: f"{pictures[i][2]} / {pictures[i][0].name}")
            path, true_class, true_name = pictures[index]
            image, image_name = open_image(path), path.name
if image is None:
    st.info(ui.t("explain.page.pick_image"))
    st.stop()
shown = display_copy(image)
st.caption(ui.t("explain.page.image_facts", name=image_name, width=image.width, height=image.height)
           + (" · " + ui.t("explain.page.true_class", name=true_name) if true_class else ""))

# --- 2. Runs and shared controls -----------------------------------------------------------
pair = default_pair(runs)
run_ids = [r.name for r in runs]
by_id = {r.name: r for r in runs}
left, right = st.columns(2)
chosen = [
    left.selectbox(ui.t("explain.page.run_a"), run_ids, index=run_ids.index(pair[0].name), key="explain_run_a",
                   format_func=lambda rid: run_label(by_id[rid])),
    right.selectbox(ui.t("explain.page.run_b"), run_ids, index=run_ids.index(pair[-1].name), key="explain_run_b",
                    format_func=lambda rid: run_label(by_id[rid])),
]
loaded = [load(by_id[rid]) for rid in chosen]
usable = [x for x in loaded if x is not None]
if not usable:
    st.stop()

common_layers = [name for name in usable[0][2] if all(name in x[2] for x in usable)]
class_options = class_choices([x[1] for x in usable])  # by folder name: the runs may know different classes
c1, c2, c3, c4 = st.columns(4)
method = c1.selectbox(ui.t("explain.page.method"), list(METHODS), format_func=METHOD_LABELS.__getitem__,
                      key="explain_method")
layer = c2.selectbox(ui.t("explain.page.layer"), [""] + common_layers, key="explain_layer",
                     format_func=lambda n: n or ui.t("explain.page.default_layer"), help=ui.t("explain.page.layer_help"))
target = c3.selectbox(ui.t("explain.page.target"), [None] + list(class_options), key="explain_target",
                      format_func=lambda c: ui.t("explain.page.predicted_class") if c is None else class_options[c],
                      help=ui.t("explain.page.target_help"))
opacity = c4.slider(ui.t("explain.page.opacity"), 0.0, 1.0, 0.5, 0.05, key="explain_opacity")
if method == "scorecam":
    st.caption(ui.t("explain.page.scorecam_slow"))

# --- 3. Side by side: run A, run B, and where they differ ----------------------------------
results = []
panels = st.columns(3)
for col, rid, item in zip(panels, chosen, loaded):
    with col:
        st.subheader(run_label(by_id[rid]))
        if item is None:
            results.append(None)
            continue
        model, info, layers = item
        try:
            wanted = run_class(info, target, class_options.get(target))
            result = explain(model, info, image, method=method, layer=layer or None, target=wanted,
                             names=layers, cam_size=shown.size)
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
        for key, params in result.notes:
            st.warning(ui.t(key, **params))
        top = result.topk(TOP_K)
        st.plotly_chart(charts.topk_bars([n for n, _ in top], [p for _, p in top], ui.t("explain.page.topk", k=TOP_K),
                                         highlight=None if truth is None else result.names[truth]),
                        key=f"topk_{len(results)}")
        st.image(colorize(result.cam), caption=ui.t("explain.page.heatmap", layer=result.layer,
                                                    target=result.names[result.target]), width="stretch")
        st.image(overlay(shown, result.cam, opacity), caption=ui.t("explain.page.overlay"), width="stretch")
with panels[2]:
    st.subheader(ui.t("explain.page.difference"))
    if len(results) == 2 and all(r is not None for r in results):
        picture, mean_abs = difference(results[0].cam, results[1].cam)
        st.image(picture, caption=ui.t("explain.page.difference_help", a=chosen[0], b=chosen[1]), width="stretch")
        st.metric(ui.t("explain.page.mean_difference"), f"{mean_abs:.2f}")
        st.image(overlay(shown, results[0].cam, opacity), caption=chosen[0], width="stretch")
        st.image(overlay(shown, results[1].cam, opacity), caption=chosen[1], width="stretch")

# --- 4. Filters and feature maps -----------------------------------------------------------
st.header(ui.t("explain.page.filters_title"))
fm_run = st.selectbox(ui.t("explain.page.filters_run"), [rid for rid, x in zip(chosen, loaded) if x is not None],
                      format_func=lambda rid: run_label(by_id[rid]), key="explain_filters_run")
model, info, layers = loaded[chosen.index(fm_run)]
f_col, m_col = st.columns([1, 2])
with f_col:
    st.image(filters_grid(model), caption=ui.t("explain.page.filters"), width="stretch")
with m_col:
    fm_layer = st.selectbox(ui.t("explain.page.feature_layer"), layers, key="explain_feature_layer",
                            index=layers.index(default_layer(model, layers)))
    maps = feature_maps(model, model_input([image], info), fm_layer)
    st.image(feature_maps_grid(maps), width="stretch",
             caption=ui.t("explain.page.feature_maps", shown=min(32, maps.shape[0]), total=maps.shape[0],
                          h=maps.shape[1], w=maps.shape[2]))
