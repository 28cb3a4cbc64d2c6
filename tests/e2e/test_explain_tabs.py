"""Two browser tabs explaining at once: the server caches one model per run for every tab, and
each tab must still see exactly what that model says about its own photo.

Both tabs show the same two runs (a CBAM-CNN and a ResNet18+CBAM, so all four explanations of
a round share two models). Each round gives both tabs an action before waiting for either (a
photo each, then another CAM method each), so their script runs overlap on the server. Every
figure a tab shows - predictions, confidences, the mean difference of the two heatmaps, the
heatmaps themselves - is compared with one `core.explain.explain` call made alone here.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from core import i18n
from tests.e2e.streamlit_ui import assert_no_exception, main, open_app, open_page, runs_started, wait_idle

SIZE = 64
RUNS = {"r1-cbam": "cbam_cnn", "r2-resnet": "resnet18_cbam"}
CLASSES = ["circle", "square", "star"]
METHODS = ("gradcam", "layercam", "gradcam++")


def en(key: str, **params) -> str:
    return i18n.t(key, "en", **params)


def make_runs(workspace) -> None:
    """Finished runs with fixed random weights (what was learnt does not matter here)."""
    from core import runs
    from core.atomic import write_json
    from core.models import build_model
    from core.training import checkpoint
    from core.workspace import Workspace

    ws = Workspace.open(workspace)
    for n, (run_id, preset) in enumerate(RUNS.items()):
        run_dir = ws.runs / run_id
        run_dir.mkdir(parents=True)
        write_json(run_dir / "config.json", {
            "model": {"preset": preset}, "data": str(ws.splits / "none"), "img_size": SIZE, "classes": CLASSES,
            "display_names": CLASSES, "mean": [0.5] * 3, "std": [0.25] * 3})
        runs.update_summary(run_dir, status="finished")
        torch.manual_seed(n)
        model = build_model({"preset": preset}, len(CLASSES), SIZE)
        checkpoint.save({"model": model.state_dict(), "classes": CLASSES, "img_size": SIZE, "epoch": 1},
                        run_dir / "best.pt")


def photo_file(path, seed: int):
    """A photo with a bright blob somewhere on a noisy background."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 90, (90, 120, 3), dtype=np.uint8)
    y, x = rng.integers(10, 50), rng.integers(10, 80)
    pixels[y:y + 30, x:x + 30] = 240
    Image.fromarray(pixels).save(path)
    return path


def expected(workspace, photo, method, run_ids) -> dict:
    """What runs A and B say about `photo`, computed alone, as the page would draw it."""
    from core.data.images import open_image
    from core.explain import explain
    from core.explain.render import colorize, difference, display_copy
    from core.inference import load_model

    image = open_image(photo)
    shown = display_copy(image)
    results = []
    for run_id in run_ids:
        model, info = load_model(workspace / "runs" / run_id)
        results.append(explain(model, info, image, method=method, cam_size=shown.size))
    return {
        "predictions": [r.names[r.pred] for r in results],
        "confidences": [en("explain.page.confidence", p=r.confidence) for r in results],
        "difference": f"{difference(results[0].cam, results[1].cam)[1]:.2f}",
        "heatmaps": [colorize(r.cam) for r in results],
    }


def shown(page, base_url) -> dict:
    """The same figures as the tab shows them."""
    metrics = page.locator('[data-testid="stMetric"]')
    predictions = [m.locator('[data-testid="stMetricValue"]').inner_text().strip()
                   for m in metrics.filter(has_text=en("explain.page.prediction")).all()]
    difference = metrics.filter(has_text=en("explain.page.mean_difference")).locator(
        '[data-testid="stMetricValue"]').inner_text().strip()
    heading = en("explain.page.heatmap", layer="", target="").split("·")[0].strip()
    heatmaps = []
    for box in page.locator('[data-testid="stImage"]').filter(has_text=heading).all():
        src = box.locator("img").get_attribute("src")
        body = page.request.get(src if src.startswith("http") else base_url + src).body()
        heatmaps.append(np.asarray(Image.open(io.BytesIO(body)).convert("RGB")))
    text = main(page).inner_text()
    runs = sorted(RUNS, key=text.index)  # the run A selectbox comes before run B's
    return {"predictions": predictions, "text": text, "difference": difference, "heatmaps": heatmaps, "runs": runs}


def pick_method(page, method: str) -> int:
    """Choose a CAM method without waiting for the rerun; returns the run count before it."""
    page.get_by_role("combobox", name=en("explain.page.method"), exact=True).click()
    before = runs_started(page)
    page.get_by_role("option", name={"gradcam": "Grad-CAM", "layercam": "Layer-CAM",
                                      "gradcam++": "Grad-CAM++"}[method], exact=True).click()
    return before


def give_photo(page, path) -> int:
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text=en("explain.page.upload"))
    before = runs_started(page)
    uploader.locator('input[type="file"]').set_input_files([path])
    return before


@pytest.fixture
def explain_server(tmp_path, start_server):
    workspace = tmp_path / "workspace"
    make_runs(workspace)
    return start_server(workspace)


def test_two_tabs_explaining_the_same_models_at_once_see_their_own_results(explain_server, browser, tmp_path):
    workspace = explain_server.workspace
    photos = [photo_file(tmp_path / f"photo{n}.png", seed=n) for n in range(2)]
    tabs = [open_app(browser, explain_server.url) for _ in photos]
    for tab in tabs:
        open_page(tab, explain_server.url, "explain")
    for round_, method in enumerate(METHODS):
        if round_ == 0:
            started = [give_photo(tab, photo) for tab, photo in zip(tabs, photos)]
        else:
            started = [pick_method(tab, method) for tab in tabs]
        for tab, before in zip(tabs, started):
            wait_idle(tab, after=before)
        for tab, photo in zip(tabs, photos):
            assert_no_exception(tab)
            got = shown(tab, explain_server.url)
            want = expected(workspace, photo, method, got["runs"])
            assert got["predictions"] == want["predictions"], (method, photo.name)
            assert all(text in got["text"] for text in want["confidences"]), (method, photo.name, want["confidences"])
            assert got["difference"] == want["difference"], (method, photo.name)
            assert len(got["heatmaps"]) == 2
            for picture, heat in zip(got["heatmaps"], want["heatmaps"]):
                assert picture.shape == heat.shape
                # The page sends JPEGs: a few levels of compression noise, never another map.
                error = np.abs(picture.astype(float) - heat.astype(float)).mean()
                assert error < 8, (method, photo.name, error)
