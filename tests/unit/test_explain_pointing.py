"""The pointing game on a freshly trained demo model (reduced size; the bench runs it in full)."""
import pytest
import torch

from core.data.augment import augment, normalize
from core.data.cache import load_images
from core.data.demo import make_demo
from core.data.split import split_dataset
from core.errors import UserError
from core.explain.pointing import pointing_game
from core.models import build_model

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


@pytest.fixture(scope="module")
def demo_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    make_demo(root / "demo", classes=5, per_class=40, size=64, seed=0)
    split_dataset(root / "demo", root / "split", val=0.2, test=0.2, mode="link")
    return root / "split"


def train_small(split, img_size=32, epochs=8):
    """A few epochs of plain Adam: enough for the simple CNN to learn the demo shapes."""
    images = load_images(split, "train", img_size)
    torch.manual_seed(0)
    model = build_model({"preset": "simple_cnn"}, len(images.classes), img_size)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(images), generator=generator).split(32):
            x = normalize(augment(images.batch(idx), "light", generator), MEAN, STD)
            loss = torch.nn.functional.cross_entropy(model(x), images.labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval(), {"classes": images.classes, "img_size": img_size, "mean": MEAN, "std": STD}


def test_heatmap_maximum_falls_on_the_object(demo_split):
    model, info = train_small(demo_split)
    result = pointing_game(model, info, demo_split / "test", method="gradcam")
    assert result.total == 40 and result.correct >= 30  # the model did learn the shapes
    assert result.rate >= 0.6, result


def test_a_split_without_boxes_says_so(tmp_path):
    with pytest.raises(UserError) as err:
        pointing_game(torch.nn.Conv2d(3, 3, 1), {"classes": ["a"], "img_size": 8}, tmp_path)
    assert err.value.key == "explain.no_annotations"
