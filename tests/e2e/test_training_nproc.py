"""The Training page's "Processes / GPUs" setting (under More settings, on a machine with more
than one core or GPU) at 1,024 x 768 and 1,400 x 1,000, in English and Chinese: shown whole.

Screenshots: `artifacts/screenshots/layout-<lang>-<width>-training-more.png`.
"""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from core import i18n
from core.training.distributed import max_processes
from tests.e2e.conftest import AppServer, make_split
from tests.e2e.streamlit_ui import act, main, open_page
from tests.e2e.test_layout import LOCALES, SIZES, check


@pytest.fixture(scope="module")
def split_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("training-nproc")
    make_split(base / "workspace", classes=3, per_class=10, size=32)
    server = AppServer(base / "workspace", base).start()
    yield server
    server.stop()


def test_the_processes_setting_fits_in_more_settings(split_server, open_browser):
    if max_processes() < 2:
        pytest.skip("one core and no GPUs: the setting is not offered")
    problems = []
    for lang, locale in LOCALES.items():
        page = open_browser(locale).new_page()
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            open_page(page, split_server.url, "training")
            act(page, main(page).get_by_text(i18n.t("training.more", lang), exact=True).click)
            field = main(page).get_by_label(i18n.t("training.nproc", lang), exact=True)
            expect(field).to_be_visible()
            expect(field).to_have_value("1")
            field.scroll_into_view_if_needed()
            # this setting's own label and value (the other settings of the expander are not this test's)
            problems += [p for p in check(page, "training-more", lang, width) if i18n.t("training.nproc", lang) in p]
        page.close()
    assert not problems, "cut-off controls:\n" + "\n".join(problems)
