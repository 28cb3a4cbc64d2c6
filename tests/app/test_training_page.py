"""The Training page starts a run in the background, shows it live, and lists it when done."""
import json

import pytest
from streamlit.testing.v1 import AppTest

from core.data.demo import make_demo
from core.data.split import split_dataset
from core import runs
from core.training.jobs import registry
from tests.conftest import ROOT


@pytest.fixture
def demo_split(workspace):
    make_demo(workspace.datasets / "demo", classes=3, per_class=12, size=48, seed=0)
    split = split_dataset(workspace.datasets / "demo", workspace.splits / "demo")
    workspace.remember(current_split=str(workspace.splits / "demo"))
    return workspace


def open_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/training.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


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
    from core import i18n

    at = open_page()
    label = lambda key: i18n.t(key, "en")  # noqa: E731
    widget = lambda kind, key: next(w for w in at.get(kind) if w.label == label(key))  # noqa: E731
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
    next(b for b in at.button if b.label == label("training.start")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    [run] = runs.list_runs(demo_split.runs)
    assert registry().wait(timeout=120)
    config = runs.read_config(run.path)
    assert {k: config[k] for k in ("optimizer", "scheduler", "momentum", "nesterov", "step_size", "gamma",
                                   "early_stop_metric", "amp", "histogram_every")} == {
        "optimizer": "sgd", "scheduler": "step", "momentum": 0.8, "nesterov": True, "step_size": 2,
        "gamma": 0.5, "early_stop_metric": "val_loss", "amp": False, "histogram_every": 7}
    assert runs.read_summary(run.path)["status"] == "finished"
