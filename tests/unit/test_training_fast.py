"""The fast recipe's parts: the fast_cnn network, BatchNorm-bias learning rates, test-time
augmentation, the memory layout chosen per model; channels_last changes no result; a resumed
fast run continues exactly."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from core import recipes, runs
from core.data.demo import make_demo
from core.data.split import split_dataset
from core.models import build_model, freeze
from core.models.fastnet import FastNet
from core.runs import create_run
from core.training import checkpoint
from core.training.config import TrainConfig
from core.training.engine import Trainer
from core.training.evaluate import evaluate_run
from core.training.loops import tta_logits
from core.training.memory_format import use_channels_last
from core.training.optim import make_optimizer

FIGURES = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")


pytestmark = pytest.mark.usefixtures("steady_threads")  # conftest.py


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fast-data")
    make_demo(root / "demo", classes=4, per_class=20, size=32, seed=1)
    split_dataset(root / "demo", root / "split", val=0.25, test=0.25, seed=0)
    return root / "split"


def fast_config(split: Path, **changes) -> TrainConfig:
    """The fast recipe on the tiny demo split: small batches so an epoch has several steps."""
    return recipes.load("fast_cifar10").config(split, **({"batch_size": 16, "epochs": 2, "log_every": 2} | changes))


def train(cfg: TrainConfig, runs_dir: Path, cache: Path, run_dir: Path | None = None, resume: bool = False,
          **hooks) -> tuple[Path, dict]:
    run_dir = run_dir or create_run(cfg, runs_dir)
    return run_dir, Trainer(cfg, run_dir, cache_dir=cache, **hooks).run(resume=resume)


def figures(run_dir: Path) -> list[dict]:
    return [{k: r[k] for k in FIGURES} for r in runs.read_metrics(run_dir, "epoch")]


# --- the network ---------------------------------------------------------------------------------
def test_the_whitening_layer_decorrelates_the_image_patches():
    torch.manual_seed(0)
    mix = torch.tensor([[1.0, 0.8, 0.2], [0.0, 0.6, 0.5], [0.0, 0.0, 0.3]])
    images = torch.einsum("dc,nchw->ndhw", mix, torch.randn(400, 3, 16, 16))  # correlated colours
    net = FastNet(4)
    net.init_from_data(images)
    out = nn.functional.conv2d(images, net.features[0].weight[:12])  # the + half: one filter per eigenvector
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    cov = flat.T @ flat / len(flat)
    # unit variance along every direction the data has (eps 5e-4 shrinks tiny ones), no correlation
    assert torch.allclose(cov, torch.diag(torch.diagonal(cov)), atol=2e-3)
    assert torch.diagonal(cov).min() > 0.9 and torch.diagonal(cov).max() < 1.01
    assert torch.equal(net.features[0].weight[12:], -net.features[0].weight[:12])


def test_fast_cnn_keeps_its_fixed_weights_fixed_under_any_freeze_policy_and_step():
    net = build_model({"preset": "fast_cnn"}, 3, 32)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.weight is None and m.bias.requires_grad for m in norms)  # a bias, no scale
    freeze(net, "all")
    whitening = net.features[0].weight.clone()
    assert "features.0.weight" not in dict(net.named_parameters())  # a buffer, in the state dict
    assert "features.0.weight" in net.state_dict()
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    net(torch.randn(8, 3, 32, 32)).sum().backward()
    opt.step()
    assert torch.equal(net.features[0].weight, whitening)
    for size in (16, 48, 64):  # any image size: the head pools whatever is left
        assert build_model({"preset": "fast_cnn"}, 3, size)(torch.randn(2, 3, size, size)).shape == (2, 3)


def test_batchnorm_biases_get_their_own_rate_and_the_same_decay_per_step():
    net = build_model({"preset": "fast_cnn"}, 3, 32)
    cfg = TrainConfig(data="x", optimizer="sgd", lr=0.5, weight_decay=0.01, bias_lr_factor=64).validated()
    others, biases = make_optimizer(net, cfg, 0.5).param_groups
    norm_biases = {id(m.bias) for m in net.modules() if isinstance(m, nn.BatchNorm2d)}
    assert {id(p) for p in biases["params"]} == norm_biases
    assert not norm_biases & {id(p) for p in others["params"]}
    assert biases["lr"] == 32.0 and biases["weight_decay"] * biases["lr"] == pytest.approx(0.01 * 0.5)
    assert (others["lr"], others["weight_decay"]) == (0.5, 0.01)
    single = make_optimizer(net, TrainConfig(data="x").validated(), 1e-3).param_groups
    assert len(single) == 1 and len(single[0]["params"]) == len(list(net.parameters()))


# --- test-time augmentation -------------------------------------------------------------------------
def test_tta_averages_the_mirrored_and_shifted_views():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(5))
    x = torch.randn(2, 3, 8, 8)
    model(x)
    mirror = lambda v: (model(v) + model(v.flip(-1))) / 2  # noqa: E731
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = (mirror(padded[..., :8, :8]) + mirror(padded[..., 2:, 2:])) / 2
    assert torch.equal(tta_logits(model, x), model(x))
    assert torch.allclose(tta_logits(model, x, "flip"), mirror(x))
    assert torch.allclose(tta_logits(model, x, "flip_shift"), (mirror(x) + shifted) / 2)


# --- runs ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fast_run(split, tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("fast-cache")
    run_dir, summary = train(fast_config(split, memory_format="channels_last"), tmp_path_factory.mktemp("runs"), cache)
    assert summary["status"] == "finished" and summary["memory_format"] == "channels_last"
    return run_dir


def test_the_final_test_uses_the_runs_test_time_augmentation(fast_run, split):
    from core.inference import load_model

    stored = runs.read_summary(fast_run)["test_acc"]
    model, info = load_model(fast_run)
    result = evaluate_run(fast_run)
    assert result["accuracy"] == stored
    from core.data.cache import load_images
    from core.training.batches import Batches

    images = load_images(split, "test", 32)
    logits = torch.cat([tta_logits(model, x, "flip_shift") for x, _, _ in
                        Batches(images, 128, torch.device("cpu"), info.mean, info.std, img_size=32)])
    assert torch.allclose(result["predictions"], torch.softmax(logits, 1), atol=1e-5)


def test_channels_last_and_contiguous_train_to_the_same_result(fast_run, split, tmp_path):
    other, summary = train(fast_config(split, memory_format="contiguous"), tmp_path, tmp_path / "cache")
    assert summary["memory_format"] == "contiguous"
    # float sums in another order, amplified by the recipe's high learning rates over 10 steps
    for got, want in zip(figures(other), figures(fast_run), strict=True):
        assert got == pytest.approx(want, rel=1e-3, abs=1e-4)
    a, b = checkpoint.load(other / "last.pt")["model"], checkpoint.load(fast_run / "last.pt")["model"]
    assert all(torch.allclose(a[k].float(), b[k].float(), rtol=1e-3, atol=1e-3) for k in a)


def test_a_resumed_fast_run_continues_exactly(fast_run, split, tmp_path):
    stop = threading.Event()
    hooks = {"stop": stop, "on_record": lambda r: stop.set() if r["type"] == "epoch" else None}
    cfg = fast_config(split, memory_format="channels_last")
    run_dir, summary = train(cfg, tmp_path, tmp_path / "cache", **hooks)
    assert summary["status"] == "stopped" and summary["epochs_done"] == 1
    _, summary = train(cfg, tmp_path, tmp_path / "cache", run_dir=run_dir, resume=True)
    assert summary["status"] == "finished"
    for got, want in zip(figures(run_dir), figures(fast_run), strict=True):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert summary["test_acc"] == runs.read_summary(fast_run)["test_acc"]


def test_auto_layout_times_a_copy_and_leaves_the_model_and_random_state_alone():
    from core.training import memory_format

    memory_format._decided.clear()  # the probe runs (not a decision remembered from another test)
    net = build_model({"preset": "fast_cnn"}, 3, 32).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch.manual_seed(5)
    rng = torch.get_rng_state()
    choice = use_channels_last("auto", net, 32, 8, torch.device("cpu"))
    assert isinstance(choice, bool) and len(memory_format._decided) == 1
    assert use_channels_last("auto", net, 32, 8, torch.device("cpu")) is choice  # decided once
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert use_channels_last("contiguous", net, 32, 64, torch.device("cpu")) is False
    assert use_channels_last("channels_last", net, 32, 64, torch.device("cpu")) is True


def test_the_fast_recipe_resolves_as_documented(split):
    cfg = recipes.load("fast_cifar10").config(split)
    assert cfg.model == {"preset": "fast_cnn"} and (cfg.img_size, cfg.batch_size, cfg.epochs) == (32, 512, 12)
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay) == ("sgd", 0.75, 0.85, True, 0.00133)
    assert (cfg.bias_lr_factor, cfg.scheduler, cfg.label_smoothing, cfg.tta) == (64, "triangle", 0.2, "flip_shift")
    assert cfg.augment["crop"] == "random" and cfg.augment["padding"] == 2 and cfg.augment["hflip"] == 0.5
    assert cfg.normalization == "dataset" and cfg.name == "fast_cifar10"
    assert recipes.load("fast_cifar10").config(split, epochs=3, img_size=64).epochs == 3  # the user's values win
