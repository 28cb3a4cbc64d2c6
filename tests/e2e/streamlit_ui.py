"""Driving a Streamlit page from Playwright the way a person does: by visible labels.

Streamlit reruns the script after every interaction; `wait_idle` waits for that rerun to end
(the app root carries `data-test-script-state`), so checks never race a half-drawn page.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from playwright.sync_api import BrowserContext, Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from core import i18n

PAGES = ("data", "model", "training", "compare", "explain")
EXCEPTION = '[data-testid="stException"]'
SIDEBAR_WIDGET = '[data-testid="stSidebar"] [data-testid="stSelectbox"]'  # app.py's language choice
KEY_LIKE = re.compile(r"\b[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+\b")
FILE_SUFFIXES = {"json", "jsonl", "csv", "pt", "pth", "py", "jpg", "jpeg", "png", "zip", "txt", "toml", "md"}


# Installed in every tab (see conftest): counts the script runs the app has started, so an
# action can wait for *its* rerun instead of guessing how long the browser takes to send it.
COUNT_RUNS = """
window.__stRuns = 0;
new MutationObserver(records => {
  for (const r of records) {
    if (r.target.getAttribute && r.target.getAttribute('data-test-script-state') === 'running'
        && r.oldValue !== 'running') window.__stRuns += 1;
  }
}).observe(document, {attributes: true, attributeOldValue: true, subtree: true,
                      attributeFilter: ['data-test-script-state']});
"""


# Toasts vanish after a few seconds; installed in a tab (`page.add_init_script`), this keeps
# the text of every toast the tab has shown, so a slow check cannot miss one.
RECORD_TOASTS = """
window.__stToasts = [];
new MutationObserver(() => {
  for (const t of document.querySelectorAll('[data-testid="stToast"]')) {
    const text = (t.innerText || '').trim();
    if (text && !window.__stToasts.includes(text)) window.__stToasts.push(text);
  }
}).observe(document, {childList: true, subtree: true, characterData: true});
"""


def toasts_seen(page: Page) -> list[str]:
    """Texts of the toasts shown in `page` since it loaded (needs RECORD_TOASTS installed)."""
    return page.evaluate("() => window.__stToasts || []")


def runs_started(page: Page) -> int:
    return page.evaluate("() => window.__stRuns || 0")


def wait_idle(page: Page, timeout: float = 60_000, settle_ms: int = 300, after: int | None = None) -> None:
    """Wait until the script runs triggered by the last action have finished.

    With `after` (a `runs_started` count taken before the action), first wait up to 5 s for a
    new run to start. `st.rerun()` chains runs with a short idle gap between them, so the app
    must also stay idle for `settle_ms` to count as finished.
    """
    idle = '[data-testid="stApp"][data-test-script-state="notRunning"]'
    deadline = time.monotonic() + timeout / 1000
    if after is not None:
        try:
            page.wait_for_function(f"() => (window.__stRuns || 0) > {after}", timeout=5_000, polling=50)
        except PlaywrightTimeout:
            pass  # the action did not rerun the script (or the run was over before we looked)
    while True:
        page.wait_for_selector(idle, state="attached", timeout=max(1.0, deadline - time.monotonic()) * 1000)
        page.wait_for_timeout(settle_ms)
        if page.locator(idle).count() == 1 or time.monotonic() > deadline:
            return


def wait_drawn(page: Page, timeout: float = 120_000) -> None:
    """After loading a URL: wait until app.py has drawn its sidebar, then for the run to end.

    Just after a load the app reads "not running" before its first run has even started, so
    waiting for idle alone can return before anything is drawn (a busy machine showed it).
    """
    expect(page.locator(SIDEBAR_WIDGET).first).to_be_visible(timeout=timeout)
    wait_idle(page, timeout=timeout)


def open_app(context: BrowserContext, base_url: str) -> Page:
    """A new tab on the app's home page, as a person opens it, once the first run has ended."""
    page = context.new_page()
    page.goto(base_url)
    wait_drawn(page)
    return page


def open_page(page: Page, base_url: str, name: str, query: str = "") -> None:
    """Load page `name` by its URL, as a bookmark does (`/data` leads to the Data page at the root)."""
    page.goto(f"{base_url}/{name}{query}")
    wait_drawn(page)
    dialogs = page.locator('[data-testid="stDialog"]')
    assert dialogs.count() == 0, f"a dialog opened on {page.url}: {dialogs.first.inner_text()}"


def go_to(page: Page, title: str) -> None:
    """Change page with the sidebar's menu, as a person does: the tab keeps its session."""
    before = runs_started(page)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click()
    wait_idle(page, after=before)


def exceptions(page: Page) -> list[str]:
    return [box.inner_text() for box in page.locator(EXCEPTION).all()]


def assert_no_exception(page: Page) -> None:
    found = exceptions(page)
    assert not found, f"Streamlit exception on {page.url}:\n" + "\n---\n".join(found)


@lru_cache(maxsize=1)
def _key_prefixes() -> frozenset[str]:
    return frozenset(key.split(".")[0] for key in i18n.table())


def untranslated_keys(page: Page) -> list[str]:
    """Dotted translation-key-like words on screen (a missing entry shows its key)."""
    text = page.locator('[data-testid="stApp"]').inner_text()
    found = []
    for word in KEY_LIKE.findall(text):
        head, *_, tail = word.split(".")
        if head in _key_prefixes() and tail not in FILE_SUFFIXES:
            found.append(word)
    return found


def screenshot(page: Page, path: Path, max_height: int = 4000) -> Path:
    """The whole page: Streamlit scrolls inside its main block, so the window grows to fit it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], [data-testid=stAppViewContainer]')]"
        ".map(e => e.scrollHeight), window.innerHeight)"
    )
    page.set_viewport_size({"width": size["width"], "height": min(int(height), max_height)})
    page.wait_for_timeout(300)  # let charts re-layout to the new size
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
    return path


def main(page: Page) -> Locator:
    return page.locator('[data-testid="stMain"]')


def text_input(page: Page, label: str, value: str) -> None:
    """Type into a text input and commit it with Enter, as a user does."""
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    before = runs_started(page)
    box.press("Enter")
    wait_idle(page, after=before)


def act(page: Page, action: Callable[[], object]) -> None:
    """Do `action` (a click, a key press...) and wait for the rerun it causes to finish."""
    before = runs_started(page)
    action()
    wait_idle(page, after=before)


def click(page: Page, label: str, index: int = 0) -> None:
    before = runs_started(page)
    page.get_by_role("button", name=label, exact=True).nth(index).click()
    wait_idle(page, after=before)


def upload(page: Page, label: str, files: Path | list[Path]) -> None:
    """Give files to the `st.file_uploader` whose label is `label`."""
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text=label)
    before = runs_started(page)
    uploader.locator('input[type="file"]').set_input_files(files if isinstance(files, list) else [files])
    wait_idle(page, after=before)


def select(page: Page, label: str, option: str, rerun: bool = True) -> None:
    """Choose `option` in the selectbox labelled `label` (inside a form: `rerun=False`)."""
    box = page.get_by_role("combobox", name=label, exact=True)
    box.click()
    # The list is virtualised (only the options in view exist): typing filters it to the option.
    box.press_sequentially(option)
    before = runs_started(page)
    page.get_by_role("option", name=option, exact=True).click()
    if rerun:
        wait_idle(page, after=before)


def fill_number(page: Page, label: str, value: float) -> None:
    """Set a number input inside a form (Tab, not Enter, which would submit the form)."""
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")


def chart_points(page: Page, title: str) -> int:
    """How many points the first trace of the Plotly chart titled `title` shows now."""
    return page.evaluate(
        """title => {
          for (const g of document.querySelectorAll('.js-plotly-plot')) {
            const t = g.layout && g.layout.title;
            const text = typeof t === 'string' ? t : (t && t.text) || '';
            if (text.includes(title) && g.data && g.data.length) return (g.data[0].x || []).length;
          }
          return -1;
        }""",
        title,
    )


def plotly_traces(page: Page, trace_type: str) -> int:
    """Number of Plotly charts on the page that hold a trace of `trace_type` (e.g. heatmap)."""
    return page.evaluate(
        "type => [...document.querySelectorAll('.js-plotly-plot')]"
        ".filter(g => (g.data || []).some(t => t.type === type)).length",
        trace_type,
    )


def alerts(page: Page, kind: str = "error") -> list[str]:
    """Texts of `st.error` / `st.warning` / `st.success` / `st.info` boxes."""
    test_id = {"error": "stAlertContentError", "warning": "stAlertContentWarning",
               "success": "stAlertContentSuccess", "info": "stAlertContentInfo"}[kind]
    # The box's text starts with its icon (e.g. "⚠️") when the page gives one.
    return [box.inner_text().strip().split("\n\n", 1)[-1] if box.inner_text().strip()[:1] in "⚠️✅ℹ️🛠️❌"
            else box.inner_text().strip() for box in page.locator(f'[data-testid="{test_id}"]').all()]


def expect_text(page: Page, text: str, timeout: float = 30_000) -> None:
    expect(main(page).get_by_text(text).first).to_be_visible(timeout=timeout)
