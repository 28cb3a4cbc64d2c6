"""Model page: pick a preset, stack conv blocks, or set up transfer learning; see the network."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

import ui
from core import models
from core.data.split import read_split_info
from core.errors import UserError

MODES = ("preset", "builder", "transfer")
KERNELS = (1, 3, 5, 7)
ACTS = ("relu", "leaky_relu", "gelu", "silu", "none")
POLICIES = ("all", "head", "last:1", "last:2", "last:3")
ss = st.session_state


# --- builder state: a list of block dicts, each with an "id" that keys its widgets ----------

def new_block(**fields) -> dict:
    # The counter lives in the session: this script reruns on every click, and an id that is
    # ever reused gives two blocks the same widget keys after a remove.
    ss.next_block_id = ss.get("next_block_id", 0) + 1
    return {"id": f"b{ss.next_block_id}"} | models.BLOCK_DEFAULTS | fields


def set_builder(spec: dict) -> None:
    spec = models.normalize_spec(spec)
    for key in [k for k in ss if str(k).startswith(("blk_", "head_"))]:
        del ss[key]  # fresh widgets for the loaded blocks
    ss.blocks = [new_block(**b) for b in spec["blocks"]]
    ss.head = spec["head"]


def add_block() -> None:
    last = ss.blocks[-1] if ss.blocks else {"out": 16}
    ss.blocks.append(new_block(out=min(4096, last["out"] * 2), bn=True, pool="max"))


def remove_block(i: int) -> None:
    ss.blocks.pop(i)


def move_block(i: int, step: int) -> None:
    j = i + step
    if 0 <= j < len(ss.blocks):
        ss.blocks[i], ss.blocks[j] = ss.blocks[j], ss.blocks[i]


def load_saved(name: str) -> None:
    try:
        ref = models.load_spec(ui.workspace().models, name)
    except UserError as err:
        ss.model_flash = ("error", err.message(ui.lang()))
        return
    if "spec" in ref:
        set_builder(ref["spec"])
        ss.model_mode = "builder"
    elif "backbone" in ref:
        ss.model_mode, ss.tl_backbone = "transfer", ref["backbone"]
        ss.tl_pretrained, ss.tl_weights = bool(ref.get("pretrained")), ref.get("weights_path") or ""
    else:
        ss.model_mode, ss.preset = "preset", ref["preset"]
        ss.tl_pretrained, ss.tl_weights = bool(ref.get("pretrained")), ref.get("weights_path") or ""
    ss.freeze_policy = ref.get("freeze") if ref.get("freeze") in POLICIES else "all"
    ss.save_name = name
    ss.model_flash = ("success", ui.t("models.page.loaded", name=name))


def block_editor(i: int, block: dict) -> None:
    """One block's widgets; their values are written back into `block`.

    Two rows of five fields, and the move/remove buttons beside the block's title with their
    words (not bare arrows): everything stays readable in the narrow main column of a laptop."""
    k = f"blk_{block['id']}_"
    with st.container(border=True, key=f"block_{block['id']}"):
        title = st.container(horizontal=True, vertical_alignment="center", gap="small")
        title.markdown(f"**{ui.t('models.page.block', n=i + 1)}**", width="stretch")
        title.button(ui.t("models.page.up"), key=k + "up", on_click=move_block, args=(i, -1), disabled=i == 0,
                     icon=":material/arrow_upward:", help=ui.t("models.page.move_up"), type="tertiary")
        title.button(ui.t("models.page.down"), key=k + "down", on_click=move_block, args=(i, 1),
                     disabled=i == len(ss.blocks) - 1, icon=":material/arrow_downward:",
                     help=ui.t("models.page.move_down"), type="tertiary")
        title.button(ui.t("models.page.delete"), key=k + "remove", on_click=remove_block, args=(i,),
                     icon=":material/close:", help=ui.t("models.page.remove"), type="tertiary")
        top = st.columns(5, vertical_alignment="bottom")
        block["out"] = top[0].number_input(ui.t("models.page.channels"), 1, 4096, int(block["out"]), key=k + "out")
        block["kernel"] = top[1].selectbox(ui.t("models.page.kernel"), KERNELS, KERNELS.index(block["kernel"]) if block["kernel"] in KERNELS else 1,
                                           key=k + "kernel", format_func=lambda v: f"{v}×{v}")
        block["stride"] = top[2].selectbox(ui.t("models.page.stride"), (1, 2), block["stride"] - 1 if block["stride"] in (1, 2) else 0, key=k + "stride")
        block["act"] = top[3].selectbox(ui.t("models.page.act"), ACTS, ACTS.index(block["act"]), key=k + "act",
                                        format_func=ui.option_label("models.page.act_{}"))
        block["pool"] = top[4].selectbox(ui.t("models.page.pool"), models.POOLS, models.POOLS.index(block["pool"]), key=k + "pool",
                                         format_func=ui.option_label("models.page.pool_short_{}"), help=ui.t("models.page.pool_help"))
        low = st.columns(5, vertical_alignment="bottom")
        block["attention"] = low[0].selectbox(ui.t("models.page.attention"), models.ATTENTIONS, models.ATTENTIONS.index(block["attention"]),
                                              key=k + "attention", format_func=ui.option_label("models.page.att_short_{}"),
                                              help=ui.t("models.page.attention_help"))
        if block["attention"] != "none":
            block["reduction"] = low[1].number_input(ui.t("models.page.reduction"), 1, 1024, int(block["reduction"]), key=k + "reduction")
        if block["attention"] == "cbam":
            sk = (3, 5, 7)
            block["spatial_kernel"] = low[2].selectbox(ui.t("models.page.spatial_kernel"), sk, sk.index(block["spatial_kernel"]) if block["spatial_kernel"] in sk else 2,
                                                       key=k + "sk", format_func=lambda v: f"{v}×{v}")
        block["dropout"] = low[3].number_input(ui.t("models.page.dropout"), 0.0, 0.9, float(block["dropout"]), 0.05, key=k + "dropout")
        block["bn"] = low[4].checkbox(ui.t("models.page.bn"), bool(block["bn"]), key=k + "bn")


def builder() -> dict:
    if "blocks" not in ss:
        set_builder(models.PRESET_SPECS["cbam_cnn"])
    row = st.container(horizontal=True, gap="small")  # wraps instead of cutting words on a narrow screen
    row.button(ui.t("models.page.add_block"), on_click=add_block, icon=":material/add:")
    row.button(ui.t("models.page.from_simple"), on_click=set_builder, args=(models.PRESET_SPECS["simple_cnn"],))
    row.button(ui.t("models.page.from_cbam"), on_click=set_builder, args=(models.PRESET_SPECS["cbam_cnn"],))
    for i, block in enumerate(list(ss.blocks)):
        block_editor(i, block)
    if not ss.blocks:
        st.info(ui.t("models.page.no_blocks"))
    st.markdown(f"**{ui.t('models.page.head')}**")
    head = ss.head
    h = st.columns(3)
    head["pool"] = h[0].selectbox(ui.t("models.page.head_pool"), ("flatten", "gap"), ("flatten", "gap").index(head["pool"]), key="head_pool",
                                  format_func=ui.option_label("models.page.head_{}"))
    hidden = h[1].text_input(ui.t("models.page.hidden"), ", ".join(map(str, head["hidden"])), key="head_hidden",
                             help=ui.t("models.page.hidden_help"))
    head["dropout"] = h[2].number_input(ui.t("models.page.dropout"), 0.0, 0.9, float(head["dropout"]), 0.05, key="head_dropout")
    try:
        head["hidden"] = [int(x) for x in hidden.replace("，", ",").split(",") if x.strip()]
    except ValueError:
        st.error(ui.t("models.page.hidden_bad", value=hidden))
    return {"spec": {"blocks": [{k: v for k, v in b.items() if k != "id"} for b in ss.blocks], "head": head}}


def weights_options(arch: str) -> dict:
    """Pretrained on/off with availability, or a local weights file."""
    cached = models.pretrained_available(arch)
    pretrained = st.checkbox(ui.t("models.page.pretrained"), key="tl_pretrained")
    if cached:
        st.caption("✅ " + ui.t("models.page.weights_cached", name=arch))
    else:
        st.caption("⚠️ " + ui.t("models.page.weights_not_cached", name=arch, path=str(models.weights_cache_path(arch))))
    path = st.text_input(ui.t("models.page.weights_file"), key="tl_weights", help=ui.t("models.page.weights_file_help"))
    return {"pretrained": pretrained and not path.strip(), "weights_path": path.strip() or None}


def input_shape() -> tuple[int, int]:
    """Image size and class count: from the current split when there is one, else by hand."""
    ws = ui.workspace()
    split, classes = ui.current_split(), None
    if split:
        split_dir = Path(split) if Path(split).is_absolute() else ws.splits / split
        try:
            classes = read_split_info(split_dir).get("classes")
        except UserError:
            classes = None
    c1, c2, c3 = st.columns([1, 1, 2])
    ss.img_size = ui.image_size()  # one size for this split, shared with the Training page
    img_size = c1.number_input(ui.t("models.page.img_size"), 16, 512, step=8, key="img_size",
                               on_change=lambda: ui.set_image_size(ss.img_size), help=ui.t("models.page.img_size_help"))
    n = c2.number_input(ui.t("models.page.classes"), 1, 1000, len(classes) if classes else 10, key="num_classes")
    if classes:
        c3.caption(ui.t("models.page.from_split", split=Path(split).name, n=len(classes)))
    else:
        c3.caption(ui.t("models.page.no_split"))
    return int(img_size), int(n)


@st.cache_data(max_entries=64, show_spinner=False)
def summary_of(ref_json: str, classes: int, img_size: int, policy: str, depth: int, lang: str) -> dict:
    ref = json.loads(ref_json)
    model = models.build_model(ref, classes, img_size)
    models.freeze(model, policy)
    s = models.summarize(model, img_size, depth=depth)
    return s.to_dict() | {"outline": models.outline(ref, s, lang)}


def show_summary(ref: dict, img_size: int, classes: int, policy: str) -> None:
    depth = st.segmented_control(ui.t("models.page.depth"), (1, 2, 3, 4), default=2, key="table_depth") or 2
    if ref.get("weights_path") and not Path(ref["weights_path"]).expanduser().is_file():
        st.warning(ui.t("models.weights_missing", path=ref["weights_path"]))
    # The summary does not depend on the weights: leave them out so that nothing is downloaded here.
    shape_only = {k: v for k, v in ref.items() if k not in ("pretrained", "weights_path", "name", "freeze")}
    with st.spinner(ui.t("models.page.building")):
        s = summary_of(json.dumps(shape_only, sort_keys=True), classes, img_size, policy, depth, ui.lang())
    m = st.container(horizontal=True, gap="large")  # wraps on a narrow screen: no figure is cut short
    m.metric(ui.t("models.page.total_params"), f"{s['total_params']:,}", width="content")
    m.metric(ui.t("models.page.trainable_params"), f"{s['trainable_params']:,}", width="content")
    m.metric(ui.t("models.page.flops"), f"{s['flops'] / 1e6:,.1f} M", width="content")
    m.metric(ui.t("models.page.size"), f"{s['size_mb']:.2f} MB", width="content")
    if s["total_params"] > 50_000_000:
        st.warning(ui.t("models.page.big", n=f"{s['total_params'] / 1e6:.0f}"))
    st.code("\n".join(s["outline"]), language=None)
    table = pd.DataFrame(s["rows"])
    table["output_shape"] = table["output_shape"].map(lambda shape: "×".join(map(str, shape[1:])))
    table = table.rename(columns=lambda c: ui.t(f"models.page.col_{c}"))
    st.dataframe(table, hide_index=True, width="stretch")


def save_controls(ref: dict) -> None:
    ws = ui.workspace()
    st.subheader(ui.t("models.page.save_title"))
    row = st.container(horizontal=True, vertical_alignment="bottom", gap="small")
    name = row.text_input(ui.t("models.page.name"), key="save_name", width=320)
    overwrite = row.checkbox(ui.t("models.page.overwrite"), key="save_overwrite")
    if row.button(ui.t("models.page.save"), type="primary"):
        with ui.user_errors():
            models.save_spec(ws.models, name, ref, overwrite=overwrite)
            st.success(ui.t("models.page.saved", name=name.strip()))
    saved = models.list_specs(ws.models)
    if not saved:
        return
    st.markdown(f"**{ui.t('models.page.saved_models')}**")
    row = st.container(horizontal=True, vertical_alignment="bottom", gap="small")
    pick = row.selectbox(ui.t("models.page.saved_models"), saved, key="saved_pick", width=320,
                         label_visibility="collapsed")
    row.button(ui.t("models.page.load"), on_click=load_saved, args=(pick,), icon=":material/upload:")
    row.button(ui.t("models.page.delete_model"), key="spec_delete", icon=":material/delete:",
               on_click=lambda: ss.update(spec_confirm_delete=pick))
    if ss.get("spec_confirm_delete") == pick:
        st.warning(ui.t("models.page.delete_ask", name=pick))
        yes, no = st.columns(2)
        if yes.button(ui.t("models.page.delete_yes"), key="spec_delete_yes", type="primary"):
            ss.pop("spec_confirm_delete", None)
            with ui.user_errors():
                models.delete_spec(ws.models, pick)
                ss.pop("saved_pick", None)
                ss.model_flash = ("success", ui.t("models.page.deleted", name=pick))
                st.rerun()
        if no.button(ui.t("models.page.delete_no"), key="spec_delete_no"):
            ss.pop("spec_confirm_delete", None)
            st.rerun()
    row = st.container(horizontal=True, vertical_alignment="bottom", gap="small")
    new_name = row.text_input(ui.t("models.page.new_name"), value=f"{pick} copy" if pick else "",
                              key=f"copy_{pick}", width=320)
    if row.button(ui.t("models.page.duplicate"), key="spec_duplicate", icon=":material/content_copy:"):
        with ui.user_errors():
            models.duplicate_spec(ws.models, pick, new_name)
            st.success(ui.t("models.page.saved", name=new_name.strip()))
    if row.button(ui.t("models.page.rename"), key="spec_rename", icon=":material/edit:"):
        with ui.user_errors():
            models.rename_spec(ws.models, pick, new_name)
            ss.saved_pick_next = new_name.strip()
            ss.model_flash = ("success", ui.t("models.page.renamed", old=pick, name=new_name.strip()))
            st.rerun()


st.title(ui.t("nav.model"))
st.caption(ui.t("models.page.intro"))
if "saved_pick_next" in ss:  # a renamed spec stays picked (a widget's value is set before it is drawn)
    ss.saved_pick = ss.pop("saved_pick_next")
if flash := ss.pop("model_flash", None):
    getattr(st, flash[0])(flash[1])
img_size, classes = input_shape()
mode = st.radio(ui.t("models.page.mode"), MODES, horizontal=True, key="model_mode", format_func=ui.option_label("models.page.mode_{}"))

with ui.user_errors():
    if mode == "preset":
        preset = st.selectbox(ui.t("models.page.preset"), models.PRESETS, key="preset", format_func=ui.option_label("models.page.preset_{}"))
        ref: dict = {"preset": preset}
        if preset == "resnet18_cbam":
            ref |= weights_options("resnet18")
    elif mode == "builder":
        ref = builder()
    else:
        backbone = st.selectbox(ui.t("models.page.backbone"), models.BACKBONES, key="tl_backbone")
        ref = {"backbone": backbone} | weights_options(backbone)
    policy_labels = {p: ui.t("models.page.freeze_last", n=p[5:]) if p.startswith("last:") else ui.t(f"models.page.freeze_{p}")
                     for p in POLICIES}
    policy = st.selectbox(ui.t("models.page.freeze"), POLICIES, key="freeze_policy", format_func=policy_labels.__getitem__)
    if policy != "all":
        ref["freeze"] = policy
    st.subheader(ui.t("models.page.summary_title"))
    show_summary(ref, img_size, classes, policy)
    save_controls(ref)
