"""Every page on a laptop (1,024 x 768) and a desktop (1,400 x 1,000), in English and Chinese, on a
small trained workspace: no exception box, and no control whose words are cut off.

Cut-off words are what a person sees when a column is too narrow for its control: a button whose
text does not fit (its scrollWidth is larger than its box: "Add bl..." or an empty-looking button),
a widget label or a metric Streamlit shortens with an ellipsis ("1,147,..."), or a selectbox whose
chosen option does not fit ("CBAM (c"). Full-page screenshots land in
`artifacts/screenshots/layout-<lang>-<width>-<page>.png` for a person to look at.
"""
from __future__ import annotations

import shutil

import pytest

from core import i18n
from tests.e2e.conftest import SCREENSHOTS, AppServer
from tests.e2e.streamlit_ui import act, assert_no_exception, open_page, screenshot

LOCALES = {"en": "en-US", "zh": "zh-CN"}
SIZES = ((1024, 768), (1400, 1000))
PAGES = ("data", "model", "training", "compare", "explain", "export")

# Elements of the main area and the sidebar whose content is wider than their box. Hidden ones
# (closed expanders, other tabs) have no size and are skipped; icon-only buttons have no text.
CUT_OFF = """
() => {
  const found = [];
  const visible = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const scope = '[data-testid="stMain"], [data-testid="stSidebar"]';
  for (const root of document.querySelectorAll(scope)) {
    for (const b of root.querySelectorAll('button')) {
      const text = (b.innerText || '').trim();
      if (!visible(b) || !text) continue;
      const inner = [b, ...b.querySelectorAll('p, span, div')].filter(visible);
      if (inner.some(el => el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflow !== 'visible')
          || b.scrollWidth > b.clientWidth + 1) found.push('button: ' + text);
    }
    const texts = '[data-testid="stWidgetLabel"] p, [data-testid="stWidgetLabel"] div, '
      + '[data-testid="stMetricLabel"] p, [data-testid="stMetricValue"] p';
    for (const label of root.querySelectorAll(texts)) {
      const text = (label.innerText || '').trim();
      if (text && visible(label) && label.scrollWidth > label.clientWidth + 1) found.push('label: ' + text);
    }
    for (const box of root.querySelectorAll('[data-testid="stSelectbox"] input[role="combobox"]')) {
      if (visible(box) && box.scrollWidth > box.clientWidth + 1) found.push('choice: ' + box.value);
    }
  }
  return [...new Set(found)];
}
"""


@pytest.fixture(scope="module")
def trained_server(tmp_path_factory):
    """A workspace with a demo dataset, its split (current), two finished runs and a saved model."""
    from core.models import save_spec
    from core.workspace import Workspace
    from tests.app.test_explain_page import train_two_runs

    base = tmp_path_factory.mktemp("layout")
    split, made = train_two_runs(base / "trained")
    ws = Workspace.open(base / "workspace")
    for run in made:
        shutil.copytree(run, ws.runs / run.name)
    save_spec(ws.models, "small cbam", {"preset": "cbam_cnn"})
    ws.remember(current_split=str(split), settings={"data_folder": str(base / "trained" / "demo")})
    server = AppServer(ws.root, base).start()
    yield server
    server.stop()


def uploader_texts(page) -> list[str]:
    """What the zip uploader's button and limit line show (their text is drawn by a style)."""
    return page.evaluate("""() => {
      const box = document.querySelector('.st-key-data_zip');
      const shown = sel => getComputedStyle(box.querySelector(sel), '::after').content.replace(/^"|"$/g, '');
      return [shown('[data-testid="stFileUploaderDropzone"] button p'),
              shown('[data-testid="stFileUploaderDropzoneInstructions"] span')];
    }""")


def cut_off(page) -> list[str]:
    return page.evaluate(CUT_OFF)


def check(page, name: str, lang: str, width: int) -> list[str]:
    assert_no_exception(page)
    screenshot(page, SCREENSHOTS / f"layout-{lang}-{width}-{name}.png")
    return [f"{name}: {what}" for what in cut_off(page)]


@pytest.mark.parametrize("lang", LOCALES)
def test_every_page_fits_a_laptop_and_a_desktop(lang, trained_server, open_browser):
    context = open_browser(LOCALES[lang])
    page = context.new_page()
    problems = []
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        for name in PAGES:
            open_page(page, trained_server.url, name)
            problems += check(page, name, lang, width)
            if name == "data":  # the zip uploader's own texts, which Streamlit writes in English only
                act(page, page.get_by_role("tab", name=i18n.t("data.page.tab_zip", lang)).click)
                assert uploader_texts(page) == [i18n.t("common.upload", lang),
                                                i18n.t("common.upload_limit", lang, mb=200, kinds="ZIP")]
                problems += check(page, "data-zip", lang, width)
            if name == "model":  # the block builder is the form that broke at 1,024 px
                builder = page.get_by_text(i18n.t("models.page.mode_builder", lang), exact=True)
                act(page, builder.click)
                # each block's move and remove buttons carry words (CBAM-CNN's three blocks to start)
                blocks = page.locator('[class*="st-key-block_"]')
                for key in ("models.page.up", "models.page.down", "models.page.delete"):
                    assert blocks.get_by_role("button", name=i18n.t(key, lang)).count() == 3, key
                problems += check(page, "model-builder", lang, width)
    page.close()
    assert not problems, "cut-off controls:\n" + "\n".join(problems)


def test_a_clicked_confusion_cell_shows_its_images_below_and_stays_outlined(trained_server, browser):
    """Issue 14: a click gave no feedback near the chart and its images appeared 1,000 px below."""
    from tests.e2e.streamlit_ui import runs_started, wait_idle

    page = browser.new_page()
    page.set_viewport_size({"width": 1024, "height": 768})
    open_page(page, trained_server.url, "compare")
    matrix = page.locator(".js-plotly-plot").filter(has=page.locator(".heatmaplayer")).first
    matrix.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    x, y, cell = page.evaluate("""() => {
      const g = [...document.querySelectorAll('.js-plotly-plot')].find(g => (g.data || []).some(t => t.type === 'heatmap'));
      const z = g.data[0].z, n = z.length;
      let cell = null;
      for (let i = 0; i < n && !cell; i++) for (let j = 0; j < n; j++) if (i !== j && z[i][j] > 0) { cell = [i, j]; break; }
      const box = g.getBoundingClientRect(), xa = g._fullLayout.xaxis, ya = g._fullLayout.yaxis;
      return [box.left + xa._offset + xa.l2p(cell[1]), box.top + ya._offset + ya.l2p(cell[0]), cell];
    }""")
    before = runs_started(page)
    page.mouse.click(x, y)
    wait_idle(page, after=before)
    assert_no_exception(page)
    images = page.locator('[class*="st-key-cell_"]').first
    images.wait_for()
    per_class = page.get_by_role("heading", name=i18n.t("compare.per_class", "en"))
    assert images.bounding_box()["y"] < per_class.bounding_box()["y"]  # right under the matrices
    assert images.locator('[data-testid="stImage"]').count() > 0
    outlined = page.evaluate("""() => {
      const g = [...document.querySelectorAll('.js-plotly-plot')].find(g => (g.data || []).some(t => t.type === 'heatmap'));
      return (g.layout.shapes || []).map(s => [s.y0 + 0.5, s.x0 + 0.5]);
    }""")
    assert outlined == [cell]
    screenshot(page, SCREENSHOTS / "layout-en-1024-compare-cell.png")
    page.close()
