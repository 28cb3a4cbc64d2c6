"""Bad input through the real UI: each gets a clear message, no exception box, no stray files.

Messages are compared with the translation table's text for the expected error, so a wrong
error (or a raw traceback) fails, while rewording a message does not.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from core import i18n
from tests.e2e import bad_files
from tests.e2e.streamlit_ui import (
    alerts, assert_no_exception, click, open_app, open_page, text_input, upload,
)


def en(key: str, **params) -> str:
    return i18n.t(key, "en", **params)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad-files")


@pytest.fixture
def data_page(server, browser):
    return open_app(browser, server.url)  # Data is the home page


def tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def import_zip(page, path: Path) -> None:
    page.get_by_role("tab", name=en("data.page.tab_zip")).click()
    upload(page, en("data.page.zip"), path)
    click(page, en("data.page.zip_import"))


@pytest.mark.parametrize("make, key", [
    (bad_files.empty_zip, "data.no_classes"),
    (bad_files.zip_slip, "data.zip_unsafe"),
    (bad_files.not_a_zip, "data.zip_bad"),
])
def test_bad_zip_gets_a_message(make, key, data_page, server, files):
    page = data_page
    path = make(files / f"{make.__name__}.zip")
    before = tree(server.workspace / "datasets")
    import_zip(page, path)
    assert_no_exception(page)
    errors = alerts(page, "error")
    head = en(key, name=path.name, path="", entry="", reason="").split("{")[0][:12]
    assert any(_same_message(e, key) for e in errors), (errors, head)
    assert not bad_files.escaped_files(server.workspace, files)
    if key != "data.no_classes":  # a refused zip leaves nothing behind, not even a temp folder
        assert tree(server.workspace / "datasets") == before


def _same_message(shown: str, key: str) -> bool:
    """Does `shown` read as the English text of `key` (with any parameters filled in)?"""
    template = i18n.table()[key]["en"]
    pieces = [piece for piece in _literal_pieces(template) if len(piece) >= 4]
    return all(piece in shown for piece in pieces)


def _literal_pieces(template: str) -> list[str]:
    import string

    return [literal.strip() for literal, *_ in string.Formatter().parse(template) if literal.strip()]


def test_zip_slip_message_names_the_entry(data_page, server, files):
    import_zip(data_page, bad_files.zip_slip(files / "slip.zip"))
    assert any("../" in e or "/tmp/" in e for e in alerts(data_page, "error"))


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_bad_folder_path_gets_a_message(kind, data_page, files):
    path = files / "no-such-folder" if kind == "missing" else bad_files.small_jpeg(files / "photo.jpg")
    text_input(data_page, en("data.page.folder"), str(path))
    assert_no_exception(data_page)
    key = "data.not_found" if kind == "missing" else "data.not_folder"
    assert en(key, path=str(path)) in alerts(data_page, "error")
    assert not path.is_file() or path.stat().st_size > 0  # the user's file is left as it was


@pytest.fixture(scope="module")
def explain_server(tmp_path_factory):
    """A server whose workspace holds one trained run, so the Explain page offers its uploader."""
    from tests.e2e.conftest import AppServer, cli, make_split

    base = tmp_path_factory.mktemp("explain")
    split = make_split(base / "workspace", classes=2, per_class=15, size=24)
    cli("train", "--data", str(split), "--model", "simple_cnn", "--epochs", "1", "--img-size", "16",
        "--batch-size", "16", "--runs-dir", str(base / "workspace" / "runs"), workspace=base / "workspace")
    app = AppServer(base / "workspace", base).start()
    yield app
    app.stop()


def test_bad_photos_on_explain_page(explain_server, browser, files):
    """Each bad photo gets its message in turn; then a good photo is explained as usual."""
    page = open_app(browser, explain_server.url)
    open_page(page, explain_server.url, "explain")
    label = en("explain.page.upload")
    for make, name, key in [
        (bad_files.not_an_image, "notes.jpg", "image.not_image"),
        (bad_files.truncated_jpeg, "cut.jpg", "image.broken"),
        (bad_files.decompression_bomb, "bomb.png", "image.bomb"),
    ]:
        upload(page, label, make(files / name))
        assert_no_exception(page)
        errors = alerts(page, "error")
        assert any(_same_message(e, key) and name in e for e in errors), (name, errors)
    upload(page, label, bad_files.small_jpeg(files / "good.jpg"))
    assert_no_exception(page)
    assert not alerts(page, "error")
    assert page.locator('[data-testid="stImage"]').count() >= 2
