"""Pictures of the Explain page: the heatmap's colour scale, the difference's scale, and the
feature-map grid's empty cells."""
import numpy as np
import torch

from core.explain.render import (
    NEUTRAL,
    colorbar,
    colorize,
    difference_bar,
    feature_maps_grid,
)

VIRIDIS_TOP = (253, 231, 37)  # the bright yellow the grid's empty cells used to be


def bar_row(picture: np.ndarray) -> np.ndarray:
    """The middle row of the colour band (the band is the top rows, inside a 1 px frame)."""
    return picture[5]


def test_colorbar_runs_from_the_heatmaps_zero_to_their_one_with_tick_labels():
    picture = colorbar(width=200)
    row = bar_row(picture)
    band = row[13:211]  # inside the frame
    assert np.abs(band[0].astype(int) - colorize(np.zeros((1, 1)))[0, 0]).max() <= 8  # blue end
    assert np.abs(band[-1].astype(int) - colorize(np.ones((1, 1)))[0, 0]).max() <= 8  # red end
    mid = colorize(np.full((1, 1), 0.5, np.float32))[0, 0].astype(int)
    assert np.abs(band[len(band) // 2].astype(int) - mid).max() <= 16
    labels = picture[16:]  # below the band: dark text on white
    assert (labels.min(axis=2) < 120).sum() > 30


def test_difference_bar_is_blue_white_red():
    row = bar_row(difference_bar(width=200))[13:211].astype(int)
    assert row[0][2] > 200 and row[0][0] < 60  # -1: blue (B looks there)
    assert row[len(row) // 2].min() > 230  # 0: white
    assert row[-1][0] > 200 and row[-1][2] < 60  # +1: red (A looks there)


def test_feature_map_grid_fills_empty_cells_with_a_neutral_grey():
    maps = torch.rand(5, 8, 8, generator=torch.Generator().manual_seed(0))  # 2 rows of 3: one cell empty
    grid = feature_maps_grid(maps, tile=16)
    assert grid.shape == (2 * 16 + 3 * 2, 3 * 16 + 4 * 2, 3)
    empty = grid[2 + 18: 2 + 18 + 16, 2 + 18 * 2: 2 + 18 * 2 + 16]  # row 2, column 3
    grey = round(255 * NEUTRAL)
    assert np.abs(empty.astype(int) - grey).max() <= 1
    assert not (np.abs(empty.astype(int) - VIRIDIS_TOP).max(axis=-1) < 30).any()
    first = grid[2:18, 2:18]  # a real map keeps its colours
    assert first.std() > 10


def test_a_run_that_centre_crops_has_its_heatmap_where_it_looked(monkeypatch):
    """A run evaluated with resize 48 then centre crop 32 sees the middle two thirds of a photo:
    its map covers that box and nothing outside (stretched over the whole photo it pointed elsewhere)."""
    from types import SimpleNamespace

    from PIL import Image

    from core.data.augment import eval_box
    from core.explain import explainer
    from core.models import build_model

    model = build_model({"preset": "simple_cnn"}, 2, 32)
    info = SimpleNamespace(img_size=32, eval_side=48, resize_mode="square", mean=(0.5,) * 3, std=(0.5,) * 3,
                           classes=["a", "b"], display_names=["a", "b"])
    monkeypatch.setattr(explainer, "compute_cams",
                        lambda *a, **k: (np.ones((1, 32, 32), np.float32), np.array([[0.4, 0.6]], np.float32)))
    photo = Image.new("RGB", (96, 60))
    cam = explainer.explain(model, info, photo).cam
    left, top, right, bottom = (round(v) for v in eval_box(96, 60, 32, 48))
    assert (left, top, right, bottom) == (16, 10, 80, 50)
    assert cam.shape == (60, 96) and cam[top:bottom, left:right].min() == 1.0
    assert cam.sum() == (right - left) * (bottom - top)  # zero outside the box
    half = explainer.explain(model, info, photo, cam_size=(48, 30)).cam  # a display copy's size
    assert half.shape == (30, 48) and half[5:25, 8:40].min() == 1.0 and half.sum() == 20 * 32
    info.eval_side = 32  # no crop: the whole photo
    assert explainer.explain(model, info, photo).cam.min() == 1.0
