"""The Explain page with two trained runs and a chosen test photo, on a laptop (1,024 x 768) and a
desktop (1,400 x 1,000), in English and Chinese.

After a photo is picked from the thumbnails, the prediction of both runs must be on screen without
scrolling, the two run columns must start their results at the same height however long a run's
name is, no control may be cut off, and the Chinese page may show none of the page's English
texts. Screenshots land in `artifacts/screenshots/explain-<lang>-<width>.png`.
"""
from __future__ import annotations

import re
import shutil

import pytest
from PIL import Image

from core import i18n
from tests.e2e.conftest import SCREENSHOTS, AppServer
from tests.e2e.streamlit_ui import (
    act,
    assert_no_exception,
    main,
    open_page,
    screenshot,
    untranslated_keys,
    upload,
)
from tests.e2e.test_layout import cut_off

LOCALES = {"en": "en-US", "zh": "zh-CN"}
SIZES = ((1024, 768), (1400, 1000))
LONG_NAME = "cbam-r16-k7 lr 0.001 bs 64 flowers102 v2 run 3 of 5, cosine"


@pytest.fixture(scope="module")
def explain_server(tmp_path_factory):
    """Two engine-trained runs on a demo split (current), one of them with a long name."""
    from core.runs import rename_run
    from core.workspace import Workspace
    from tests.app.test_explain_page import train_two_runs

    base = tmp_path_factory.mktemp("explain-layout")
    split, made = train_two_runs(base / "trained")
    ws = Workspace.open(base / "workspace")
    copies = [shutil.copytree(run, ws.runs / run.name) for run in made]
    rename_run(copies[1], LONG_NAME)
    ws.remember(current_split=str(split))
    server = AppServer(ws.root, base).start()
    yield server, split
    server.stop()


def english_texts_of_the_page() -> set[str]:
    """The page's own English texts that differ from their Chinese (longer than a word)."""
    table = i18n.table()
    found = set()
    for key, entry in table.items():
        if key.startswith(("explain.page.", "explain.layer.")) and entry["en"] != entry.get("zh"):
            for piece in re.split(r"\{[^}]*\}", entry["en"]):
                piece = piece.strip(" .,:;()·")
                if len(piece) >= 8:
                    found.add(piece)
    return found


def uploader_texts(page) -> list[str]:
    """What the photo uploader's button and limit line show (drawn by a style, see ui.uploader_texts)."""
    return page.evaluate("""() => {
      const box = document.querySelector('.st-key-explain_upload');
      const shown = sel => getComputedStyle(box.querySelector(sel), '::after').content.replace(/^"|"$/g, '');
      return [shown('[data-testid="stFileUploaderDropzone"] button p'),
              shown('[data-testid="stFileUploaderDropzoneInstructions"] span')];
    }""")


def prediction_boxes(page, marked: bool = True) -> list[dict]:
    """Where the two runs' predictions are: the metrics whose value ends with a right/wrong mark
    (a test image), or (`marked=False`, an upload) the metrics labelled as predictions."""
    label = main(page).locator('[data-testid="stMetric"]').filter(
        has_text=re.compile("^(" + "|".join(i18n.t("explain.page.prediction", lang) for lang in i18n.LANGS) + ")"))
    metrics = label.all() if not marked else main(page).locator('[data-testid="stMetric"]').all()
    return [m.bounding_box() for m in metrics
            if not marked or m.locator('[data-testid="stMetricValue"]').inner_text().strip().endswith(("✅", "❌"))]


@pytest.mark.parametrize("lang", LOCALES)
def test_a_chosen_photos_predictions_fit_the_screen_in_both_languages(lang, explain_server, open_browser, tmp_path):
    from core.data.split import split_images

    server, split = explain_server
    third = split_images(split)[2][0].name
    page = open_browser(LOCALES[lang]).new_page()
    problems = []
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        open_page(page, server.url, "explain")  # the upload box first: its own texts in the page's language
        assert uploader_texts(page) == [i18n.t("common.upload", lang), i18n.t(
            "common.upload_limit", lang, mb=200, kinds="JPG, PNG, WEBP")]
        screenshot(page, SCREENSHOTS / f"explain-{lang}-{width}-empty.png")
        problems += [f"{width} empty: {what}" for what in cut_off(page)]
        act(page, main(page).get_by_text(i18n.t("explain.page.source_test", lang), exact=True).click)
        act(page, main(page).locator('[data-testid="stExpander"] summary').first.click)
        grid = main(page).locator('[data-testid="stExpander"]')
        assert grid.get_by_role("button", name="9", exact=True).count() == 1  # every test image numbered
        screenshot(page, SCREENSHOTS / f"explain-{lang}-{width}-grid.png")
        problems += [f"{width} grid: {what}" for what in cut_off(page)]
        act(page, grid.get_by_role("button", name="3", exact=True).click)
        assert_no_exception(page)
        assert third in main(page).inner_text()  # the picked photo is named beside its preview
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"explain-{lang}-{width}-screen.png"))  # what the user sees
        for where in ("as left after the click", "from the top"):
            if where == "from the top":
                page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollTo(0, 0)")
            boxes = prediction_boxes(page)
            assert len(boxes) == 2, "both runs show a prediction"
            if height == 768:  # the laptop: both predictions on screen without scrolling
                assert all(0 <= box["y"] and box["y"] + box["height"] <= height for box in boxes), (where, boxes)
            assert abs(boxes[0]["y"] - boxes[1]["y"]) < 2, "the two run columns start their results level"
        assert not untranslated_keys(page)
        problems += [f"{width}: {what}" for what in cut_off(page)]
        if lang == "zh":
            text = main(page).inner_text()
            problems += [f"{width}: English left: {piece}" for piece in english_texts_of_the_page() if piece in text]
        screenshot(page, SCREENSHOTS / f"explain-{lang}-{width}.png")
        if lang == "en" and height == 768:  # an uploaded photo: its results too come right below
            act(page, main(page).get_by_text(i18n.t("explain.page.source_upload", lang), exact=True).click)
            photo = tmp_path / "photo.png"
            Image.new("RGB", (300, 200), (40, 160, 90)).save(photo)
            upload(page, i18n.t("explain.page.upload", lang), photo)
            assert_no_exception(page)
            page.screenshot(path=str(SCREENSHOTS / f"explain-{lang}-{width}-upload-screen.png"))
            boxes = prediction_boxes(page, marked=False)
            assert len(boxes) == 2 and all(0 <= b["y"] and b["y"] + b["height"] <= height for b in boxes), boxes
            # Streamlit's own "Add files" icon button (text: its hidden "add icon" label) is not cut off
            problems += [f"{width} upload: {what}" for what in cut_off(page) if not what.startswith("button: add icon")]
    page.close()
    assert not problems, "\n".join(problems)
