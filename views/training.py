"""Training page: settings, Start / Stop / queue, live curves, and every run kept on disk."""
from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

import pandas as pd
import streamlit as st

import ui
from core import charts, device, models
from core.data import augment as aug
from core.data.augment import AUGMENT_PRESETS
from core import recipes
from core.data.split import runs_using
from core.errors import UserError
from core.runs.compare import load_view
from core import runs
from core.runs import advice, compare
from core.training.balance import suggested_balance
from core.training.config import (BALANCES, CACHES, EARLY_STOP_METRICS, FROZEN_BN, MEMORY_FORMATS, OPTIMIZERS,
                                  PLATEAU_METRICS, SCHEDULERS, TTAS, TrainConfig)
from core.training import distributed
from core.training.jobs import registry
from core.training.live import WatchingTabs

ss = st.session_state
ws = ui.workspace()
jobs = registry()

st.title(ui.t("nav.training"))


def split_choices() -> list[str]:
    current = ui.current_split()
    found = sorted(str(p.parent) for p in ws.splits.glob("*/split.json"))
    if current and (Path(current) / "split.json").is_file() and current not in found:
        found.insert(0, current)
    return found


def split_label(path: str) -> str:
    """A split by its folder's name (with its parent's outside the workspace): a whole path did
    not fit the box at 1,024 px; the sidebar shows the current split's in full."""
    p = Path(path)
    try:
        return p.relative_to(ws.splits).as_posix()
    except ValueError:
        return f"…/{p.parent.name}/{p.name}"


def model_choices() -> dict[str, dict]:
    """Label -> model reference: saved specs first (the Model page's work), then presets, backbones."""
    choices = {}
    for name in models.list_specs(ws.models):
        with ui.user_errors():
            choices[f"💾 {name}"] = models.load_spec(ws.models, name)
    choices |= {p: {"preset": p} for p in models.PRESETS}
    choices |= {f"{b} ({ui.t('training.backbone')})": {"backbone": b, "pretrained": False, "weights_path": None}
                for b in models.BACKBONES}
    return choices | ss.get("train_recipe_models", {})  # a recipe's model that is none of the above


AUGMENTS = (*AUGMENT_PRESETS, "custom")
CIFAR_MEAN, CIFAR_STD = "0.4914, 0.4822, 0.4465", "0.2023, 0.1994, 0.2010"


def augment_fields() -> dict:
    """The custom augmentation settings (core.data.augment.DEFAULTS): numbers four to a row,
    choices with long names two."""
    d = aug.DEFAULTS

    def pair(values: list[float]) -> str:
        return ", ".join(str(v) for v in values)  # exact: 4/3 stays 4/3

    def option(name: str):
        return lambda value: ui.t(f"training.aug.{name}.{value}")

    c = st.columns(4)
    values = {
        "resize": c[0].number_input(ui.t("training.aug.resize"), 0, 4096, d["resize"], key="train_aug_resize"),
        "eval_resize": c[1].number_input(ui.t("training.aug.eval_resize"), 0, 4096, d["eval_resize"],
                                         key="train_aug_eval_resize", help=ui.t("training.aug.eval_resize_help")),
        "padding": c[2].number_input(ui.t("training.aug.padding"), 0, 1024, d["padding"], key="train_aug_padding"),
        "grayscale": c[3].number_input(ui.t("training.aug.grayscale"), 0.0, 1.0, d["grayscale"],
                                       key="train_aug_grayscale", step=0.025, format="%.3f"),
    }
    c = st.columns(2)
    values["resize_mode"] = c[0].selectbox(ui.t("training.aug.resize_mode"), aug.RESIZE_MODES,
                                           key="train_aug_resize_mode", format_func=option("resize_mode"))
    values["crop"] = c[1].selectbox(ui.t("training.aug.crop"), aug.CROPS, key="train_aug_crop", format_func=option("crop"))
    c = st.columns([1, 1, 2])
    scale = c[0].text_input(ui.t("training.aug.scale"), pair(d["scale"]), key="train_aug_scale")
    ratio = c[1].text_input(ui.t("training.aug.ratio"), pair(d["ratio"]), key="train_aug_ratio")
    order = c[2].text_input(ui.t("training.aug.order"), ", ".join(d["order"]), key="train_aug_order")
    c = st.columns(4)
    for col, name, high in zip(c, ("hflip", "vflip", "rotation", "translate"), (1.0, 1.0, 180.0, 0.5)):
        values[name] = col.number_input(ui.t(f"training.aug.{name}"), 0.0, high, d[name], key=f"train_aug_{name}",
                                        step=5.0 if name == "rotation" else 0.05)
    c = st.columns(4)
    for col, name, high in zip(c, aug.JITTERS, (10.0, 10.0, 10.0, 0.5)):
        values[name] = col.number_input(ui.t(f"training.aug.{name}"), 0.0, high, d[name], key=f"train_aug_{name}",
                                        step=0.05)
    c = st.columns(2)
    values["jitter_order"] = c[0].selectbox(ui.t("training.aug.jitter_order"), aug.JITTER_ORDERS,
                                            key="train_aug_jitter_order", format_func=option("jitter_order"))
    values["interpolation"] = c[1].selectbox(ui.t("training.aug.interpolation"), aug.INTERPOLATIONS,
                                             key="train_aug_interpolation", format_func=option("interpolation"),
                                             help=ui.t("training.aug.interpolation_help"))
    values["scale"] = aug.parse_numbers(scale, 2, ui.t("training.aug.scale"))
    values["ratio"] = aug.parse_numbers(ratio, 2, ui.t("training.aug.ratio"))
    values["order"] = [op.strip() for op in order.replace("，", ",").split(",") if op.strip()]
    return values


# --- course recipes: one choice fills every field of the form (through the widgets' keys) ------
WEIGHTS = ("model", "pretrained", "file", "scratch")  # where the model's starting weights come from
# TrainConfig fields whose widget is not keyed `train_<field>` holding the value as it is
NOT_PLAIN = ("data", "model", "augment", "normalization", "device", "log_every")


def bare(ref: dict) -> dict:
    """A model reference without its starting weights or shown name: the architecture."""
    return {k: v for k, v in ref.items() if k not in ("pretrained", "weights_path", "name")}


def model_fields(ref: dict) -> tuple[str, str, str]:
    """The model list's label for `ref` (added to the list when it is none of its entries), the
    starting-weights choice and the weights file."""
    options = model_choices()
    same = [label for label, r in options.items() if bare(r) == bare(ref)]
    label = next((s for s in same if not s.startswith("💾")), same[0] if same else None)
    if label is None:
        label = f"📘 {models.describe_ref(bare(ref))}"
        ss.setdefault("train_recipe_models", {})[label] = bare(ref)
    weights = "pretrained" if ref.get("pretrained") else "file" if ref.get("weights_path") else "model"
    return label, weights, ref.get("weights_path") or ""


def fill_form(cfg: TrainConfig) -> None:
    """Every field of the form set from `cfg`; the user changes any of them before Start."""
    for f in dataclasses.fields(cfg):
        if f.name not in NOT_PLAIN:
            ss[f"train_{f.name}"] = getattr(cfg, f.name)
    ss.train_device = cfg.device if cfg.device in ("auto", *device.available()) else "auto"
    ss.train_model, ss.train_weights, ss.train_weights_file = model_fields(cfg.model)
    ss.train_augment = cfg.augment if isinstance(cfg.augment, str) else "custom"
    settings = aug.settings(cfg.augment, cfg.img_size)  # a preset's own settings fill the custom fields
    for name, value in settings.items():
        if name in ("scale", "ratio", "order"):
            ss[f"train_aug_{name}"] = ", ".join(str(v) for v in value)
        else:
            ss[f"train_aug_{name}"] = value
    if isinstance(cfg.normalization, str):
        ss.train_normalization = cfg.normalization
    else:
        ss.train_normalization = "custom"
        ss.train_norm_mean = ", ".join(str(v) for v in cfg.normalization["mean"])
        ss.train_norm_std = ", ".join(str(v) for v in cfg.normalization["std"])


def apply_recipe() -> None:
    """on_change of the recipe picker: fill the form from the chosen recipe (computed ones from
    the dataset chosen in the form)."""
    name = ss.get("train_recipe", "none")
    ss.pop("train_recipe_loaded", None)
    if name == "none":
        return  # the fields keep what they hold
    data = ss.get("train_data") or ui.current_split()
    try:
        recipe = recipes.load(name, data)
        fill_form(recipe.config(data or "."))
    except UserError as err:
        ss.train_recipe_error = err.message(ui.lang())
        return
    ss.train_recipe_loaded = recipe


SUGGESTED = "auto"  # the recipe computed from the split (core/recipes/auto.py)


def suggest_for_new_split() -> None:
    """A split no run has used yet starts from the recipe suggested for it (once per split in a
    session, before the form's widgets exist), so a first-time user's Start trains with it."""
    data = ss.get("train_data") or ui.current_split()
    if not data or ss.get("train_suggested_for") == data:
        return
    ss.train_suggested_for = data
    if ss.get("train_recipe", "none") != "none" or runs_using(data, ws.runs):
        return
    ss.train_recipe = SUGGESTED
    apply_recipe()


def recipe_label(name: str) -> str:
    return ui.t("recipes.page.none") if name == "none" else f"{ui.t(f'recipes.{name}.title')} · {name}"


def recipe_picker() -> None:
    """'Start from a course recipe', what the chosen one sets and why, and whether the
    pretrained weights it starts from are on this machine (training never waits on them)."""
    suggest_for_new_split()
    names = [n for n in recipes.names() if n != SUGGESTED]
    st.selectbox(ui.t("recipes.page.pick"), ["none", SUGGESTED, *names], key="train_recipe", on_change=apply_recipe,
                 format_func=recipe_label, help=ui.t("recipes.page.pick_help"))  # full width: titles are long
    if error := ss.pop("train_recipe_error", None):
        st.error(error, icon="⚠️")
    recipe = ss.get("train_recipe_loaded")
    if recipe is None or recipe.name != ss.get("train_recipe"):
        return
    if recipe.reasons:
        why = [ui.t(r["key"], **r.get("params", {})) for r in recipe.reasons]
        st.caption(ui.t("recipes.page.suggested_for", reasons=" ".join(why)))
    st.caption(ui.t("recipes.page.filled"))
    with st.expander(recipe.title(ui.lang())):
        st.markdown("\n".join(f"- {line}" for line in recipes.describe(recipe, ui.lang())))
        for key in recipe.notes:
            st.caption(ui.t(key))
    arch = recipe.weights()
    if arch and models.pretrained_available(arch):
        st.caption("✅ " + ui.t("recipes.page.weights_cached", name=arch))
    elif arch:
        st.warning(ui.t("recipes.page.weights_missing", name=arch, path=str(models.weights_cache_path(arch))), icon="⚠️")


def starting_weights(ref: dict, source: str, path: str) -> dict:
    """The chosen model with the chosen starting weights (only ResNet18+CBAM and the backbones
    take any; "model" keeps what the model's reference says)."""
    if source == "model" or not ("backbone" in ref or ref.get("preset") == "resnet18_cbam"):
        return ref
    if source == "file" and not path.strip():
        raise UserError("recipes.page.weights_file_missing")
    return recipes.with_weights(ref, source, path.strip())


def settings_form() -> TrainConfig | None:
    """The form; returns the config when Start or Add to queue was pressed (ss.start_now tells which)."""
    splits = split_choices()
    if not splits:
        st.info(ui.t("training.no_split"), icon="🗂️")
        return None
    current = ui.current_split()
    recipe_picker()
    options = model_choices()
    with st.form("train_form"):
        c1, c2 = st.columns([2, 1])
        data = c1.selectbox(ui.t("training.data"), splits, index=splits.index(current) if current in splits else 0,
                            key="train_data", format_func=split_label)
        label = c2.selectbox(ui.t("training.model"), list(options), key="train_model")
        c1, c2 = st.columns(2)
        weights = c1.selectbox(ui.t("recipes.page.weights"), WEIGHTS, key="train_weights",
                               format_func=ui.option_label("recipes.page.weights.{}"), help=ui.t("recipes.page.weights_help"))
        weights_file = c2.text_input(ui.t("recipes.page.weights_file"), key="train_weights_file",
                                     help=ui.t("recipes.page.weights_file_help"))
        c = st.columns(4)
        img_size = c[0].number_input(ui.t("training.img_size"), 32, 512, 64, step=16, key="train_img_size",
                                     help=ui.t("training.img_size_help"))
        batch_size = c[1].number_input(ui.t("training.batch_size"), 2, 1024, 64, step=16, key="train_batch_size")
        epochs = c[2].number_input(ui.t("training.epochs"), 1, 500, 10, key="train_epochs")
        augment = c[3].selectbox(ui.t("training.augment"), AUGMENTS, index=AUGMENTS.index("seed"), key="train_augment",
                                 format_func=lambda a: ui.t("training.augment.custom") if a == "custom" else a)
        c = st.columns(4)
        optimizer = c[0].selectbox(ui.t("training.optimizer"), OPTIMIZERS, key="train_optimizer")
        lr = c[1].number_input(ui.t("training.lr"), 1e-6, 10.0, 1e-3, format="%.0e", step=1e-4, key="train_lr")
        scheduler = c[2].selectbox(ui.t("training.scheduler"), SCHEDULERS, key="train_scheduler",
                                   format_func=lambda s: ui.t(f"training.scheduler.{s}"))
        run_device = c[3].selectbox(ui.t("sidebar.device"), ["auto", *device.available()], key="train_device")
        balance = balance_field(current if current in splits else splits[0])
        with st.expander(ui.t("training.more")):
            c = st.columns(4)
            weight_decay = c[0].number_input(ui.t("training.weight_decay"), 0.0, 1.0, 0.0, format="%.0e", step=1e-4,
                                             key="train_weight_decay")
            label_smoothing = c[1].number_input(ui.t("training.label_smoothing"), 0.0, 0.5, 0.0, step=0.05,
                                                key="train_label_smoothing")
            patience = c[2].number_input(ui.t("training.patience"), 0, 100, 0, help=ui.t("training.patience_help"),
                                         key="train_early_stop_patience")
            seed = c[3].number_input(ui.t("training.seed"), 0, 2**31 - 1, 42, key="train_seed")
            # Numbers four to a row; choices with long names half a row each (a quarter cut them
            # off at 1,024 px).
            c = st.columns(4)
            freeze_epochs = c[0].number_input(ui.t("training.freeze_epochs"), 0, 100, 0, key="train_freeze_epochs",
                                              help=ui.t("training.freeze_help"))
            unfreeze_factor = c[1].number_input(ui.t("training.unfreeze_factor"), 0.001, 1.0, 0.1, step=0.05,
                                                key="train_unfreeze_lr_factor")
            momentum = c[2].number_input(ui.t("training.momentum"), 0.0, 0.999, 0.9, step=0.05, key="train_momentum")
            step_size = c[3].number_input(ui.t("training.step_size"), 1, 500, 5, key="train_step_size")
            c = st.columns(4)
            gamma = c[0].number_input(ui.t("training.gamma"), 0.001, 1.0, 0.1, step=0.05, key="train_gamma")
            histogram_every = c[1].number_input(ui.t("training.histogram_every"), 1, 100_000, 100,
                                                key="train_histogram_every")
            tb_every = c[2].number_input(ui.t("training.tensorboard_batch_every"), 1, 100_000, 100,
                                         key="train_tensorboard_batch_every")
            nesterov = c[3].checkbox(ui.t("training.nesterov"), key="train_nesterov")
            c = st.columns(2)
            normalization = c[0].selectbox(ui.t("training.normalization"), ("imagenet", "dataset", "custom"),
                                           key="train_normalization", format_func=lambda s: ui.t(f"training.norm.{s}"))
            early_stop_metric = c[1].selectbox(ui.t("training.early_stop_metric"), EARLY_STOP_METRICS,
                                               key="train_early_stop_metric",
                                               format_func=lambda m: ui.t(f"training.metric.{m}"))
            c = st.columns(2, vertical_alignment="bottom")
            frozen_bn = c[0].selectbox(ui.t("training.frozen_bn"), FROZEN_BN, help=ui.t("training.frozen_bn_help"),
                                       key="train_frozen_bn", format_func=lambda m: ui.t(f"training.frozen_bn.{m}"))
            tensorboard = c[1].checkbox(ui.t("training.tensorboard"), key="train_tensorboard")
            amp = c[1].checkbox(ui.t("training.amp"), value=True, help=ui.t("training.amp_help"), key="train_amp")
            c = st.columns(2)
            cache = c[0].selectbox(ui.t("training.cache"), CACHES, key="train_cache", help=ui.t("training.cache_help"),
                                   format_func=lambda m: ui.t(f"training.cache.{m}"))
            memory_format = c[1].selectbox(ui.t("training.memory_format"), MEMORY_FORMATS, key="train_memory_format",
                                           help=ui.t("training.memory_format_help"),
                                           format_func=lambda m: ui.t(f"training.memory_format.{m}"))
            c = st.columns([2, 1, 1])
            tta = c[0].selectbox(ui.t("training.tta"), TTAS, key="train_tta", help=ui.t("training.tta_help"),
                                 format_func=lambda m: ui.t(f"training.tta.{m}"))
            bias_lr_factor = c[1].number_input(ui.t("training.bias_lr_factor"), 0.01, 1000.0, 1.0, step=1.0,
                                               key="train_bias_lr_factor", help=ui.t("training.bias_lr_factor_help"))
            most = distributed.max_processes()  # GPUs, else cores: offered only where there are several
            if most > 1:
                if ss.get("train_nproc", 1) > most:  # settings from a bigger machine
                    ss.train_nproc = most
                nproc = c[2].number_input(ui.t("training.nproc"), 1, most, 1, key="train_nproc",
                                          help=ui.t("training.nproc_help"))
            else:
                nproc = 1
            st.caption(ui.t("training.sched.title"))
            c = st.columns(4)
            plateau_patience = c[0].number_input(ui.t("training.plateau_patience"), 0, 100, 2,
                                                 key="train_plateau_patience")
            phase2_lr = c[1].number_input(ui.t("training.phase2_lr"), 0.0, 10.0, 0.0, format="%.0e", step=1e-4,
                                          key="train_phase2_lr", help=ui.t("training.phase2_help"))
            phase2_step = c[2].number_input(ui.t("training.phase2_step_size"), 0, 500, 0, key="train_phase2_step_size")
            phase2_gamma = c[3].number_input(ui.t("training.phase2_gamma"), 0.0, 1.0, 0.0, step=0.05,
                                             key="train_phase2_gamma")
            c = st.columns(2, vertical_alignment="bottom")
            plateau_metric = c[0].selectbox(ui.t("training.plateau_metric"), PLATEAU_METRICS, key="train_plateau_metric",
                                            format_func=lambda m: ui.t(f"training.metric.{m}"))
            phase2_from_best = c[1].checkbox(ui.t("training.phase2_from_best"), key="train_phase2_from_best",
                                             help=ui.t("training.phase2_help"))
            st.caption(ui.t("training.aug.title"))
            custom = augment_fields()
            c = st.columns(2)
            norm_mean = c[0].text_input(ui.t("training.norm_mean"), CIFAR_MEAN, key="train_norm_mean")
            norm_std = c[1].text_input(ui.t("training.norm_std"), CIFAR_STD, key="train_norm_std")
            name = st.text_input(ui.t("training.name"), placeholder=ui.t("training.name_hint"), key="train_name")
        row = st.container(horizontal=True)  # each button as wide as its words
        start = row.form_submit_button(ui.t("training.start"), type="primary")
        queue = row.form_submit_button(ui.t("training.queue"))
        show = row.form_submit_button(ui.t("training.preview"))
    if not (start or queue or show):
        return None
    if normalization == "custom":
        normalization = {"mean": aug.parse_numbers(norm_mean, 3, ui.t("training.norm_mean")),
                         "std": aug.parse_numbers(norm_std, 3, ui.t("training.norm_std"))}
    if augment == "custom":
        augment = custom
    # the Data page's preview can show these settings too
    ss.training_augment = {"augment": aug.settings(augment, int(img_size)), "img_size": int(img_size)}
    if show:
        draw_preview(data, augment, int(img_size))
        return None
    ss.start_now = start
    ref = starting_weights(options[label], weights, weights_file)
    return TrainConfig(
        data=data, model=ref, name=name.strip() or models.describe_ref(ref), img_size=int(img_size),
        batch_size=int(batch_size), epochs=int(epochs), optimizer=optimizer, lr=float(lr),
        weight_decay=float(weight_decay), momentum=float(momentum), nesterov=nesterov, scheduler=scheduler,
        step_size=int(step_size), gamma=float(gamma), label_smoothing=float(label_smoothing),
        augment=augment, normalization=normalization, early_stop_metric=early_stop_metric, frozen_bn=frozen_bn,
        early_stop_patience=int(patience), freeze_epochs=int(freeze_epochs),
        unfreeze_lr_factor=float(unfreeze_factor), device=run_device, seed=int(seed), amp=amp,
        tensorboard=tensorboard, histogram_every=int(histogram_every), plateau_metric=plateau_metric,
        plateau_patience=int(plateau_patience), phase2_lr=float(phase2_lr), phase2_step_size=int(phase2_step),
        phase2_gamma=float(phase2_gamma), phase2_from_best=phase2_from_best,
        tensorboard_batch_every=int(tb_every), balance=balance, cache=cache, nproc=int(nproc),
        bias_lr_factor=float(bias_lr_factor), tta=tta, memory_format=memory_format).validated()


def balance_field(split: str) -> str:
    """Class weights proposed when the split's training part is unbalanced beyond 3:1 (the Data
    page's warning), with the one-line reason beside the choice."""
    suggested, found = suggested_balance(split)
    if "train_balance" not in ss or ss.get("train_balance_split") != split:  # a recipe may have set it
        ss.train_balance, ss.train_balance_split = suggested, split
    c = st.columns([1, 3], vertical_alignment="bottom")
    balance = c[0].selectbox(ui.t("training.balance"), BALANCES, key="train_balance",
                             format_func=lambda b: ui.t(f"training.balance.{b}"), help=ui.t("training.balance_help"))
    if found is not None:
        why = "training.balance.why_weights" if suggested == "weights" else "training.balance.why_none"
        c[1].caption(ui.t(why, ratio=f"{found.ratio:.1f}", largest=found.largest, largest_n=found.largest_n,
                          smallest=found.smallest, smallest_n=found.smallest_n))
    return balance


def draw_preview(split: str, augment, img_size: int) -> None:
    """The split's first training image as training stores it, and eight augmented versions."""
    source = aug.first_image(split)
    if source is None:
        return
    original, views = aug.preview(source, augment, img_size, 8)
    st.caption(ui.t("training.preview_caption"))
    cols = st.columns(9)
    cols[0].image(original, width="stretch")
    for col, img in zip(cols[1:], views):
        col.image(img, width="stretch")


def draw_grid(run_id: str) -> None:
    """The course's prediction grid for a finished run (as on Compare); an image opens in Explain."""
    run_dir = ws.runs / run_id
    if not (run_dir / "predictions.csv").is_file():
        return

    def explain(image: str) -> None:
        ui.request_explain([run_id], image)
        st.switch_page("views/explain.py")

    with ui.user_errors(), st.expander(ui.t("compare.grid"), expanded=True):
        ui.prediction_grid(load_view(run_dir), f"train_grid_{run_id}", on_explain=explain)


def watch(run_id: str) -> None:
    st.query_params["run"] = run_id  # a reload or a shared link re-attaches to this run


def live_state(run_id: str) -> dict:
    """The run as the charts need it: from the training thread when it is ours, else from disk."""
    snap = jobs.snapshot(run_id)
    run_dir = ws.runs / run_id
    if snap is None:
        summary = runs.read_summary(run_dir)
        return {"status": summary.get("status", "interrupted"), "progress": {}, "records": runs.read_metrics(run_dir),
                "message": summary.get("message", ""), "message_key": summary.get("message_key", ""),
                "message_params": summary.get("message_params", {}), "ahead": []}
    if not snap["records"]:  # queued, resumed or continued: its curves so far are on disk
        snap["records"] = runs.read_metrics(run_dir)
    return snap


def draw_head(run_id: str, state: dict) -> None:
    """The run's name and status, Stop, its error if it failed, and the progress bar."""
    status = state["status"]
    head = st.columns([4, 1])
    head[0].subheader(f"{run_id} · {ui.t('training.status.' + status)}")
    if status in ("running", "queued") and head[1].button(ui.t("training.stop"), key=f"stop_{run_id}"):
        jobs.stop(run_id)
    if state["message_key"]:
        st.error(ui.t(state["message_key"], **state["message_params"]), icon="⚠️")
    elif state["message"]:
        st.error(state["message"], icon="⚠️")
    if status in ("running", "queued"):
        st.progress(*status_line(state))
    notes = {r["key"]: r.get("params", {}) for r in state["records"] if r.get("type") == "note"}
    for key, params in notes.items():  # early stopping; how the images are held
        st.info(ui.t(key, **params))


def status_line(state: dict) -> tuple[float, str]:
    """The one line (and bar) saying what a queued or running run does now: waiting behind which
    run, reading or caching its images, building the model, training, testing."""
    p = state["progress"]
    if state["status"] == "queued":
        ahead = state.get("ahead") or []
        return 0.0, (ui.t("training.phase.queued_behind", runs=", ".join(ahead)) if ahead
                     else ui.t("training.phase.queued"))
    phase = p.get("phase", "training" if "epoch" in p else "")
    if phase == "caching":
        return (min(1.0, p["done"] / max(1, p["total"])),
                ui.t("training.phase.caching", part=ui.t(f"training.phase.part.{p['part']}"),
                     done=f"{p['done']:,}", total=f"{p['total']:,}"))
    if phase in ("loading", "building"):
        return 0.0, ui.t(f"training.phase.{phase}")
    if phase == "testing":
        return 1.0, ui.t("training.phase.testing")
    if phase == "training":
        done = ((p["epoch"] - 1) * p["batches"] + p["batch"]) / max(1, p["epochs"] * p["batches"])
        eta = ui.t("training.eta_min", minutes=p["eta_s"] / 60) if p.get("eta_s") else "…"
        rate = f"{p['img_per_s']:.0f}" if p.get("img_per_s") else "…"  # none yet before the first batch
        return min(1.0, done), ui.t("training.progress", epoch=p["epoch"], epochs=p["epochs"], batch=p["batch"],
                                    batches=p["batches"], rate=rate, eta=eta)
    return 0.0, ui.t("training.phase.starting")


def draw_charts(run_id: str, records: list[dict], names: tuple[str, ...]) -> None:
    """The charts among `names` that the records have data for (iteration loss full width, the
    others side by side)."""
    iters = [r for r in records if r.get("type") == "iter"]
    if not iters:
        return
    figures = live_figures(run_id, ui.lang(), names, len(records), repr(records[-1]), iters,
                           [r for r in records if r.get("type") == "epoch"])
    for row in ([n for n in figures if n == "iter"], [n for n in figures if n != "iter"]):
        for col, name in zip(st.columns(len(row)) if row else [], row):
            col.plotly_chart(figures[name], key=f"{name}_{run_id}")


@st.cache_resource(max_entries=64, show_spinner=False)
def live_figures(run_id: str, lang: str, names: tuple[str, ...], n_records: int, last_record: str,
                 _iters: list[dict], _epochs: list[dict]) -> dict:
    """The charts among `names` for the run's records so far (the per-epoch ones once there are
    epochs), built once and shared by every tab watching it (keyed by the run, the language, the
    names and the records' count and last one)."""
    figures = {}
    for name in names:
        if name == "iter":
            figures[name] = charts.iteration_loss(_iters, ui.t("training.chart.iter_loss"), ui.t("training.chart.raw"),
                                                  ui.t("training.chart.smoothed"), ui.t("training.chart.step"))
        elif name == "lr":
            figures[name] = charts.lr_curve(_iters, ui.t("training.chart.lr"), ui.t("training.chart.step"))
        elif _epochs:
            figures[name] = charts.run_curves({run_id[-24:]: _epochs}, name, ui.t(f"training.chart.{name}"),
                                              ui.t("training.chart.train"), ui.t("training.chart.val"),
                                              ui.t("training.chart.epoch"), percent=name == "acc")
    return figures


EPOCH_CHARTS = ("loss", "acc", "lr")


def draw_run(run_id: str) -> None:
    state = live_state(run_id)
    draw_head(run_id, state)
    if state["status"] == "finished":
        draw_advice(ws.runs / run_id)
    draw_charts(run_id, state["records"], ("iter",) + EPOCH_CHARTS)


def draw_advice(run_dir: Path) -> None:
    """A warning when the finished model mostly answers one class, and what to try."""
    with ui.user_errors():
        found = advice.run_advice(compare.load_view(run_dir))
        if found:
            st.warning("\n\n".join(ui.t(a.key, **a.params) for a in found), icon="⚠️")


def more_epochs(info: runs.RunInfo) -> None:
    """Train a finished run further, in place, from its last checkpoint (core.training.more)."""
    row = st.container(horizontal=True, vertical_alignment="bottom")
    n = row.number_input(ui.t("training.more_epochs"), 1, 500, 5, key="more_epochs_n", width=170,
                         help=ui.t("training.more_epochs_help"))
    if row.button(ui.t("training.more_epochs_button", n=int(n)), key="more_epochs"):
        with ui.user_errors():
            jobs.more_epochs(info.path, int(n), ws.cache)
            st.rerun()


@st.cache_resource
def watching_tabs() -> WatchingTabs:
    """The tabs watching a running job, shared by every session of this server (core/training/live.py)."""
    return WatchingTabs()


def live_every() -> float:
    return watching_tabs().every(ss.setdefault("tab_id", uuid.uuid4().hex), time.monotonic())


def live_steps(run_id: str, every: float) -> None:
    state = live_state(run_id)
    draw_head(run_id, state)
    draw_charts(run_id, state["records"], ("iter",))
    if state["status"] not in ("running", "queued") or live_every() != every:
        st.rerun()  # the run ended (draw it whole, stop polling) or the tabs watching changed


def live_epochs(run_id: str) -> None:
    draw_charts(run_id, live_state(run_id)["records"], EPOCH_CHARTS)


def live_table() -> None:
    """The queue and the run list, re-read while jobs run (epochs done, statuses)."""
    run_table(runs.list_runs(ws.runs))
    if not jobs.busy():
        st.rerun()  # the queue is done: the page draws the list once more and stops polling


def run_table(all_runs: list[runs.RunInfo]) -> None:
    queued = jobs.queued()
    if queued:
        st.caption(ui.t("training.queue_list", runs=", ".join(queued)))
    frame = pd.DataFrame([{
        ui.t("training.col.run"): r.id, ui.t("training.col.model"): r.model,
        ui.t("training.col.status"): ui.t("training.status." + r.status),
        ui.t("training.col.epochs"): f"{r.epochs_done}/{r.epochs}",
        ui.t("training.col.best_val"): pct(r.best_val_acc), ui.t("training.col.test"): pct(r.test_acc),
    } for r in all_runs])
    st.dataframe(frame, hide_index=True, width="stretch", column_config={  # short headers: fits 1,024 px
        ui.t("training.col.best_val"): st.column_config.TextColumn(help=ui.t("training.col.best_val_help")),
        ui.t("training.col.test"): st.column_config.TextColumn(help=ui.t("training.col.test_help"))})


def pct(value) -> str:
    """A percentage as Compare writes them (one decimal), or a dash while there is none yet."""
    return "–" if value is None or pd.isna(value) else f"{value:.1%}"


# --- the page, top to bottom ------------------------------------------------------------------
with ui.user_errors():
    config = settings_form()
    if config is not None:
        run_id = jobs.submit(config, ws.runs, ws.cache)
        if ss.start_now or not st.query_params.get("run"):
            watch(run_id)
        else:  # added behind the watched run: its status line does not show this one
            st.toast(ui.t("training.queued", run=run_id))

all_runs = runs.list_runs(ws.runs)
if not all_runs:
    st.caption(ui.t("training.no_runs"))
    st.stop()

st.divider()
ids = [r.id for r in all_runs]
watched = st.query_params.get("run")
if watched not in ids:
    watched = jobs.active() or ids[0]
choice = st.selectbox(ui.t("training.watch"), ids, index=ids.index(watched))
if choice != st.query_params.get("run"):
    watch(choice)
info = next(r for r in all_runs if r.id == choice)
if info.status in ("running", "queued"):
    every = live_every()
    st.fragment(live_steps, run_every=every)(choice, every)
    st.fragment(live_epochs, run_every=5 * every)(choice)
else:
    draw_run(choice)
    if info.status in runs.RESUMABLE:
        if st.button(ui.t("training.resume"), key="resume", help=ui.t("training.resume_help")):
            with ui.user_errors():
                jobs.resume(info.path, ws.cache)
                st.rerun()
    elif info.status == "finished" and (info.path / "last.pt").is_file():
        more_epochs(info)
st.caption(ui.t("training.folder", path=str(info.path)))
if runs.read_config(info.path).get("tensorboard"):
    st.code(f"tensorboard --logdir {info.path / 'tensorboard'}", language="bash")

if info.status == "finished":
    draw_grid(choice)

st.subheader(ui.t("training.runs"))
if jobs.busy():
    st.fragment(live_table, run_every=5 * live_every())()
else:
    run_table(all_runs)
