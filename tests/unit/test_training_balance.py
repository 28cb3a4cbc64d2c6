"""Unbalanced classes: class weights make the loss the weighted formula, the balanced sampler draws
every class about equally often (seeded, resumed exactly), and a split above 3:1 proposes weights."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from core import runs
from core.data.cache import ImageSet
from core.data.demo import make_demo
from core.data.split import split_dataset
from core.training import engine
from core.training.balance import class_weights, part_counts, sample_weights, suggested_balance
from core.training.batches import Batches
from tests.unit.test_training_core import cache, config, epoch_figures, split, stop_after_epoch, train  # noqa: F401 - fixtures

COUNTS = (40, 10, 6)  # images per class: 40:6 is above the Data page's 3:1


pytestmark = pytest.mark.usefixtures("steady_threads")  # conftest.py


@pytest.fixture(scope="module")
def unbalanced(tmp_path_factory) -> Path:
    """A split of 3 demo classes with 40, 10 and 6 photos (before the split)."""
    root = tmp_path_factory.mktemp("unbalanced")
    make_demo(root / "demo", classes=3, per_class=max(COUNTS), size=32, seed=0)
    for folder, keep in zip(sorted(p for p in (root / "demo").iterdir() if p.is_dir()), COUNTS):
        for extra in sorted(folder.iterdir())[keep:]:
            extra.unlink()
    split_dataset(root / "demo", root / "split", val=0.25, test=0.25, seed=0)
    return root / "split"


def image_set(labels: list[int], classes: int) -> ImageSet:
    n = len(labels)
    data = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    return ImageSet([f"c{i}" for i in range(classes)], [f"c{i}" for i in range(classes)], [Path(f"{i}.png") for i in range(n)],
                    torch.tensor(labels), 4, _data=data)


def drawn(batches: Batches, epochs: int) -> list[int]:
    return [i for _ in range(epochs) for _, _, idx in batches for i in idx.tolist()]


def test_class_weights_are_inverse_frequency_and_the_loss_is_the_weighted_formula():
    labels = torch.tensor([0] * 30 + [1] * 10 + [2] * 5)
    weights = class_weights(labels, 4)  # class 3 has no training image
    assert weights.tolist() == pytest.approx([45 / (3 * 30), 45 / (3 * 10), 45 / (3 * 5), 0.0])
    assert float(weights[labels].mean()) == pytest.approx(1.0)  # the loss keeps its usual size
    logits = torch.randn(len(labels), 4, generator=torch.Generator().manual_seed(0))
    nll = -torch.log_softmax(logits, 1)[torch.arange(len(labels)), labels]
    want = (weights[labels] * nll).sum() / weights[labels].sum()
    assert float(nn.CrossEntropyLoss(weight=weights)(logits, labels)) == pytest.approx(float(want), rel=1e-6)


def test_a_run_with_class_weights_trains_with_them(unbalanced, cache, tmp_path):
    cfg = config(unbalanced, balance="weights")
    seen = {}
    real_build = engine.Trainer._build

    def build(self, resume):
        real_build(self, resume)
        seen["weight"] = self.criterion.weight.clone()
        seen["labels"] = self.data.train.labels.clone()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.Trainer, "_build", build)
        run_dir, summary = train(cfg, tmp_path, cache)
    assert summary["status"] == "finished" and runs.read_config(run_dir)["balance"] == "weights"
    counts = torch.bincount(seen["labels"]).float()
    assert seen["weight"].tolist() == pytest.approx((len(seen["labels"]) / (3 * counts)).tolist())


def test_the_balanced_sampler_draws_every_class_about_equally_often():
    labels = [0] * 150 + [1] * 30 + [2] * 20
    images = image_set(labels, 3)
    batches = Batches(images, 16, torch.device("cpu"), (0.5,) * 3, (0.5,) * 3, "none",
                      torch.Generator().manual_seed(0), balanced=True)
    draws = drawn(batches, epochs=10)
    assert len(draws) == 10 * 200  # as many draws per epoch as images (12 batches of 16 and one of 8)
    per_class = torch.bincount(torch.tensor(labels)[draws], minlength=3).float() / len(draws)
    assert per_class.tolist() == pytest.approx([1 / 3] * 3, abs=0.04)  # the plain order: 75%, 15%, 10%
    plain = Batches(images, 16, torch.device("cpu"), (0.5,) * 3, (0.5,) * 3, "none", torch.Generator().manual_seed(0))
    plain_share = torch.bincount(torch.tensor(labels)[drawn(plain, 1)], minlength=3).float() / len(drawn(plain, 1))
    assert plain_share[0] > 0.7
    assert sample_weights(torch.tensor(labels), 3)[[0, 150, 180]].tolist() == pytest.approx([1 / 150, 1 / 30, 1 / 20])


def test_the_balanced_sampler_is_seeded():
    images = image_set([0] * 50 + [1] * 10, 2)

    def order(seed: int) -> list[int]:
        return drawn(Batches(images, 8, torch.device("cpu"), (0.5,) * 3, (0.5,) * 3, "none",
                             torch.Generator().manual_seed(seed), balanced=True), epochs=2)

    assert order(7) == order(7) and order(7) != order(8)


def test_a_balanced_sampler_run_resumes_exactly(unbalanced, cache, tmp_path):
    cfg = config(unbalanced, balance="sampler", epochs=3, batch_size=8)
    reference, _ = train(cfg, tmp_path / "a", cache)
    stopped, summary = train(cfg, tmp_path / "b", cache, **stop_after_epoch(1))
    assert summary["status"] == "stopped"
    train(cfg, tmp_path / "b", cache, run_dir=stopped, resume=True)
    figures = [epoch_figures(d) for d in (reference, stopped)]
    assert [r["epoch"] for r in figures[1]] == [1, 2, 3]
    for got, want in zip(*figures):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_a_split_above_three_to_one_proposes_class_weights(unbalanced, split):
    choice, found = suggested_balance(unbalanced)
    counts = part_counts(unbalanced, "train")
    assert sum(counts.values()) == len(list((unbalanced / "train").rglob("*.jpg")))
    assert choice == "weights" and found.ratio == max(counts.values()) / min(counts.values()) > 3
    assert suggested_balance(split)[0] == "none"  # 5 classes of 24
    assert suggested_balance(split.parent / "nowhere") == ("none", None)
