"""Course recipes: each resolves to its lesson's numbers, trains for real on small data, is listed
by `core recipes`, and gives way to a --config file and flags (recipe < config file < flags)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import torch
from torchvision import models as tvm

from core import i18n, recipes, runs
from core.cli import main
from core.data.augment import settings
from core.errors import UserError
from core.models import weights_cache_path
from core.training.config import TrainConfig, phase_config, phase_lr
from tests.unit.test_training_core import cache, split  # noqa: F401 - shared fixtures

CIFAR = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}
COURSE = ["flowers_resnet18_cbam", "catdog_simple_cnn", "cifar10_cbam_cnn", "cifar10_cnn", "flowers102_transfer"]

# The lessons' numbers as issue 12 lists them (item 6), written from its text, not from the recipe
# files. Where a number is a torchvision default (RandomHorizontalFlip p=0.5, RandomRotation's
# nearest interpolation, ColorJitter's random order), the default is written out.
LESSONS = {
    # flowers ResNet18+CBAM: 60/20/20 split seed 42, 224 px, batch 32, 15 epochs, Adam 1e-3,
    # ReduceLROnPlateau on val loss patience 3, pretrained backbone
    "flowers_resnet18_cbam": {
        "split": {"val": 0.2, "test": 0.2, "seed": 42},
        "config": {"model": {"preset": "resnet18_cbam", "pretrained": True}, "img_size": 224, "batch_size": 32,
                   "epochs": 15, "optimizer": "adam", "lr": 1e-3, "scheduler": "plateau", "plateau_metric": "val_loss",
                   "plateau_patience": 3},
    },
    # cats-vs-dogs SimpleCNN (the catdog_cnn preset): 224 px, batch 64, 20 epochs, Adam 1e-3,
    # StepLR 3 / 0.1, flip + rotation 10 + jitter 0.2/0.2/0.2
    "catdog_simple_cnn": {
        "config": {"model": {"preset": "catdog_cnn"}, "img_size": 224, "batch_size": 64, "epochs": 20,
                   "optimizer": "adam", "lr": 1e-3, "scheduler": "step", "step_size": 3, "gamma": 0.1,
                   "augment": {"hflip": 0.5, "rotation": 10.0, "brightness": 0.2, "contrast": 0.2, "saturation": 0.2,
                               "order": ["hflip", "affine", "jitter"]}},
    },
    # CIFAR-10 CBAM-CNN: batch 64, 50 epochs, crop 32 pad 4, flip, jitter 0.2/0.2/0.2/0.1, rotation
    # 15, CIFAR constants, ReduceLROnPlateau min / patience 3 / factor 0.5; its TensorBoard batch
    # scalars every 100 batches (the TensorBoard item)
    "cifar10_cbam_cnn": {
        "config": {"model": {"preset": "cbam_cnn"}, "img_size": 32, "batch_size": 64, "epochs": 50,
                   "augment": {"crop": "random", "padding": 4, "hflip": 0.5, "brightness": 0.2, "contrast": 0.2,
                               "saturation": 0.2, "hue": 0.1, "rotation": 15.0,
                               "order": ["crop", "hflip", "jitter", "affine"]},
                   "normalization": CIFAR, "scheduler": "plateau", "plateau_metric": "val_loss", "plateau_patience": 3,
                   "gamma": 0.5, "tensorboard": True, "tensorboard_batch_every": 100},
    },
    # CIFAR-10 tutorial CNN: batch 100, 10 epochs, crop pad 4 + flip, CIFAR constants, Adam 1e-3
    "cifar10_cnn": {
        "config": {"model": {"preset": "simple_cnn"}, "img_size": 32, "batch_size": 100, "epochs": 10,
                   "augment": {"crop": "random", "padding": 4, "hflip": 0.5, "order": ["crop", "hflip"]},
                   "normalization": CIFAR, "optimizer": "adam", "lr": 1e-3, "scheduler": "none"},
    },
    # flowers-102 transfer: resnet18, 64 px from a 96 px resize with rotation 45, centre crop 64, h/v
    # flip, jitter 0.2/0.1/0.1/0.1, grayscale 0.025, batch 128; head only at Adam 1e-2 StepLR 10 / 0.1
    # for 20 epochs, then everything at 1e-3 StepLR 7 / 0.1 for 10 epochs from phase 1's best
    "flowers102_transfer": {
        "config": {"model": {"backbone": "resnet18", "pretrained": True}, "img_size": 64, "batch_size": 128,
                   "augment": {"resize": 96, "rotation": 45.0, "crop": "center", "hflip": 0.5, "vflip": 0.5,
                               "brightness": 0.2, "contrast": 0.1, "saturation": 0.1, "hue": 0.1, "grayscale": 0.025,
                               "order": ["affine", "crop", "hflip", "vflip", "jitter", "grayscale"]},
                   "optimizer": "adam", "freeze_epochs": 20, "phase2_from_best": True},
        "phases": [{"epochs": 20, "lr": 1e-2, "scheduler": "step", "step_size": 10, "gamma": 0.1},
                   {"epochs": 10, "lr": 1e-3, "scheduler": "step", "step_size": 7, "gamma": 0.1}],
    },
}
# What a recipe sets, away from TrainConfig's defaults, where its lesson gives no number (each
# said in the recipe's notes).
CHOSEN = {"flowers_resnet18_cbam": {"augment"}, "catdog_simple_cnn": set(), "cifar10_cbam_cnn": set(),
          "cifar10_cnn": set(), "flowers102_transfer": {"frozen_bn"}}
# The fields that carry the two transfer phases' numbers.
PHASE_FIELDS = {"epochs", "lr", "scheduler", "step_size", "gamma", "phase2_lr", "phase2_step_size", "phase2_gamma"}


pytestmark = pytest.mark.usefixtures("keep_ctrl_c")  # train installs its own Ctrl-C handler


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty torch hub cache and no network: pretrained weights only from files put there."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, timeout=None):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return tmp_path / "hub"


def cache_resnet18_weights() -> dict:
    """An ImageNet-shaped resnet18 state dict where torchvision keeps its downloaded weights."""
    torch.manual_seed(7)
    state = tvm.resnet18(weights=None).state_dict()
    path = weights_cache_path("resnet18")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def printed_config(capsys, *argv: str) -> dict:
    assert main(["train", *argv, "--print-config", "--json"]) == 0
    (printed,) = lines(capsys)
    return printed


def test_the_course_recipes_are_there():
    assert set(COURSE) <= set(recipes.names())


@pytest.mark.parametrize("name", COURSE)
def test_each_recipe_resolves_to_its_lessons_numbers(name, workspace, tmp_path, capsys):
    lesson = LESSONS[name]
    printed = printed_config(capsys, "--recipe", name, "--data", str(tmp_path / "split"))
    cfg = TrainConfig.from_dict(printed)
    want = dict(lesson["config"])
    if "augment" in want:
        want["augment"] = settings(want["augment"], want["img_size"])
    assert {k: printed[k] for k in want} == want
    for second, phase in enumerate(lesson.get("phases", [])):
        shaped = phase_config(cfg, second=bool(second))
        epochs = cfg.freeze_epochs if not second else cfg.epochs - cfg.freeze_epochs
        assert {"epochs": epochs, "lr": phase_lr(cfg, second=bool(second)), "scheduler": shaped.scheduler,
                "step_size": shaped.step_size, "gamma": shaped.gamma} == phase
    assert recipes.load(name).split == lesson.get("split")
    # nothing else differs from TrainConfig's defaults but what the recipe's notes account for
    defaults = TrainConfig(data="x").to_dict()
    changed = {k for k, v in printed.items() if v != defaults[k]} - {"data", "name"}
    assert {k for k in want if want[k] != defaults[k]} <= changed
    assert changed - set(want) - (PHASE_FIELDS if "phases" in lesson else set()) == CHOSEN[name]
    assert printed["name"] == name
    notes = recipes.load(name).notes
    assert notes and all(i18n.t(k, lang) != k for k in notes for lang in i18n.LANGS)


def short_run(name: str) -> dict:
    """What a user overrides to try a recipe quickly: small images, small batches, one epoch (the
    two-phase recipe: one epoch per phase)."""
    quick = {"img_size": 32, "batch_size": 16, "epochs": 1, "log_every": 2}
    if recipes.load(name).settings.get("freeze_epochs"):
        quick |= {"epochs": 2, "freeze_epochs": 1}
    return quick


@pytest.mark.parametrize("name", COURSE)
def test_a_short_real_run_from_each_recipe(name, workspace, split, offline_hub, capsys):  # noqa: F811 - fixture
    from core.training import checkpoint

    state = cache_resnet18_weights()  # the pretrained recipes find "ImageNet" weights in the hub cache
    quick = short_run(name)
    flags = [f for k, v in quick.items() for f in ("--" + k.replace("_", "-"), str(v))]
    assert main(["train", "--recipe", name, "--data", str(split), *flags, "--json"]) == 0
    *_, final = lines(capsys)
    assert final["summary"]["status"] == "finished", final
    run_dir = workspace.runs / final["run"].rsplit("/", 1)[-1]
    saved = runs.read_config(run_dir)
    expected = recipes.load(name).config(split.resolve(), **quick)
    assert TrainConfig.of_run(saved).to_dict() == expected.to_dict()
    assert len(runs.read_metrics(run_dir, "epoch")) == expected.epochs
    if recipes.load(name).weights():
        # it started from the cached file: a few Adam steps move conv1 by a little, not by a
        # random initialisation's ~0.1 (offline, without the file, the run could not start)
        trained = checkpoint.load(run_dir / "last.pt")["model"]["conv1.weight"]
        assert (trained - state["conv1.weight"]).abs().max() < 0.05
        assert saved["model"]["pretrained"] is True


def test_recipes_lists_each_with_its_lesson_and_key_settings(workspace, offline_hub, capsys, monkeypatch):
    assert main(["recipes", "--json"]) == 0
    (listed,) = lines(capsys)
    by_name = {r["name"]: r for r in listed["recipes"]}
    assert set(COURSE) <= set(by_name)
    for name in COURSE:
        r = by_name[name]
        assert r["title"] == i18n.t(f"recipes.{name}.title", "en") != f"recipes.{name}.title"
        assert r["settings"] == recipes.load(name).settings and r["notes"]
    assert by_name["flowers_resnet18_cbam"]["split"] == {"val": 0.2, "test": 0.2, "seed": 42}
    assert by_name["flowers102_transfer"]["weights"] == {"arch": "resnet18", "available": False}
    assert by_name["cifar10_cnn"]["weights"] is None

    cache_resnet18_weights()
    assert main(["recipes", "--json"]) == 0
    (listed,) = lines(capsys)
    assert {r["name"]: r["weights"] for r in listed["recipes"]}["flowers_resnet18_cbam"] == {
        "arch": "resnet18", "available": True}

    monkeypatch.setenv("CNN_STUDIO_LANG", "zh")
    assert main(["recipes"]) == 0
    text = capsys.readouterr().out
    for name in COURSE:
        assert f"{name}  -  {i18n.t(f'recipes.{name}.title', 'zh')}" in text
        assert f"train --recipe {name} --data SPLIT" in text
    assert "224 像素，批大小 32，15 轮" in text and "验证集 20%，测试集 20%，种子 42" in text


def test_a_config_file_overrides_the_recipe_and_flags_override_both(workspace, tmp_path, capsys):
    data = str(tmp_path / "split")
    recipe = printed_config(capsys, "--recipe", "catdog_simple_cnn", "--data", data)
    saved = tmp_path / "mine.json"
    saved.write_text(json.dumps({"epochs": 3, "batch_size": 8, "lr": 0.01}), encoding="utf-8")
    layered = printed_config(capsys, "--recipe", "catdog_simple_cnn", "--data", data, "--config", str(saved),
                             "--batch-size", "4", "--scheduler", "none", "--model", "simple_cnn", "--name", "mine")
    # the file beats the recipe, the flags beat both (also a flag equal to TrainConfig's default)
    assert layered == recipe | {"epochs": 3, "lr": 0.01, "batch_size": 4, "scheduler": "none",
                                "model": {"preset": "simple_cnn"}, "name": "mine"}
    assert layered["augment"] == recipe["augment"] and layered["step_size"] == 3


def test_an_unknown_or_broken_recipe_is_a_message(workspace, tmp_path, capsys, monkeypatch):
    assert main(["train", "--recipe", "no_such", "--data", str(tmp_path), "--json"]) == 2
    (error,) = lines(capsys)
    assert error["key"] == "recipes.unknown" and "cifar10_cnn" in error["error"]
    monkeypatch.setattr(recipes, "FOLDER", tmp_path)
    (tmp_path / "broken.json").write_text(json.dumps({"settings": {"epochs": 0}}), encoding="utf-8")
    (tmp_path / "typo.json").write_text(json.dumps({"settings": {"learning_rate": 0.1}}), encoding="utf-8")
    (tmp_path / "badsplit.json").write_text(json.dumps({"settings": {}, "split": {"val": 0.6, "test": 0.5}}),
                                            encoding="utf-8")
    for name, words in (("broken", "epochs"), ("typo", "learning_rate"), ("badsplit", "split")):
        monkeypatch.setenv("CNN_STUDIO_LANG", "zh")
        assert main(["train", "--recipe", name, "--data", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert f"配方 {name} 无效" in err and words in err and "Traceback" not in err
    assert not list(workspace.runs.glob("*"))


def test_a_recipe_can_be_computed_from_the_dataset(workspace, split, tmp_path, capsys, monkeypatch):  # noqa: F811
    """A recipe file may be a module whose `recipe(data)` makes the settings from the split."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "sized.py").write_text(
        "from core.errors import UserError\n"
        "from core.recipes import Recipe\n\n"
        "def recipe(data):\n"
        "    if data is None:\n"
        "        raise UserError('recipes.needs_data', name='sized')\n"
        "    n = sum(1 for p in (data / 'train').rglob('*') if p.is_file())\n"
        "    return Recipe('sized', {'batch_size': n, 'epochs': 2}, reasons=({'key': 'x', 'params': {'n': n}},))\n",
        encoding="utf-8")
    (folder / "fixed.json").write_text(json.dumps({"settings": {"epochs": 4}}), encoding="utf-8")
    monkeypatch.setattr(recipes, "FOLDER", folder)
    n_train = sum(1 for p in (split / "train").rglob("*") if p.is_file())
    assert printed_config(capsys, "--recipe", "sized", "--data", str(split))["batch_size"] == n_train
    assert recipes.load("sized", split).reasons == ({"key": "x", "params": {"n": n_train}},)
    # without a dataset it is left out of the list, with a message when asked for by name
    assert [r.name for r in recipes.load_all()] == ["fixed"]
    with pytest.raises(UserError) as err:
        recipes.load("sized")
    assert err.value.key == "recipes.needs_data"
