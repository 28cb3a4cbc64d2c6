"""The whole journey a new user clicks through, in one browser tab, on the built-in demo set.

Data (create the demo set, check it, split it) -> Model (build a small CBAM network, save it)
-> Training (queue simple_cnn and the saved network, watch the live chart gain points)
-> Compare (both runs, metrics and confusion matrices) -> Explain (upload a photo, two
predictions and two heatmaps side by side). Every page is checked for exception boxes and
screenshotted into artifacts/screenshots/journey-*.png.
"""
from __future__ import annotations

import json
import time

import pytest

from core import i18n
from tests.e2e import bad_files
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.streamlit_ui import (
    act, alerts, assert_no_exception, chart_points, click, expect_text, fill_number, open_app, open_page,
    plotly_traces, runs_started, screenshot, select, text_input, upload, wait_idle,
)

SAVED_MODEL = "small-cbam"


def en(key: str, **params) -> str:
    return i18n.t(key, "en", **params)


def shot(page, name: str) -> None:
    assert_no_exception(page)
    screenshot(page, SCREENSHOTS / f"journey-{name}.png")


def create_and_split_demo(page, server) -> None:
    page.get_by_role("tab", name=en("data.page.tab_demo")).click()
    click(page, en("data.page.demo_button"))
    assert_no_exception(page)
    expect_text(page, en("data.page.health"))
    assert (server.workspace / "datasets" / "demo").is_dir()
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()  # class balance
    click(page, en("data.page.split_button"))
    done = [a for a in alerts(page, "success") if "demo" in a]
    assert done, alerts(page, "success") + alerts(page, "error")
    split = json.loads((server.workspace / "state.json").read_text())["current_split"]
    assert (server.workspace / "splits" / "demo" / "split.json").is_file(), split
    shot(page, "1-data")


def build_and_save_cbam(page, server) -> None:
    open_page(page, server.url, "model")
    act(page, page.get_by_text(en("models.page.mode_builder"), exact=True).click)
    click(page, en("models.page.from_cbam"))
    # Three CBAM blocks to start with: remove the last to make it small.
    remove = page.locator('[class*="st-key-block_"]').get_by_role("button", name=en("models.page.delete"))
    assert remove.count() == 3  # each block's "Remove"
    act(page, remove.nth(2).click)
    assert remove.count() == 2
    expect_text(page, en("models.page.total_params"))
    text_input(page, en("models.page.name"), SAVED_MODEL)
    click(page, en("models.page.save"))
    assert en("models.page.saved", name=SAVED_MODEL) in alerts(page, "success")
    saved = json.loads((server.workspace / "models" / f"{SAVED_MODEL}.json").read_text())
    assert [b["attention"] for b in saved["spec"]["blocks"]] == ["cbam", "cbam"]
    shot(page, "2-model")


def set_form(page, model: str, epochs: int) -> None:
    select(page, en("training.model"), model, rerun=False)
    fill_number(page, en("training.img_size"), 32)
    fill_number(page, en("training.batch_size"), 16)
    fill_number(page, en("training.epochs"), epochs)


def queue_two_runs_and_watch(page, server) -> None:
    open_page(page, server.url, "training")
    set_form(page, "simple_cnn", epochs=4)
    click(page, en("training.start"))
    set_form(page, f"💾 {SAVED_MODEL}", epochs=2)
    click(page, en("training.queue"))
    assert_no_exception(page)
    # The live chart gains points while the first run trains.
    title = en("training.chart.iter_loss")
    seen, deadline = [], time.monotonic() + 300

    def grew() -> bool:
        drawn = [n for n in seen if n > 0]
        return len(drawn) >= 2 and drawn[-1] > drawn[0]

    while time.monotonic() < deadline and not grew():
        seen.append(chart_points(page, title))
        page.wait_for_timeout(500)
    assert grew(), f"points of the live chart over time: {seen}"
    assert_no_exception(page)
    shot(page, "3-training-live")
    # Both runs finish, one after the other.
    from core.runs import list_runs

    deadline = time.monotonic() + 480  # generous: a shared 2-core machine can be slow
    while time.monotonic() < deadline:
        statuses = [r.status for r in list_runs(server.workspace / "runs")]
        if len(statuses) == 2 and all(s in ("finished", "failed", "stopped") for s in statuses):
            break
        page.wait_for_timeout(1000)
    assert statuses == ["finished", "finished"], statuses
    open_page(page, server.url, "training")
    shot(page, "3-training-done")


def compare_both(page, server) -> None:
    from core.runs import list_runs

    ids = [r.id for r in list_runs(server.workspace / "runs")]
    open_page(page, server.url, "compare")
    expect_text(page, en("compare.metrics"))
    chosen = page.locator('[data-testid="stMultiSelect"]').first.inner_text()
    assert all(rid in chosen for rid in ids), chosen  # the newest two finished runs, preselected
    assert page.locator('[data-testid="stDataFrame"]').count() >= 1
    page.locator(".js-plotly-plot").first.wait_for()
    assert plotly_traces(page, "heatmap") == 2  # one confusion matrix per run
    shot(page, "4-compare")
    # Clicking a confusion-matrix cell shows that (true, predicted) cell's images right below the matrices.
    names = sorted(p.name for p in (server.workspace / "splits" / "demo" / "test").iterdir() if p.is_dir())
    click_confusion_cell(page, true=0, pred=1)
    cell = page.locator('[class*="st-key-cell_"]').first
    cell.wait_for()
    text = cell.inner_text()
    assert f"{names[1]} (true: {names[0]})" in text.replace("\n", " "), text
    assert_no_exception(page)


def click_confusion_cell(page, true: int, pred: int) -> None:
    """Click the centre of cell (true, pred) of the first confusion matrix, where a person would."""
    page.locator(".js-plotly-plot").filter(has=page.locator(".heatmaplayer")).first.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # let the scroll settle before measuring
    x, y = page.evaluate(
        """([i, j]) => {
          const g = [...document.querySelectorAll('.js-plotly-plot')]
            .find(g => (g.data || []).some(t => t.type === 'heatmap'));
          const box = g.getBoundingClientRect(), xa = g._fullLayout.xaxis, ya = g._fullLayout.yaxis;
          return [box.left + xa._offset + xa.l2p(j), box.top + ya._offset + ya.l2p(i)];
        }""",
        [true, pred],
    )
    before = runs_started(page)
    page.mouse.click(x, y)
    wait_idle(page, after=before)


def explain_a_photo(page, server) -> None:
    photo = next((server.workspace / "splits" / "demo" / "test" / "star").iterdir())
    open_page(page, server.url, "explain")
    upload(page, en("explain.page.upload"), photo)
    assert_no_exception(page)
    assert not alerts(page, "error")
    predictions = page.locator('[data-testid="stMetric"]').filter(has_text=en("explain.page.prediction"))
    assert predictions.count() == 2
    heatmap = en("explain.page.heatmap", layer="", target="").split("·")[0].strip()
    captions = page.locator('[data-testid="stImage"]').all_inner_texts()
    assert sum(heatmap in c for c in captions) == 2, captions
    assert plotly_traces(page, "bar") >= 2  # the two top-k charts
    shot(page, "5-explain")


def test_new_user_journey(server, browser):
    page = open_app(browser, server.url)
    create_and_split_demo(page, server)
    build_and_save_cbam(page, server)
    queue_two_runs_and_watch(page, server)
    compare_both(page, server)
    explain_a_photo(page, server)
