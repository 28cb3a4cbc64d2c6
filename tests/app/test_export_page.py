"""The Export page: open in both languages, export a run, show the figures, offer the zip only
for a folder that passed."""
import re

import pytest
from streamlit.testing.v1 import AppTest

from core import i18n
from core.atomic import write_json
from core.export import default_out
from tests.app.test_pages_open import KEY_LIKE, visible_texts
from tests.conftest import ROOT
from tests.unit.test_export import make_run, split_dir  # noqa: F401 - the shared split fixture


def open_page(lang: str = "en") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["lang"] = lang
    at.run()
    at.switch_page("views/export.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def downloads(at: AppTest) -> list:
    return at.get("download_button")


@pytest.mark.parametrize("lang", i18n.LANGS)
def test_export_page_opens_without_runs_in_both_languages(workspace, lang):
    at = open_page(lang)
    assert [i.value for i in at.info] == [i18n.t("export.page.no_runs", lang)]
    assert not [s for s in visible_texts(at) if KEY_LIKE.match(s.strip())]


def test_export_a_run_from_the_page_shows_the_figures_and_offers_the_zip(workspace, split_dir):  # noqa: F811
    run_dir = make_run(workspace.runs, {"preset": "simple_cnn"}, split_dir, name="20261123-101500-simple_cnn")
    at = open_page()
    assert not downloads(at)  # nothing exported yet
    at.button(key="export_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error
    assert [s.value for s in at.success] == [i18n.t("export.page.passed", "en")]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["top-1 agreement"] == "100.00%"
    assert float(metrics["max probability difference"]) <= 1e-4
    assert metrics["accuracy, PyTorch"] == metrics["accuracy, ONNX Runtime"]
    assert len(downloads(at)) == 1
    assert (default_out(run_dir) / "model.onnx").is_file()
    assert not [s for s in visible_texts(at) if KEY_LIKE.match(s.strip())]


def test_a_folder_that_failed_the_check_is_shown_in_red_without_a_download(workspace, split_dir):  # noqa: F811
    run_dir = make_run(workspace.runs, {"preset": "simple_cnn"}, split_dir, name="20261123-101500-simple_cnn")
    folder = default_out(run_dir)
    folder.mkdir(parents=True)
    problem = {"key": "export.check.agreement", "params": {"value": 0.46, "limit": 0.999}}
    write_json(folder / "export.json", {"run": run_dir.name, "created": "2026-11-23T10:15:00", "opset": 20,
                                        "passed": False, "parity": {"source": "test", "images": 100,
                                                                    "top1_agreement": 0.46, "problems": [problem]}})
    at = open_page("zh")
    assert len(at.error) == 1 and re.search(r"46\.00%", at.error[0].value)
    assert not downloads(at) and not at.success
    assert not [s for s in visible_texts(at) if KEY_LIKE.match(s.strip())]
