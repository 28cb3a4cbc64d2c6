"""The Training page starts a run in the background, shows it live, and lists it when done."""
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import i18n, runs
from core.data.demo import make_demo
from core.data.split import split_dataset
from core.training.jobs import registry
from tests.conftest import ROOT


@pytest.fixture
def demo_split(workspace):
    make_demo(workspace.datasets / "demo", classes=3, per_class=12, size=48, seed=0)
    split_dataset(workspace.datasets / "demo", workspace.splits / "demo")
    workspace.remember(current_split=str(workspace.splits / "demo"))
    return workspace


def open_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/training.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def split_on_the_data_page(at: AppTest, dataset: Path) -> None:
    """What a person does on the Data page: type the folder, press Split."""
    at.switch_page("views/data.py").run()
    at.text_input(key="data_folder_input").set_value(str(dataset)).run()
    at.button(key="split_button").click().run()
    assert not at.exception, [e.value for e in at.exception]


def sidebar_split(at: AppTest) -> str:
    return " ".join(c.value for c in at.sidebar.caption if c.value.startswith(i18n.t("sidebar.current_split", "en"))
                    or c.value == i18n.t("sidebar.no_split", "en"))


def test_each_tab_keeps_its_own_split(workspace):
    """Tab 1 splits dataset A, tab 2 splits B: tab 1's sidebar and Training page still show A."""
    a = make_demo(workspace.datasets / "apples", classes=3, per_class=12, size=32, seed=0)
    b = make_demo(workspace.datasets / "bricks", classes=3, per_class=12, size=32, seed=1)
    tab1, tab2 = (AppTest.from_file(str(ROOT / "app.py"), default_timeout=60) for _ in range(2))
    tab1.run()
    assert sidebar_split(tab1) == i18n.t("sidebar.no_split", "en")
    split_on_the_data_page(tab1, a)
    split_a = str((workspace.splits / "apples").resolve())
    assert sidebar_split(tab1).endswith(split_a)  # at once, not after the next page
    tab2.run()
    split_on_the_data_page(tab2, b)
    split_b = str((workspace.splits / "bricks").resolve())
    assert sidebar_split(tab2).endswith(split_b)

    tab1.run()
    assert sidebar_split(tab1).endswith(split_a)
    tab1.switch_page("views/training.py").run()
    assert not tab1.exception, [e.value for e in tab1.exception]
    assert sidebar_split(tab1).endswith(split_a)
    data = next(w for w in tab1.selectbox if w.label == i18n.t("training.data", "en"))
    assert data.value == split_a
    # The workspace remembers the last split, as the default for a tab opened later.
    tab3 = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    tab3.run()
    assert sidebar_split(tab3).endswith(split_b)


def test_without_a_split_the_page_says_where_to_make_one(workspace):
    at = open_page()
    assert any("Data" in i.value for i in at.info)


def test_start_a_one_epoch_run_and_see_its_charts(demo_split):
    at = open_page()
    at.number_input[0].set_value(32)   # image size
    at.number_input[1].set_value(8)    # batch size
    at.number_input[2].set_value(1)    # epochs
    next(b for b in at.button if "Start" in b.label).click().run()
    assert not at.exception, [e.value for e in at.exception]
    [run] = runs.list_runs(demo_split.runs)
    assert at.query_params["run"] == run.id
    assert registry().wait(timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    summary = runs.read_summary(run.path)
    assert summary["status"] == "finished", summary
    charts = at.get("plotly_chart")
    assert len(charts) >= 3
    figures = [json.loads(c.proto.spec) for c in charts]
    assert any(trace.get("y") for fig in figures for trace in fig["data"])
    assert run.id in at.dataframe[0].value.iloc[:, 0].tolist()


def test_every_setting_of_the_form_reaches_the_run_config(demo_split):
    """The optimizer, schedule and early-stopping details under 'More settings' are not lost."""
    at = open_page()
    label = lambda key: i18n.t(key, "en")
    widget = lambda kind, key: next(w for w in at.get(kind) if w.label == label(key))
    widget("number_input", "training.img_size").set_value(32)
    widget("number_input", "training.batch_size").set_value(8)
    widget("number_input", "training.epochs").set_value(1)
    widget("selectbox", "training.optimizer").set_value("sgd")
    widget("selectbox", "training.scheduler").set_value("step")
    widget("number_input", "training.momentum").set_value(0.8)
    widget("checkbox", "training.nesterov").check()
    widget("number_input", "training.step_size").set_value(2)
    widget("number_input", "training.gamma").set_value(0.5)
    widget("selectbox", "training.early_stop_metric").set_value("val_loss")
    widget("checkbox", "training.amp").uncheck()
    widget("number_input", "training.histogram_every").set_value(7)
    widget("selectbox", "training.frozen_bn").set_value("train")
    next(b for b in at.button if b.label == label("training.start")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    [run] = runs.list_runs(demo_split.runs)
    assert registry().wait(timeout=120)
    config = runs.read_config(run.path)
    assert {k: config[k] for k in ("optimizer", "scheduler", "momentum", "nesterov", "step_size", "gamma",
                                   "early_stop_metric", "amp", "histogram_every", "frozen_bn")} == {
        "optimizer": "sgd", "scheduler": "step", "momentum": 0.8, "nesterov": True, "step_size": 2,
        "gamma": 0.5, "early_stop_metric": "val_loss", "amp": False, "histogram_every": 7, "frozen_bn": "train"}
    assert runs.read_summary(run.path)["status"] == "finished"


def test_custom_augmentation_schedule_and_normalisation_reach_the_run_config(demo_split):
    """The settings under 'More settings': augmentation of one's own (with its preview, also on
    the Data page), the plateau's metric and patience, the second phase's own schedule, typed
    normalisation and TensorBoard's batch scalars."""
    from core.data.augment import settings

    at = open_page()
    label = lambda key: i18n.t(key, "en")
    widget = lambda kind, key: next(w for w in at.get(kind) if w.label == label(key))
    widget("number_input", "training.img_size").set_value(32)
    widget("number_input", "training.batch_size").set_value(8)
    widget("number_input", "training.epochs").set_value(2)
    widget("selectbox", "training.augment").set_value("custom")
    widget("number_input", "training.aug.resize").set_value(40)
    widget("selectbox", "training.aug.crop").set_value("center")
    widget("number_input", "training.aug.eval_resize").set_value(40)
    widget("number_input", "training.aug.rotation").set_value(10.0)
    widget("number_input", "training.aug.vflip").set_value(0.5)
    widget("number_input", "training.aug.hue").set_value(0.1)
    widget("text_input", "training.aug.order").set_value("vflip, affine")
    widget("selectbox", "training.normalization").set_value("custom")
    widget("selectbox", "training.scheduler").set_value("plateau")
    widget("selectbox", "training.plateau_metric").set_value("val_loss")
    widget("number_input", "training.plateau_patience").set_value(3)
    widget("number_input", "training.gamma").set_value(0.5)
    widget("number_input", "training.freeze_epochs").set_value(1)
    widget("number_input", "training.phase2_lr").set_value(1e-4)
    widget("number_input", "training.phase2_step_size").set_value(1)
    widget("number_input", "training.phase2_gamma").set_value(0.2)
    widget("checkbox", "training.phase2_from_best").check()
    widget("number_input", "training.tensorboard_batch_every").set_value(7)
    next(b for b in at.button if b.label == label("training.preview")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("image")) == 9 and not runs.list_runs(demo_split.runs)  # a preview trains nothing

    next(b for b in at.button if b.label == label("training.start")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    [run] = runs.list_runs(demo_split.runs)
    assert registry().wait(timeout=120)
    config = runs.read_config(run.path)
    want = {"resize": 40, "crop": "center", "eval_resize": 40, "rotation": 10.0, "vflip": 0.5, "hue": 0.1,
            "order": ["vflip", "affine"]}
    # the other fields hold what the recipe suggested for this fresh split filled in
    from core import recipes

    suggested = recipes.load("auto", demo_split.splits / "demo").config(demo_split.splits / "demo").augment
    assert config["augment"] == settings(suggested | want, 32)
    assert config["normalization"] == {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.201]}
    assert config["mean"] == [0.4914, 0.4822, 0.4465]
    assert {k: config[k] for k in ("scheduler", "plateau_metric", "plateau_patience", "gamma", "freeze_epochs",
                                   "phase2_lr", "phase2_step_size", "phase2_gamma", "phase2_from_best",
                                   "tensorboard_batch_every")} == {
        "scheduler": "plateau", "plateau_metric": "val_loss", "plateau_patience": 3, "gamma": 0.5,
        "freeze_epochs": 1, "phase2_lr": 1e-4, "phase2_step_size": 1, "phase2_gamma": 0.2,
        "phase2_from_best": True, "tensorboard_batch_every": 7}
    assert runs.read_summary(run.path)["status"] == "finished"

    # the Data page's augmentation preview can show the settings just used
    at.switch_page("views/data.py").run()
    at.text_input(key="data_folder_input").set_value(str(demo_split.datasets / "demo")).run()
    preset = next(s for s in at.selectbox if s.label == i18n.t("data.page.preset", "en"))
    assert "training" in preset.options or label("training.preview_option") in preset.options
    preset.set_value("training").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [len(img.proto.imgs) for img in at.get("image")][-9:] == [1] * 9


# --- course recipes, and the prediction grid of a finished run --------------------------------

def form_widgets(at: AppTest) -> dict:
    """The form's widgets by key."""
    kinds = ("selectbox", "number_input", "text_input", "checkbox")
    return {w.key: w for kind in kinds for w in at.get(kind) if str(w.key or "").startswith("train_")}


def numbers(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def shows_config(at: AppTest, cfg) -> None:
    """Every field of the form holds `cfg`'s value: each TrainConfig field the page has (all but
    the data, which stays the user's, and log_every), the model with its starting weights, each
    augmentation setting and the normalisation."""
    import dataclasses

    from core.data.augment import settings
    from core.training.config import TrainConfig

    w = form_widgets(at)
    for f in dataclasses.fields(TrainConfig):
        if f.name == "nproc" and "train_nproc" not in w:  # offered only with several cores or GPUs
            continue
        if f.name not in ("data", "model", "augment", "normalization", "log_every"):
            assert w[f"train_{f.name}"].value == getattr(cfg, f.name), f.name
    backbone = f"{cfg.model.get('backbone')} ({i18n.t('training.backbone', 'en')})"
    assert w["train_model"].value == cfg.model.get("preset", backbone)
    assert w["train_weights"].value == ("pretrained" if cfg.model.get("pretrained") else "model")
    assert w["train_augment"].value == "custom"
    for name, value in settings(cfg.augment, cfg.img_size).items():
        shown = w[f"train_aug_{name}"].value
        if name == "order":
            assert [op.strip() for op in shown.split(",")] == value
        elif name in ("scale", "ratio"):
            assert numbers(shown) == value
        else:
            assert shown == value, name
    if isinstance(cfg.normalization, str):
        assert w["train_normalization"].value == cfg.normalization
    else:
        assert w["train_normalization"].value == "custom"
        assert (numbers(w["train_norm_mean"].value), numbers(w["train_norm_std"].value)) == (
            cfg.normalization["mean"], cfg.normalization["std"])


def grid_captions(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith((":green[", ":red["))]


def test_a_recipe_fills_every_field_a_changed_field_reaches_the_run_and_its_grid_shows(demo_split):
    from core import recipes
    from core.training.config import TrainConfig

    at = open_page()
    split = str(demo_split.splits / "demo")
    course = [n for n in recipes.names() if (recipes.FOLDER / f"{n}.json").is_file()]
    assert "fast_cifar10" in course
    for name in sorted(course, key=lambda n: n == "fast_cifar10"):  # the fast one last: it is started
        at.selectbox(key="train_recipe").set_value(name).run()
        assert not at.exception, [e.value for e in at.exception]
        shows_config(at, recipes.load(name).config(split))
        assert any(e.label == recipes.load(name).title("en") for e in at.expander)
    # fast_cifar10 is chosen (its BatchNorm-bias rate, test-time augmentation, layout): change one field, start
    form_widgets(at)["train_epochs"].set_value(1)
    next(b for b in at.button if b.label == i18n.t("training.start", "en")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    [run] = runs.list_runs(demo_split.runs)
    assert registry().wait(timeout=120)
    assert TrainConfig.of_run(runs.read_config(run.path)).to_dict() == recipes.load("fast_cifar10").config(
        split, epochs=1).to_dict()
    assert runs.read_summary(run.path)["status"] == "finished"

    # the finished run's prediction grid: its test images, green when right, red when wrong
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    import csv

    with (run.path / "predictions.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    names = runs.read_config(run.path)["classes"]
    name = lambda v: v if v in names else names[int(v)]
    expected = sorted(f":{'green' if name(r['pred']) == name(r['true']) else 'red'}"
                      f"[{name(r['pred'])} ({name(r['true'])}) · {float(r['confidence']):.1%}]" for r in rows)
    assert 0 < len(rows) <= 12 and sorted(grid_captions(at)) == expected


def test_missing_pretrained_weights_are_said_and_a_local_file_trains(demo_split, tmp_path, monkeypatch):
    """Offline, without the weights: the page says so and offers a local file or training from
    scratch; Start still starts (the run then says why it could not load them); a local weights
    file trains; nothing blocks."""
    import urllib.error
    import urllib.request

    import torch
    from torchvision import models as tvm

    from core.models import weights_cache_path

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, timeout=None):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    at = open_page()
    at.selectbox(key="train_recipe").set_value("flowers102_transfer").run()
    assert not at.exception, [e.value for e in at.exception]
    [warning] = [w.value for w in at.warning if "resnet18" in w.value]
    assert str(weights_cache_path("resnet18")) in warning
    w = form_widgets(at)
    assert {i18n.t("recipes.page.weights.file", "en"), i18n.t("recipes.page.weights.scratch", "en")} <= set(
        w["train_weights"].options)
    w["train_img_size"].set_value(32)
    w["train_batch_size"].set_value(8)
    w["train_epochs"].set_value(2)
    w["train_freeze_epochs"].set_value(1)
    start = lambda: next(b for b in at.button if b.label == i18n.t("training.start", "en")).click().run()
    start()
    assert registry().wait(timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    [failed] = runs.list_runs(demo_split.runs)
    assert runs.read_summary(failed.path)["message_key"] == "models.pretrained_unavailable"
    assert any("resnet18" in e.value and "scratch" in e.value for e in at.error)

    weights = tmp_path / "resnet18.pth"
    torch.save(tvm.resnet18(weights=None).state_dict(), weights)
    form_widgets(at)["train_weights"].set_value("file")
    form_widgets(at)["train_weights_file"].set_value(str(weights))
    start()
    assert not at.exception, [e.value for e in at.exception]
    assert registry().wait(timeout=120)
    trained = next(r for r in runs.list_runs(demo_split.runs) if r.id != failed.id)
    assert runs.read_summary(trained.path)["status"] == "finished"
    config = runs.read_config(trained.path)
    assert config["model"] == {"backbone": "resnet18", "weights_path": str(weights)}
    assert config["freeze_epochs"] == 1 and config["phase2_from_best"] is True and config["augment"]["resize"] == 96

    # with the weights in the cache, the page says they are there
    weights_cache_path("resnet18").parent.mkdir(parents=True, exist_ok=True)
    weights_cache_path("resnet18").write_bytes(weights.read_bytes())
    at.selectbox(key="train_recipe").set_value("flowers_resnet18_cbam").run()
    assert not [w for w in at.warning if "resnet18" in w.value]
    assert any(i18n.t("recipes.page.weights_cached", "en", name="resnet18") in c.value for c in at.caption)


# --- Issue 14: the run's phase, resume in place, dashes, more epochs, class balance, advice ----
import threading

from core.training import engine
from tests.unit.test_training_core import TINY


@pytest.fixture
def quiet_registry():
    """The app's process-wide registry, left with nothing queued or running after the test."""
    yield registry()
    jobs = registry()
    for run_id in jobs.queued() + [jobs.active()]:
        if run_id:
            jobs.stop(run_id)
    assert jobs.wait(timeout=120)


def trained(ws, epochs: int = 1, stop_after: int | None = None, **changes) -> Path:
    """A run trained right here (tiny model), finished or stopped after `stop_after` epochs."""
    from core.runs import create_run
    from core.training.config import TrainConfig
    from tests.unit.test_training_core import stop_after_epoch

    cfg = TrainConfig(data=str(ws.splits / "demo"), model=TINY, img_size=32, batch_size=8, epochs=epochs,
                      augment="light", **changes).validated()
    run_dir = create_run(cfg, ws.runs)
    engine.Trainer(cfg, run_dir, cache_dir=ws.cache, **(stop_after_epoch(stop_after) if stop_after else {})).run()
    return run_dir


def watch_run(at: AppTest, run_id: str) -> None:
    box = next(s for s in at.selectbox if s.label == i18n.t("training.watch", "en"))
    box.set_value(run_id).run()
    assert not at.exception, [e.value for e in at.exception]


def progress_texts(at: AppTest) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def epoch_points(at: AppTest) -> list[list]:
    """The x values of the per-epoch curves on the page."""
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return [trace.get("x") for fig in figures for trace in fig["data"] if trace.get("mode") == "lines+markers"]


def test_start_shows_one_line_saying_what_the_run_does(demo_split, quiet_registry, monkeypatch):
    """Issue 14: a 'Queued' toast, a bar and 'Waiting for the first steps' at once, then seconds
    with no word: now one line that names the phase (here: caching the images, with counts)."""
    release = threading.Event()
    real = engine.load_data

    def slow_cache(cfg, cache_dir, on_caching=None):
        on_caching("train", 1200, 3000)
        release.wait(60)
        return real(cfg, cache_dir, on_caching)

    monkeypatch.setattr(engine, "load_data", slow_cache)
    at = open_page()
    for i, value in enumerate((32, 8, 1)):  # image size, batch size, epochs
        at.number_input[i].set_value(value)
    next(b for b in at.button if b.label == i18n.t("training.start", "en")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.toast  # the page itself says what happens
    [run] = runs.list_runs(demo_split.runs)
    from tests.unit.test_training_jobs import poll
    assert poll(lambda: registry().snapshot(run.id)["progress"].get("phase") == "caching")
    at.run()
    assert progress_texts(at) == ["Caching training images: 1,200 / 3,000"]
    assert not any("Waiting" in c.value for c in at.caption)
    release.set()
    assert registry().wait(timeout=120)
    at.run()
    assert not at.exception and progress_texts(at) == []
    assert runs.read_summary(run.path)["status"] == "finished"


def test_resume_goes_first_says_behind_whom_and_keeps_the_curves(demo_split, quiet_registry, monkeypatch):
    """Issue 14: after Stop, Resume put the run behind a queued one, and its curves vanished."""
    stopped = trained(demo_split, epochs=3, stop_after=1, name="stopped")
    release = threading.Event()
    real_loop = engine.Trainer._loop

    def held(self):
        if self.cfg.name == "busy":
            release.wait(60)
        return real_loop(self)

    monkeypatch.setattr(engine.Trainer, "_loop", held)
    jobs = registry()
    cfg = runs.read_config(stopped)
    from core.training.config import TrainConfig
    base = TrainConfig.of_run(cfg)
    busy = jobs.submit(dataclasses_replace(base, name="busy", epochs=1), demo_split.runs, demo_split.cache)
    waiting = jobs.submit(dataclasses_replace(base, name="waiting", epochs=1), demo_split.runs, demo_split.cache)
    at = open_page()
    watch_run(at, stopped.name)
    assert epoch_points(at) and all(x == [1] for x in epoch_points(at))
    at.button(key="resume").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert jobs.queued() == [stopped.name, waiting]  # next in line, before the run queued earlier
    assert progress_texts(at) == [f"Queued: starts when {busy} finishes"]
    at.run()  # the live parts draw it again: the curves so far stay
    assert epoch_points(at) and all(x == [1] for x in epoch_points(at))
    release.set()
    assert jobs.wait(timeout=120)
    assert [r["epoch"] for r in runs.read_metrics(stopped, "epoch")] == [1, 2, 3]


def dataclasses_replace(cfg, **changes):
    import dataclasses

    return dataclasses.replace(cfg, **changes)


def test_unfinished_runs_show_a_dash_and_percentages_one_way(demo_split):
    """Issue 14: 'None' in the accuracy columns of runs without those figures yet."""
    finished = trained(demo_split)
    stopped = trained(demo_split, epochs=3, stop_after=1)
    at = open_page()
    table = at.dataframe[0].value.set_index(i18n.t("training.col.run", "en"))
    best, test = i18n.t("training.col.best_val", "en"), i18n.t("training.col.test", "en")
    summary = runs.read_summary(finished)
    assert table.loc[finished.name, best] == f"{summary['best_val_acc']:.1%}"
    assert table.loc[finished.name, test] == f"{summary['test_acc']:.1%}"
    assert table.loc[stopped.name, test] == "–"
    assert "None" not in table.to_string() and "nan" not in table.to_string()


def test_train_more_epochs_from_the_page(demo_split, quiet_registry):
    run_dir = trained(demo_split, epochs=1)
    at = open_page()
    watch_run(at, run_dir.name)
    at.number_input(key="more_epochs_n").set_value(2).run()
    button = at.button(key="more_epochs")
    assert button.label == "Train 2 more epochs"
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert registry().wait(timeout=120)
    at.run()
    summary = runs.read_summary(run_dir)
    assert summary["status"] == "finished" and summary["epochs_done"] == 3
    assert [r["epoch"] for r in runs.read_metrics(run_dir, "epoch")] == [1, 2, 3]
    table = at.dataframe[0].value.set_index(i18n.t("training.col.run", "en"))
    assert table.loc[run_dir.name, i18n.t("training.col.epochs", "en")] == "3/3"
    assert all(x == [1, 2, 3] for x in epoch_points(at))


def unbalanced_split(ws) -> Path:
    source = make_demo(ws.datasets / "uneven", classes=3, per_class=24, size=32, seed=0)
    for folder, keep in zip(sorted(p for p in source.iterdir() if p.is_dir()), (24, 8, 5)):
        for extra in sorted(folder.iterdir())[keep:]:
            extra.unlink()
    split_dataset(source, ws.splits / "uneven")
    ws.remember(current_split=str(ws.splits / "uneven"))
    return ws.splits / "uneven"


def test_class_weights_are_proposed_for_an_unbalanced_split(workspace, quiet_registry):
    from core.training.balance import part_counts

    split = unbalanced_split(workspace)
    counts = part_counts(split)
    at = open_page()
    balance = at.selectbox(key="train_balance")
    assert balance.value == "weights"
    ratio = f"{max(counts.values()) / min(counts.values()):.1f}:1"
    assert any(ratio in c.value and "class weights" in c.value for c in at.caption)
    for i, value in enumerate((32, 8, 1)):
        at.number_input[i].set_value(value)
    next(b for b in at.button if b.label == i18n.t("training.start", "en")).click().run()
    assert registry().wait(timeout=120)
    [run] = runs.list_runs(workspace.runs)
    assert runs.read_config(run.path)["balance"] == "weights"


def test_no_balancing_is_proposed_for_an_even_split(demo_split):
    at = open_page()
    assert at.selectbox(key="train_balance").value == "none"
    assert any("within 3:1" in c.value for c in at.caption)


def test_a_model_answering_one_class_is_warned_on_the_training_page(demo_split):
    run_dir = trained(demo_split)
    rows = (run_dir / "predictions.csv").read_text(encoding="utf-8").splitlines()
    classes = runs.read_config(run_dir)["classes"]
    collapsed = [rows[0]] + [",".join([r.split(",")[0], r.split(",")[1], classes[0], "0.9", "0.5"]) for r in rows[1:]]
    (run_dir / "predictions.csv").write_text("\n".join(collapsed) + "\n", encoding="utf-8")
    at = open_page()
    watch_run(at, run_dir.name)
    [warning] = [w.value for w in at.warning]
    assert f"“{classes[0]}” for 100%" in warning and i18n.t("training.advice.try_balance", "en") in warning


def test_new_training_texts_in_chinese(demo_split, quiet_registry):
    run_dir = trained(demo_split)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = "zh"
    at.run()
    at.switch_page("views/training.py").run()  # it watches the newest run, this one
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["run"] == run_dir.name
    assert at.selectbox(key="train_balance").label == i18n.t("training.balance", "zh")
    assert at.button(key="more_epochs").label == i18n.t("training.more_epochs_button", "zh", n=5)
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = {f["layout"]["xaxis"].get("title", {}).get("text") for f in figures}
    assert titles == {i18n.t("training.chart.epoch", "zh"), i18n.t("training.chart.step", "zh")}


def test_a_fresh_split_starts_from_the_suggested_recipe_with_its_reasons(demo_split, quiet_registry, monkeypatch):
    """Issue 14: for a split no run has used, the page proposes the auto recipe, says why, and a
    first Start trains with it; once the split has a run, a new visit starts from no recipe."""
    from core import recipes
    from core.recipes import auto
    from core.training.config import TrainConfig

    monkeypatch.setattr(auto, "measured_speed", lambda *a, **k: 500.0)
    split = str(demo_split.splits / "demo")
    suggested = recipes.load("auto", split)
    at = open_page()
    assert at.selectbox(key="train_recipe").value == "auto"
    why = " ".join(i18n.t(r["key"], "en", **r["params"]) for r in suggested.reasons)
    caption = i18n.t("recipes.page.suggested_for", "en", reasons=why)
    assert caption in [c.value for c in at.caption]
    assert "36 photos, 3 classes" in caption and "500 images/s" in caption
    w = form_widgets(at)
    assert (w["train_epochs"].value, w["train_img_size"].value, w["train_label_smoothing"].value) == (
        suggested.settings["epochs"], suggested.settings["img_size"], 0.1)
    w["train_epochs"].set_value(1)  # the user may change anything
    next(b for b in at.button if b.label == i18n.t("training.start", "en")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    [run] = runs.list_runs(demo_split.runs)
    assert registry().wait(timeout=120)
    assert TrainConfig.of_run(runs.read_config(run.path)).to_dict() == suggested.config(split, epochs=1).to_dict()
    assert runs.read_summary(run.path)["status"] == "finished"
    again = open_page()
    assert again.selectbox(key="train_recipe").value == "none"


def test_processes_are_offered_with_several_cores_and_train_under_torchrun(demo_split, monkeypatch):
    """'Processes / GPUs' shows where there is more than one core or GPU; 2 trains the run in two
    processes (torchrun) whose records reach the page's run as a one-process run's do."""
    from core.training import distributed

    label = i18n.t("training.nproc", "en")
    monkeypatch.setattr(distributed, "max_processes", lambda: 1)
    assert not [w for w in open_page().number_input if w.label == label]
    monkeypatch.setattr(distributed, "max_processes", lambda: 2)
    at = open_page()
    widget = lambda kind, key: next(w for w in at.get(kind) if w.label == i18n.t(key, "en"))
    widget("number_input", "training.img_size").set_value(32)
    widget("number_input", "training.batch_size").set_value(8)
    widget("number_input", "training.epochs").set_value(1)
    widget("number_input", "training.nproc").set_value(2)
    next(b for b in at.button if b.label == i18n.t("training.start", "en")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    [run] = runs.list_runs(demo_split.runs)
    assert registry().wait(timeout=120)
    summary = runs.read_summary(run.path)
    assert runs.read_config(run.path)["nproc"] == 2 and summary["status"] == "finished"
    assert summary["device"].startswith("2 × ") and runs.read_metrics(run.path, "epoch")
    assert [r["epoch"] for r in registry().snapshot(run.id)["records"] if r["type"] == "epoch"] == [1]
