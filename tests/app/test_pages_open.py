"""Every page opens without an exception, in both languages, with no untranslated keys."""
import re

import pytest
from streamlit.testing.v1 import AppTest

from core import i18n
from tests.conftest import ROOT

PAGES = ["views/data.py", "views/model.py", "views/training.py", "views/compare.py", "views/explain.py"]
KEY_LIKE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")


def visible_texts(at: AppTest) -> list[str]:
    texts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        texts += [str(el.value) for el in getattr(at, kind)]
    for kind in ("button", "selectbox", "text_input", "slider", "checkbox", "radio", "number_input"):
        texts += [str(el.label) for el in getattr(at, kind)]
    return texts


@pytest.mark.parametrize("lang", i18n.LANGS)
@pytest.mark.parametrize("page", PAGES)
def test_page_opens(page, lang, workspace):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = lang
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    untranslated = [s for s in visible_texts(at) if KEY_LIKE.match(s.strip())]
    assert not untranslated


def test_a_run_left_running_by_a_closed_app_shows_as_interrupted_on_any_page(workspace):
    """The app was killed mid-run: whatever page the user opens first, the run becomes interrupted."""
    from core import runs
    from core.atomic import write_json

    run_dir = workspace.runs / "20261123-090000-simple_cnn"
    run_dir.mkdir()
    write_json(run_dir / "config.json", {"name": "simple_cnn", "model": {"preset": "simple_cnn"}, "epochs": 3})
    write_json(run_dir / "summary.json", {"status": "running", "pid": 2**22 + 1, "host": "elsewhere"})
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()  # the Data page
    assert not at.exception, [e.value for e in at.exception]
    assert runs.read_summary(run_dir)["status"] == "interrupted"
