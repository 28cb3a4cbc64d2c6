"""Every page opens in a real browser, in English and in Chinese: no exception box, no raw keys.

The language comes from the browser's locale (zh-CN), as it does for a Chinese-speaking user
opening the app for the first time. A full-page screenshot of each page lands in
`artifacts/screenshots/` (ignored by git).
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from core import i18n
from tests.e2e.conftest import SCREENSHOTS, make_split
from tests.e2e.streamlit_ui import (
    PAGES, assert_no_exception, click, go_to, main, open_app, open_page, screenshot, text_input, untranslated_keys,
)

LOCALES = {"en": "en-US", "zh": "zh-CN"}
LANGUAGE_LABEL = {"en": "Language", "zh": "语言"}


@pytest.mark.parametrize("lang", LOCALES)
def test_every_page_opens_translated(lang, server, open_browser):
    page = open_app(open_browser(LOCALES[lang]), server.url)
    for name in PAGES:
        open_page(page, server.url, name)
        assert_no_exception(page)
        assert not untranslated_keys(page), f"{name} ({lang}) shows untranslated keys"
        # The app's own sidebar (not a bare page) in the user's language.
        expect(page.get_by_label(LANGUAGE_LABEL[lang])).to_have_count(1, timeout=60_000)
        screenshot(page, SCREENSHOTS / f"{lang}-{name}.png")


def test_bookmarked_page_on_a_fresh_server(start_server, browser):
    """A reloaded or bookmarked /training right after (re)starting the app gets the whole app.

    Streamlit treats a folder named `pages/` beside app.py as an old-style multipage app until
    app.py has called st.navigation once: a first request for a sub-page would run that page
    alone, without the sidebar. That is why the page scripts live in `views/`.
    """
    server = start_server()
    page = browser.new_page()
    open_page(page, server.url, "training")
    assert_no_exception(page)
    expect(page.get_by_label("Language")).to_have_count(1, timeout=60_000)  # the sidebar of app.py
    assert page.get_by_role("link", name="app").count() == 0


@pytest.mark.parametrize("path", ["", "data"])
def test_the_data_page_opens_at_the_root_and_at_data(path, server, browser):
    """A typed or bookmarked /data used to say "Page not found" (the default page lives at /)."""
    page = browser.new_page()
    open_page(page, server.url, path)  # fails on any dialog, "Page not found" among them
    assert_no_exception(page)
    expect(main(page).get_by_role("heading", name=i18n.t("nav.data", "en"), exact=True)).to_be_visible()
    assert not page.get_by_text("Page not found").count()


def sidebar_split(page) -> str:
    return page.locator('[data-testid="stSidebar"]').get_by_text(i18n.t("sidebar.current_split", "en")).inner_text()


def test_two_browsers_each_keep_their_own_split(start_server, open_browser, tmp_path):
    """Browser 1 splits dataset A, browser 2 splits B: browser 1 still trains on A."""
    from core.data.demo import make_demo

    workspace = tmp_path / "shared-workspace"
    make_split(workspace)  # the workspace already had a split before either came
    sources = [make_demo(workspace / "datasets" / name, classes=2, per_class=8, size=32, seed=n)
               for n, name in enumerate(("apples", "bricks"))]
    server = start_server(workspace)
    tabs = [open_app(open_browser(locale), server.url) for locale in ("en-US", "en-GB")]
    for tab, source in zip(tabs, sources):
        text_input(tab, i18n.t("data.page.folder", "en"), str(source))
        click(tab, i18n.t("data.page.split_button", "en"))
        assert_no_exception(tab)
        # the sidebar shows the new split at once
        expect(tab.locator('[data-testid="stSidebar"]')).to_contain_text(f"splits/{source.name}")
    first = tabs[0]
    go_to(first, i18n.t("nav.training", "en"))
    assert_no_exception(first)
    assert sidebar_split(first).endswith("splits/apples")
    data = first.get_by_role("combobox", name=i18n.t("training.data", "en"), exact=True)
    expect(data).to_have_value(re.compile(r"(^|/)apples$"))  # the split, shown by its folder name
