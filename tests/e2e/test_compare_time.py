"""Time on the Compare page in a real browser (issue 13): the curves switched to time and the
table's time columns fit a laptop and a desktop, in English and Chinese, with nothing cut off;
screenshots land in `artifacts/screenshots/compare-time-<lang>-<width>.png`."""
from __future__ import annotations

import pytest

from core import i18n
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.streamlit_ui import act, assert_no_exception, open_page, screenshot, untranslated_keys
from tests.e2e.test_layout import LOCALES, SIZES, cut_off, trained_server  # noqa: F401 - a fixture


@pytest.mark.parametrize("lang", LOCALES)
def test_curves_against_time_fit_and_are_translated(lang, trained_server, open_browser):  # noqa: F811
    page = open_browser(LOCALES[lang]).new_page()
    problems = []
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        open_page(page, trained_server.url, "compare")
        time_button = page.get_by_role("radio", name=i18n.t("compare.x_axis.time", lang), exact=True)
        act(page, time_button.click)
        assert_no_exception(page)
        assert not untranslated_keys(page)
        title = i18n.t("compare.time_axis.s", lang)  # one-epoch runs of a few seconds
        assert page.locator(".js-plotly-plot .xtitle").filter(has_text=title).count() == 2
        page.get_by_role("heading", name=i18n.t("compare.metrics", lang)).scroll_into_view_if_needed()
        screenshot(page, SCREENSHOTS / f"compare-time-{lang}-{width}.png")
        problems += [f"{width}: {what}" for what in cut_off(page)]
    page.close()
    assert not problems, "cut-off controls:\n" + "\n".join(problems)
