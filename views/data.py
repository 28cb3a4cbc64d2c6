"""Data: choose a dataset (folder, zip or demo), check its health, split it, preview augmentation."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

import ui
from core import charts, recipes
from core.data.augment import AUGMENT_PRESETS, augment_preview
from core.data.augment import preview as preview_settings
from core.data.cache import cache_cap, cache_size, clear_cache, decode_resized
from core.data.cifar import CifarFolder, find_cifar, import_cifar
from core.data.cifar import summary as cifar_summary
from core.data.demo import make_demo
from core.data.existing import (
    DEFAULT_HOLD_OUT,
    ExistingReport,
    ExistingSplit,
    find_existing,
    from_parts,
    import_existing,
    inspect_existing,
    pooled,
    summary_params,
)
from core.data.files import folder_signature, natural_order
from core.data.scan import IMBALANCE_WARN, HealthReport, imbalance, sample_paths, scan
from core.data.split import (
    INFO_FILE,
    SPLITS,
    counts,
    left_out_note,
    next_version,
    plan_split,
    read_split_info,
    runs_using,
    split_dataset,
)
from core.data.zipimport import import_zip
from core.errors import UserError

ws = ui.workspace()
demo_dir = ws.datasets / "demo"


@st.cache_data(show_spinner=False, max_entries=8)
def cached_scan(folder: str, signature: str) -> HealthReport:
    """Re-scan only when the folder changed (its signature is part of the cache key)."""
    return scan(folder)


@st.cache_data(show_spinner=False, max_entries=4)
def cached_existing(key: str, signature: str, _split: ExistingSplit) -> ExistingReport:
    """The health report of each part of an existing split (`key` names the parts)."""
    return inspect_existing(_split)


@st.cache_data(show_spinner=False, max_entries=4)
def cached_pooled(key: str, signature: str, _split: ExistingSplit) -> HealthReport:
    return pooled(_split)


@st.cache_data(show_spinner=False, max_entries=4)
def cached_cifar(folder: str, signature: str, _cifar: CifarFolder) -> dict:
    return cifar_summary(_cifar)


def parts_signature(split: ExistingSplit) -> str:
    return "||".join(folder_signature(folder) for folder in split.parts.values())


def translated(note: tuple[str, dict] | None) -> str:
    return ui.t(note[0], **note[1]) if note else ""


def choose(folder: Path) -> None:
    """Select `folder` on the next run (the text field's value cannot change once it is drawn)."""
    st.session_state.data_folder_next = str(folder)
    st.session_state.pop("data_parts", None)
    ui.set_setting("data_folder", str(folder))


def folder_edited() -> None:
    st.session_state.pop("data_parts", None)  # the folder field is the source again
    ui.set_setting("data_folder", st.session_state.data_folder_input.strip())


def first_folder() -> str:
    """The folder a session starts on: the one it chose last; in a new tab, the workspace's last
    one, else the source of the current split, else the demo set when it exists."""
    chosen = ui.setting("data_folder")
    if chosen:
        return str(chosen)
    split = ui.current_split()
    if split:
        try:
            return str(read_split_info(split).get("source") or "")
        except UserError:
            pass
    return str(demo_dir) if demo_dir.is_dir() else ""


st.title(ui.t("nav.data"))
st.caption(ui.t("data.page.intro"))

# --- 1. Where the images come from --------------------------------------------------------
if "data_folder_next" in st.session_state:
    st.session_state.data_folder_input = st.session_state.pop("data_folder_next")
elif "data_folder_input" not in st.session_state:  # a new tab, or back from another page
    st.session_state.data_folder_input = first_folder()
tab_folder, tab_zip, tab_demo, tab_parts = st.tabs([ui.t("data.page.tab_folder"), ui.t("data.page.tab_zip"),
                                                    ui.t("data.page.tab_demo"), ui.t("data.page.tab_parts")])
with tab_folder:
    st.text_input(ui.t("data.page.folder"), key="data_folder_input", help=ui.t("data.page.folder_help"),
                  on_change=folder_edited)
with tab_zip:
    upload = st.file_uploader(ui.t("data.page.zip"), type=["zip"], help=ui.t("data.page.zip_help"), key="data_zip")
    ui.uploader_texts("data_zip", "ZIP")
    if upload is not None and st.button(ui.t("data.page.zip_import")):
        with ui.user_errors(), st.spinner(ui.t("data.page.working")):
            choose(import_zip(upload, ws.datasets, name=upload.name))
            st.rerun()
with tab_demo:
    st.write(ui.t("data.page.demo_what"))
    if st.button(ui.t("data.page.demo_button"), key="make_demo"):
        with ui.user_errors(), st.spinner(ui.t("data.page.working")):
            if not demo_dir.is_dir():
                make_demo(demo_dir)
            choose(demo_dir)
            st.rerun()
with tab_parts:
    st.caption(ui.t("data.page.parts_what"))
    for part in ("train", "val", "test"):
        st.text_input(ui.t("data.page.parts_" + part), key="data_parts_" + part)
    if st.button(ui.t("data.page.parts_use"), key="data_parts_use"):
        st.session_state.data_parts = {part: st.session_state["data_parts_" + part].strip() for part in ("train", "val", "test")}

folder = st.session_state.data_folder_input.strip()
given_parts = st.session_state.get("data_parts")
if not folder and not given_parts:
    st.info(ui.t("data.page.pick"))
    st.stop()


def cifar_page(cifar: CifarFolder) -> None:
    """A CIFAR batches folder: what it holds, and its import as a split of PNG files."""
    st.header(ui.t("data.page.cifar"))
    with st.spinner(ui.t("data.page.scanning")):
        facts = cached_cifar(str(cifar.folder), folder_signature(cifar.folder), cifar)
    st.info(ui.t("data.cifar.summary", **facts))
    c1, c2 = st.columns(2)
    val = c1.slider(ui.t("data.page.hold_out"), 0, 45, round(100 * DEFAULT_HOLD_OUT), 5, format="%d%%",
                    key="data_cifar_val", help=ui.t("data.page.hold_out_help"))
    seed = c2.number_input(ui.t("data.page.seed"), 0, 2**31 - 1, 42, 1, key="data_cifar_seed")
    target = import_target(ws.splits / cifar.kind)
    if st.button(ui.t("data.page.cifar_import"), type="primary", key="import_cifar"):
        with ui.user_errors(), st.spinner(ui.t("data.page.cifar_working")):
            info = import_cifar(cifar.folder, target, val / 100, int(seed), force=True, runs_dir=ws.runs)
            ui.set_current_split(target.resolve())
            st.session_state.data_import_done = (str(target.resolve()), sum(sum(c.values()) for c in info["counts"].values()))
    done_message(target)


def import_target(default: Path) -> Path:
    """The output folder field; a split that runs use there is kept and the next version is written."""
    out = Path(st.text_input(ui.t("data.page.split_out"), value=str(default),
                             help=ui.t("data.page.split_out_help"))).expanduser()
    used = runs_using(out, ws.runs) if (out / INFO_FILE).is_file() else []
    if used:
        target = next_version(out)
        st.info(ui.t("data.page.in_use", out=out, n=len(used), runs=", ".join(r.name for r in used[:5]), new=target))
        return target
    if (out / INFO_FILE).is_file():
        st.caption(ui.t("data.page.import_replaces", out=out))
    return out


def done_message(target: Path) -> None:
    done = st.session_state.get("data_import_done")
    if done and done[0] == str(target.resolve()):
        st.success(ui.t("data.page.import_done", out=done[0], n=done[1]))


def existing_page(split: ExistingSplit) -> None:
    """An existing split: the health of each part, and its import kept as given."""
    key = "|".join(f"{part}={folder}" for part, folder in split.parts.items())
    with st.spinner(ui.t("data.page.scanning")):
        ex = cached_existing(key, parts_signature(split), split)
    st.header(ui.t("data.page.health"))
    st.info(ui.t("data.existing.summary", root=split.source, **summary_params(ex)))
    if split.is_split():
        st.success(ui.t("data.existing.ready", path=split.root))
        if st.button(ui.t("data.page.use_split"), key="use_split"):
            ui.set_current_split(split.root)
            st.rerun()
        return
    parts = list(ex.reports)
    problems = sum(len(r.problems) for r in ex.reports.values())
    figures = st.container(horizontal=True, gap="large")
    figures.metric(ui.t("data.page.classes"), len(ex.classes), width="content")
    figures.metric(ui.t("data.page.images"), sum(ex.totals().values()), width="content")
    figures.metric(ui.t("data.page.problems"), problems, width="content")
    figures.metric(ui.t("data.page.leakage"), len(ex.leakage), width="content")
    rows, display = ex.counts(), ex.display_of()
    order = [list(rows)[i] for i in natural_order(list(rows))]
    table = pd.DataFrame({ui.t("data.page.col_class"): order, ui.t("data.page.col_display"): [display[c] for c in order]}
                         | {split.given(p): [rows[c][p] for c in order] for p in parts})
    left, right = st.columns([2, 3])
    left.dataframe(table, hide_index=True)
    right.plotly_chart(charts.class_balance([display[c] for c in order], [rows[c]["train"] for c in order],
                                            ui.t("data.page.balance_train", part=split.given("train")),
                                            ui.t("data.page.col_images")))
    missing = ex.missing()
    for part, names in missing.items():
        st.warning(ui.t("data.existing.missing", part=split.given(part), names=", ".join(display[n] for n in names)))
    exclude = sorted({n for names in missing.values() for n in names})
    if exclude and not st.checkbox(ui.t("data.page.leave_out_missing"), key="data_leave_out_missing"):
        exclude = []
    if split.unlabeled:
        st.caption(ui.t("data.existing.unlabeled", names=", ".join(split.unlabeled)))
    issues = [(f"{split.given(part)}/{i.path}", i) for part, r in ex.reports.items() for i in r.problems]
    if issues:
        with st.expander(ui.t("data.page.problem_list", n=len(issues)), expanded=True):
            st.dataframe(pd.DataFrame({
                ui.t("data.page.col_file"): [path for path, _ in issues],
                ui.t("data.page.col_reason"): [ui.t("data.reason." + i.kind) + (f" ({i.detail})" if i.detail else "")
                                               for _, i in issues]}), hide_index=True)
    conflicts = [[(f"{split.given(part)}/{path}", cls) for path, cls in group]
                 for part, r in ex.reports.items() for group in r.label_conflicts()]
    if conflicts:
        st.warning(ui.t("data.page.conflicts", n=len(conflicts)))
        with st.expander(ui.t("data.page.conflict_list", n=len(conflicts)), expanded=True):
            st.dataframe(pd.DataFrame({
                ui.t("data.page.col_labels"): [" / ".join(display.get(cls, cls) for _, cls in group) for group in conflicts],
                ui.t("data.page.col_files"): [" = ".join(path for path, _ in group) for group in conflicts],
            }), hide_index=True)
    groups = [[f"{split.given(part)}/{path}" for path in group] for part, r in ex.reports.items()
              for group in r.plain_duplicates()]
    if groups:
        with st.expander(ui.t("data.page.duplicate_list", n=len(groups))):
            for group in groups:
                st.text(" = ".join(group))
    if ex.leakage:
        st.warning(ui.t("data.existing.leakage", n=len(ex.leakage)))
        with st.expander(ui.t("data.page.leakage_list", n=len(ex.leakage))):
            for group in ex.leakage:
                st.text(" = ".join(group))

    st.header(ui.t("data.page.use_as_given"))
    st.caption(ui.t("data.page.as_given_what"))
    c1, c2 = st.columns(2)
    hold_out = 0
    if "val" not in split.parts:
        hold_out = c1.slider(ui.t("data.page.hold_out"), 0, 45, round(100 * DEFAULT_HOLD_OUT), 5, format="%d%%",
                             key="data_hold_out", help=ui.t("data.page.hold_out_help"))
        if hold_out == 0:
            st.caption(ui.t("data.page.no_validation"))
    seed = c2.number_input(ui.t("data.page.seed"), 0, 2**31 - 1, 42, 1, key="data_as_given_seed")
    target = import_target(ws.splits / split.name)
    if st.button(ui.t("data.page.import_button"), type="primary", key="import_existing"):
        with ui.user_errors(), st.spinner(ui.t("data.page.working")):
            info = import_existing(ex, target, hold_out / 100, int(seed), force=True, small="train_only",
                                   exclude=exclude, runs_dir=ws.runs)
            ui.set_current_split(target.resolve())
            st.session_state.data_import_done = (str(target.resolve()), sum(sum(c.values()) for c in info["counts"].values()))
    done_message(target)


existing = cifar = None
with ui.user_errors():
    if given_parts:
        existing = from_parts(given_parts["train"], given_parts["val"] or None, given_parts["test"] or None)
    else:
        cifar = find_cifar(folder)
        existing = None if cifar else find_existing(folder)
if given_parts and existing is None:
    st.stop()  # the error is shown
if cifar is not None:
    cifar_page(cifar)
    st.stop()
resplit = existing is not None and existing.root is not None and not existing.is_split() \
    and st.toggle(ui.t("data.page.resplit"), key="data_resplit", help=ui.t("data.page.resplit_help"))
if existing is not None and not resplit:
    existing_page(existing)
    st.stop()
if st.button(ui.t("data.page.rescan"), help=ui.t("data.page.rescan_help")):
    cached_scan.clear()  # files edited in place keep their folder's signature
try:
    with st.spinner(ui.t("data.page.scanning")):
        if resplit:  # every part of the existing split pooled, then split by the sliders below
            report = cached_pooled(str(existing.root), parts_signature(existing), existing)
        else:
            report = cached_scan(str(Path(folder).expanduser()), folder_signature(Path(folder).expanduser()))
except UserError as err:
    ui.show_error(err)
    st.stop()

# --- 2. Health report ---------------------------------------------------------------------
st.header(ui.t("data.page.health"))
st.caption(ui.t("data.page.root", root=report.root))
listed = report.listed()
conflicts, copies = report.label_conflicts(), report.plain_duplicates()
balance = imbalance({c.name: c.images for c in listed})
figures = st.container(horizontal=True, gap="medium")  # wraps on a narrow screen instead of cutting labels
figures.metric(ui.t("data.page.classes"), len(report.classes), width="content")
figures.metric(ui.t("data.page.images"), report.total_images, width="content")
figures.metric(ui.t("data.page.problems"), len(report.problems), width="content")
figures.metric(ui.t("data.page.duplicates"), len(copies) + len(conflicts), width="content",
               help=ui.t("data.page.duplicates_help", copies=len(copies), conflicts=len(conflicts)))
figures.metric(ui.t("data.page.imbalance"), ui.t("data.page.ratio", ratio=f"{balance.ratio:.1f}") if balance else "–",
               help=ui.t("data.page.imbalance_help", limit=f"{IMBALANCE_WARN:g}"), width="content")
named = any(c.display != c.name for c in listed)  # a Name column only when cat_to_name.json names them
table = pd.DataFrame({ui.t("data.page.col_class"): [c.name for c in listed]}
                     | ({ui.t("data.page.col_display"): [c.display for c in listed]} if named else {})
                     | {ui.t("data.page.col_images"): [c.images for c in listed],
                        ui.t("data.page.col_problems"): [c.problems for c in listed],
                        ui.t("data.page.col_note"): [translated(c.note()) for c in listed]})
# One above the other: side by side, a laptop's narrow columns cut the table's notes off.
st.dataframe(table, hide_index=True, height="content" if len(listed) <= 20 else "auto")
st.plotly_chart(charts.class_balance([c.display for c in listed], [c.images for c in listed],
                                     ui.t("data.page.balance"), ui.t("data.page.col_images")))
if report.sizes:
    w, h = report.sizes["width"], report.sizes["height"]
    st.caption(ui.t("data.page.sizes", wmin=w["min"], wmed=w["median"], wmax=w["max"],
                    hmin=h["min"], hmed=h["median"], hmax=h["max"],
                    formats=", ".join(f"{k} {v}" for k, v in sorted(report.formats.items()))))
empty = [c.display for c in listed if c.images == 0]
if empty:
    st.warning(ui.t("data.page.empty_classes", names=", ".join(empty)))
display_of = {c.name: c.display for c in listed}
if balance and balance.warn:
    st.warning(ui.t("data.page.unbalanced", ratio=f"{balance.ratio:.1f}", largest=display_of[balance.largest],
                    largest_n=balance.largest_n, smallest=display_of[balance.smallest], smallest_n=balance.smallest_n,
                    limit=f"{IMBALANCE_WARN:g}"))
if conflicts:
    st.warning(ui.t("data.page.conflicts", n=len(conflicts)))


def issue_table(issues: list) -> pd.DataFrame:
    return pd.DataFrame({
        ui.t("data.page.col_file"): [i.path for i in issues],
        ui.t("data.page.col_reason"): [ui.t("data.reason." + i.kind) + (f" ({i.detail})" if i.detail else "") for i in issues],
    })


if report.problems:
    with st.expander(ui.t("data.page.problem_list", n=len(report.problems)), expanded=True):
        st.dataframe(issue_table(report.problems), hide_index=True)
if report.notes:
    with st.expander(ui.t("data.page.note_list", n=len(report.notes))):
        st.dataframe(issue_table(report.notes), hide_index=True)
if conflicts:
    with st.expander(ui.t("data.page.conflict_list", n=len(conflicts)), expanded=True):
        st.dataframe(pd.DataFrame({
            ui.t("data.page.col_labels"): [" / ".join(display_of.get(cls, cls) for _, cls in group) for group in conflicts],
            ui.t("data.page.col_files"): [" = ".join(path for path, _ in group) for group in conflicts],
        }), hide_index=True)
        st.caption(ui.t("data.page.conflicts_what"))
if copies:
    with st.expander(ui.t("data.page.duplicate_list", n=len(copies))):
        for group in copies:
            st.text(" = ".join(group))
if not (report.problems or report.notes or report.duplicates):
    st.success(ui.t("data.page.all_good"))

# --- 3. Samples ---------------------------------------------------------------------------
st.header(ui.t("data.page.samples"))
names = [c.name for c in listed if c.images]
shown = st.multiselect(ui.t("data.page.sample_classes"), names, default=names[:5], format_func=display_of.__getitem__,
                       placeholder=ui.t("common.choose"))
samples = sample_paths(report, per_class=6)
for name in shown:
    st.caption(display_of[name])
    for col, path in zip(st.columns(6), samples[name]):
        col.image(ui.thumbnail(str(path), mtime_ns=path.stat().st_mtime_ns), width="stretch")  # one size: rows line up

# --- 4. Split -----------------------------------------------------------------------------
st.header(ui.t("data.page.split"))
# Remembered for this session across pages, and as the workspace's default for new tabs.
for key, default in (("data_val", 20), ("data_test", 20), ("data_seed", 42)):
    ui.bind(key, key, default)
with_shares = {r.title(ui.lang()): r for r in recipes.load_all() if r.split}


def use_recipe_shares() -> None:
    """The split shares and seed of the course lesson chosen, into the sliders (still editable)."""
    recipe = with_shares.get(st.session_state.data_split_recipe)
    if recipe is not None:
        for key, value in (("data_val", round(100 * recipe.split.get("val", 0))),
                           ("data_test", round(100 * recipe.split.get("test", 0))),
                           ("data_seed", int(recipe.split.get("seed", 42)))):
            st.session_state[key] = value
            ui.keep(key, key)


if with_shares:
    st.selectbox(ui.t("data.page.split_recipe"), [ui.t("data.page.split_recipe_none"), *with_shares],
                 key="data_split_recipe", on_change=use_recipe_shares)
c1, c2, c3 = st.columns(3)
val_pct = c1.slider(ui.t("data.page.val"), 5, 45, step=5, format="%d%%", key="data_val",  # training needs validation
                    on_change=ui.keep, args=("data_val", "data_val"))
test_pct = c2.slider(ui.t("data.page.test"), 0, 45, step=5, format="%d%%", key="data_test",
                     on_change=ui.keep, args=("data_test", "data_test"))
seed = c3.number_input(ui.t("data.page.seed"), 0, 2**31 - 1, step=1, key="data_seed",
                       on_change=ui.keep, args=("data_seed", "data_seed"))
exclude_key = f"data_exclude:{report.root}"  # per dataset, this session only
ui.bind(exclude_key, exclude_key, [], shared=False)
st.session_state[exclude_key] = [n for n in st.session_state[exclude_key] if n in names]
exclude = st.multiselect(ui.t("data.page.exclude"), names, key=exclude_key, format_func=display_of.__getitem__,
                         help=ui.t("data.page.exclude_help"), on_change=ui.keep, args=(exclude_key, exclude_key, False),
                         placeholder=ui.t("common.choose"))
out = ws.splits / report.root.name
out_text = st.text_input(ui.t("data.page.split_out"), value=str(out), help=ui.t("data.page.split_out_help"))
out = Path(out_text).expanduser()
ratios = (val_pct / 100, test_pct / 100, int(seed))
small, too_small = "refuse", []
with ui.user_errors():
    too_small = plan_split(report, *ratios, exclude=exclude)["too_small"]
if too_small:  # the user chooses; the split is never refused for a tiny class from here
    small_labels = {s: ui.t("data.page.small." + s) for s in ("leave_out", "train_only")}
    small = st.radio(ui.t("data.page.small_choice", names=", ".join(display_of[n] for n, _ in too_small)),
                     tuple(small_labels), format_func=small_labels.__getitem__, horizontal=True,
                     key="data_small_classes")
with ui.user_errors():
    plan = plan_split(report, *ratios, small=small, exclude=exclude)
    in_split = [c.name for c in listed if c.name in plan["classes"]]
    if in_split:
        preview = pd.DataFrame(counts(plan, in_split)).T[list(SPLITS)]
        preview.index = [display_of[n] for n in preview.index]
        preview.columns = [ui.t("data.split." + s) for s in SPLITS]
        preview.loc[ui.t("data.cli.total")] = preview.sum()
        st.dataframe(preview, height="content")  # every row, the total included, without an inner scroll bar
    for item in [i for i in plan["left_out"] if i["reason"] != "excluded"]:  # the exclusions are listed above
        st.info(ui.t("data.page.left_out", name=display_of[item["class"]], reason=translated(left_out_note(item, report))))
    if plan["train_only"]:
        st.caption(ui.t("data.page.train_only", names=", ".join(display_of[n] for n in plan["train_only"])))
    if plan["skipped"]:
        st.caption(ui.t("data.page.skipped", n=len(plan["skipped"])))

# A split that runs trained on is never replaced: the new one becomes the next version.
exists = (out / INFO_FILE).is_file()
used = runs_using(out, ws.runs) if exists else []
target = next_version(out) if used else out
if used:
    st.info(ui.t("data.page.in_use", out=out, n=len(used), runs=", ".join(r.name for r in used[:5]), new=target))


def do_split(force: bool) -> bool:
    st.session_state.pop("data_confirm_replace", None)
    with ui.user_errors(), st.spinner(ui.t("data.page.working")):
        info = split_dataset(report.root, target, *ratios, force=force, report=report, small=small, exclude=exclude,
                             runs_dir=ws.runs)
        ui.set_current_split(target.resolve())
        st.session_state.data_split_done = (str(out.resolve()), info["mode"], str(target.resolve()))
        return True
    return False


if st.session_state.get("data_confirm_replace") == str(out) and not used:
    st.warning(ui.t("data.page.replace_ask", out=out))
    yes, no = st.columns(2)
    if yes.button(ui.t("data.page.replace_yes"), type="primary") and do_split(force=True):
        st.rerun()
    if no.button(ui.t("data.page.replace_no")):
        st.session_state.pop("data_confirm_replace")
        st.rerun()
elif st.button(ui.t("data.page.split_button"), type="primary", key="split_button"):
    if exists and not used:
        st.session_state.data_confirm_replace = str(out)
        st.rerun()
    do_split(force=False)
done = st.session_state.get("data_split_done")
if done and done[0] == str(out.resolve()):
    written = done[2] if len(done) > 2 else done[0]
    st.success(ui.t("data.page.split_done" if written == done[0] else "data.page.split_version", out=written, mode=done[1]))

# --- 5. Augmentation preview --------------------------------------------------------------
st.header(ui.t("data.page.augment"))
a1, a2, a3 = st.columns([2, 1, 1])
preset_labels = {p: ui.t("data.preset." + p) for p in AUGMENT_PRESETS}
# the settings last used on the Training page (Start, Add to queue or Preview), when there are some
if "training_augment" in st.session_state:
    preset_labels["training"] = ui.t("training.preview_option")
preset = a1.selectbox(ui.t("data.page.preset"), list(preset_labels), index=AUGMENT_PRESETS.index("seed"),
                      format_func=preset_labels.__getitem__)
SIZES = (32, 64, 96, 128, 224)
shared_size = ui.image_size()  # the size the Model and Training pages use for this split
size = a2.selectbox(ui.t("data.page.img_size"), SIZES,
                    index=min(range(len(SIZES)), key=lambda i: abs(SIZES[i] - shared_size)))
if a3.button(ui.t("data.page.reroll")):
    st.session_state.data_aug_seed = st.session_state.get("data_aug_seed", 0) + 1
roll = st.session_state.get("data_aug_seed", 0)
if names:
    first = sample_paths(report, per_class=1, seed=roll)
    source = first[names[roll % len(names)]][0]
    if preset == "training":
        chosen = st.session_state.training_augment
        original, views = preview_settings(source, chosen["augment"], chosen["img_size"], 8, seed=roll)
    else:
        stored = decode_resized(source, size)
        original, views = stored.permute(1, 2, 0).numpy(), augment_preview(stored, preset, 8, seed=roll)
    # The original beside two rows of four: nine columns squeezed its caption letter by letter at 1,024 px.
    left, right = st.columns([1, 4])
    left.image(original, caption=ui.t("data.page.original"), width="stretch")
    for row in (views[:4], views[4:]):
        for col, img in zip(right.columns(4), row):
            col.image(img, width="stretch")

# --- 6. Image cache -----------------------------------------------------------------------
st.header(ui.t("data.page.cache"))
k1, k2 = st.columns([3, 1])
if k2.button(ui.t("data.page.cache_clear"), key="clear_cache", help=ui.t("data.page.cache_clear_help")):
    st.session_state.data_cache_freed = clear_cache(ws.cache)
k1.caption(ui.t("data.page.cache_size", size_mb=round(cache_size(ws.cache) / 2**20, 1), cap_mb=cache_cap() // 2**20))
if "data_cache_freed" in st.session_state:
    st.success(ui.t("data.page.cache_cleared", size_mb=round(st.session_state.pop("data_cache_freed") / 2**20, 1)))
