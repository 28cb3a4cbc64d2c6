"""The Training page starts a run in the background, shows it live, and lists it when done."""
import json

import pytest
from streamlit.testing.v1 import AppTest

from core.data.demo import make_demo
from core.data.split import split_dataset
from core.training import runs
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
