"""The Training page at 1,024 x 768 and 1,400 x 1,000, in English and Chinese, while a run trains
and once runs have finished: no exception, no cut-off control (tests/e2e/test_layout.py's check),
one status line for the live run, and the finished run's "more epochs" action and advice.

Screenshots: `artifacts/screenshots/layout-<lang>-<width>-training-live.png` and `-training-done.png`.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from core import i18n, runs
from tests.e2e.conftest import AppServer, make_split
from tests.e2e.streamlit_ui import click, fill_number, main, open_page, wait_idle
from tests.e2e.test_layout import LOCALES, SIZES, check


@pytest.fixture(scope="module")
def training_server(tmp_path_factory):
    """A split, one finished run whose model answers one class (its predictions rewritten so, to
    show the advice), and the app's server."""
    from core.runs import create_run
    from core.training.config import TrainConfig
    from core.training.engine import Trainer
    from core.workspace import Workspace

    base = tmp_path_factory.mktemp("training-layout")
    ws = Workspace.open(base / "workspace")
    split = make_split(ws.root, classes=3, per_class=20, size=32)
    cfg = TrainConfig(data=str(split), model={"preset": "simple_cnn"}, img_size=32, batch_size=16, epochs=2,
                      augment="light").validated()
    run_dir = create_run(cfg, ws.runs)
    Trainer(cfg, run_dir, cache_dir=ws.cache).run()
    rows = (run_dir / "predictions.csv").read_text(encoding="utf-8").splitlines()
    first = runs.read_config(run_dir)["classes"][0]
    (run_dir / "predictions.csv").write_text("\n".join(
        [rows[0]] + [re.sub(r"^([^,]*,[^,]*),[^,]*", rf"\1,{first}", r) for r in rows[1:]]) + "\n", encoding="utf-8")
    server = AppServer(ws.root, base).start()
    yield server, run_dir
    server.stop()


def test_the_training_page_fits_while_a_run_trains_and_after(training_server, open_browser):
    server, finished = training_server
    problems = []
    en = open_browser(LOCALES["en"]).new_page()
    en.set_viewport_size({"width": 1400, "height": 1000})
    open_page(en, server.url, "training")
    fill_number(en, i18n.t("training.img_size", "en"), 32)
    fill_number(en, i18n.t("training.batch_size", "en"), 16)
    fill_number(en, i18n.t("training.epochs", "en"), 300)  # trains through every screenshot below
    click(en, i18n.t("training.start", "en"))
    live = next(r for r in runs.list_runs(server.workspace / "runs") if r.id != finished.name)
    bar = main(en).locator('[data-testid="stProgress"]')
    expect(bar.filter(has_text=re.compile(r"Epoch \d+/300"))).to_have_count(1, timeout=120_000)
    assert en.locator('[data-testid="stToast"]').count() == 0
    try:
        for lang, locale in LOCALES.items():
            page = open_browser(locale).new_page()
            for width, height in SIZES:
                page.set_viewport_size({"width": width, "height": height})
                open_page(page, server.url, "training", f"?run={live.id}")
                expect(main(page).locator('[data-testid="stProgress"]')).to_have_count(1)  # one status line
                problems += check(page, "training-live", lang, width)
                open_page(page, server.url, "training", f"?run={finished.name}")
                more = i18n.t("training.more_epochs_button", lang, n=5)
                expect(main(page).get_by_role("button", name=more)).to_be_visible()
                expect(main(page).get_by_text(i18n.t("training.advice.try_balance", lang))).to_be_visible()
                problems += check(page, "training-done", lang, width)
            page.close()
    finally:
        open_page(en, server.url, "training", f"?run={live.id}")
        click(en, i18n.t("training.stop", "en"))
        wait_idle(en)
    assert not problems, "cut-off controls:\n" + "\n".join(problems)
