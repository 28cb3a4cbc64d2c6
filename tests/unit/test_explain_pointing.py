"""The pointing game on a freshly trained demo model (reduced size; the bench runs it in full)."""
import pytest
import torch

import core
from core.data.demo import make_demo
from core.data.split import split_dataset
from core.errors import UserError
from core.explain.pointing import pointing_game
from core.runs import create_run
from core.training.config import TrainConfig
from core.training.engine import Trainer


@pytest.fixture(scope="module")
def demo_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    make_demo(root / "demo", classes=5, per_class=40, size=64, seed=0)
    split_dataset(root / "demo", root / "split", val=0.2, test=0.2, mode="link")
    return root / "split"


def train_small(split, runs_dir, img_size=32, epochs=6):
    """The training engine, a few epochs: enough for the simple CNN to learn the demo shapes."""
    cfg = TrainConfig(data=str(split), model={"preset": "simple_cnn"}, img_size=img_size, batch_size=32,
                      epochs=epochs, augment="light", device="cpu", seed=0)
    run_dir = create_run(cfg, runs_dir)
    Trainer(cfg, run_dir).run()
    return core.load_model(run_dir)


def test_heatmap_maximum_falls_on_the_object(demo_split):
    model, info = train_small(demo_split, demo_split.parent / "runs")
    result = pointing_game(model, info, demo_split / "test", method="gradcam")
    assert result.total == 40 and result.correct >= 30  # the model did learn the shapes
    assert result.rate >= 0.6, result


def test_a_split_without_boxes_says_so(tmp_path):
    with pytest.raises(UserError) as err:
        pointing_game(torch.nn.Conv2d(3, 3, 1), {"classes": ["a"], "img_size": 8}, tmp_path)
    assert err.value.key == "explain.no_annotations"
