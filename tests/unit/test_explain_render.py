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
