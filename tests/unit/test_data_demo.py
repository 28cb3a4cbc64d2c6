"""The built-in demo set: layout, boxes that hold the object, reproducible, and learnable fast."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from core.data.augment import augment, to_float
from core.data.cache import load_images
from core.data.demo import SHAPES, make_demo
from core.data.scan import scan
from core.data.split import split_dataset
from core.errors import UserError


def test_layout_annotations_and_boxes(tmp_path):
    root = make_demo(tmp_path / "demo", classes=5, per_class=8, size=64, seed=3)
    report = scan(root)
    assert report.class_names == sorted(SHAPES[:5]) and report.total_images == 40
    assert not report.problems and not report.duplicates
    with (root / "annotations.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 40 and set(rows[0]) == {"path", "class", "x0", "y0", "x1", "y1"}
    for row in rows:
        x0, y0, x1, y1 = (int(row[k]) for k in ("x0", "y0", "x1", "y1"))
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64 and row["path"].startswith(row["class"] + "/")
        # The object is saturated and the clutter is muted: most saturated pixels lie in the box.
        hsv = np.asarray(Image.open(root / row["path"]).convert("HSV")).astype(int)
        vivid = (hsv[..., 1] > 150) & (hsv[..., 2] > 150)
        inside = vivid[y0:y1, x0:x1].sum()
        assert inside >= 0.9 * vivid.sum() and inside > 0.1 * (x1 - x0) * (y1 - y0)


def test_same_seed_same_bytes_and_refuses_a_used_folder(tmp_path):
    a = make_demo(tmp_path / "a", classes=2, per_class=3, size=32, seed=1)
    b = make_demo(tmp_path / "b", classes=2, per_class=3, size=32, seed=1)
    assert [p.read_bytes() for p in sorted(a.rglob("*.*"))] == [p.read_bytes() for p in sorted(b.rglob("*.*"))]
    with pytest.raises(UserError) as err:
        make_demo(a)
    assert err.value.key == "data.demo_exists"
    with pytest.raises(UserError):
        make_demo(tmp_path / "c", classes=1)


@pytest.fixture
def one_thread():
    """Many tiny ops: one thread avoids stalls when other processes share the two cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_small_cnn_learns_it(tmp_path, one_thread):
    """The promise behind the demo: > 90% test accuracy after a few seconds on a CPU."""
    torch.manual_seed(0)
    make_demo(tmp_path / "demo", classes=5, per_class=40, size=32)
    split_dataset(tmp_path / "demo", tmp_path / "split")
    train, test = load_images(tmp_path / "split", "train", 32), load_images(tmp_path / "split", "test", 32)

    def block(i: int, o: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))

    model = nn.Sequential(block(3, 16), block(16, 32), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5))
    opt = torch.optim.Adam(model.parameters(), 5e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(8):
        order = torch.randperm(len(train), generator=gen)
        for i in range(0, len(train), 16):
            idx = order[i:i + 16]
            loss = nn.functional.cross_entropy(model(augment(train.batch(idx), "light", gen)), train.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(to_float(test.batch(torch.arange(len(test))))).argmax(1)
    assert (pred == test.labels).float().mean() > 0.9
