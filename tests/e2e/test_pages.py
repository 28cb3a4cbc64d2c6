"""Every page opens in a real browser, in English and in Chinese: no exception box, no raw keys.

The language comes from the browser's locale (zh-CN), as it does for a Chinese-speaking user
opening the app for the first time. A full-page screenshot of each page lands in
`artifacts/screenshots/` (ignored by git).
"""
from __future__ import annotations

import pytest

from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.streamlit_ui import (
    PAGES, assert_no_exception, open_app, open_page, screenshot, untranslated_keys, wait_idle,
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
        assert page.get_by_label(LANGUAGE_LABEL[lang]).count() == 1
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
    assert page.get_by_label("Language").count() == 1, "the sidebar of app.py is missing"
    assert page.get_by_role("link", name="app").count() == 0
