"""The `auto` recipe: a proposal computed from the split (size, classes, balance, photo size,
pretrained weights on the machine), with its reasons; `train --recipe auto`; `recipes --suggest`."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from core import i18n, recipes, runs
from core.cli import main
from core.data.split import split_dataset
from core.errors import UserError
from core.recipes import auto
from tests.unit.test_recipes import (  # noqa: F401
    cache_resnet18_weights,
    lines,
    offline_hub,
    printed_config,
)

SPEED = 1000.0  # images/s the tests pretend this machine trains at (the real one is noisy)
SLOW = 200.0


def make_split(root: Path, counts: list[int], side: int) -> Path:
    """Class folders of plain-coloured `side` px photos, `counts[i]` in class i, split 60/20/20."""
    src = root / "photos"
    for i, n in enumerate(counts):
        folder = src / f"class{i}"
        folder.mkdir(parents=True)
        for j in range(n):
            Image.new("RGB", (side + j % 3, side), (i * 20 % 256, j * 7 % 256, 90)).save(folder / f"{j}.png")
    split_dataset(src, root / "split", val=0.2, test=0.2, seed=0)
    return root / "split"


@pytest.fixture
def fixed_speed(monkeypatch):
    monkeypatch.setattr(auto, "measured_speed", lambda *a, **k: SPEED)


def keys(recipe) -> list[str]:
    return [r["key"].removeprefix("recipes.auto.why.") for r in recipe.reasons]


def said(recipe, lang: str = "en") -> str:
    return " ".join(i18n.t(r["key"], lang, **r["params"]) for r in recipe.reasons)


def expected_epochs(split: Path, speed: float = SPEED) -> int:
    from core.training.balance import part_counts

    train, val = (sum(part_counts(split, p).values()) for p in ("train", "val"))
    per_epoch = auto.OVERHEAD * (train + val / 3) / speed
    return max(auto.MIN_EPOCHS, min(auto.MAX_EPOCHS, int((auto.BUDGET_S - auto.SETUP_S) / per_epoch)))


def test_small_balanced_split_without_weights_gets_the_scratch_recipe(tmp_path, offline_hub, fixed_speed):  # noqa: F811
    split = make_split(tmp_path, [10] * 5, side=48)
    r = recipes.load("auto", split)
    s = r.settings
    assert "spec" in s["model"] and not r.weights()
    assert len(s["model"]["spec"]["blocks"]) == 4          # 48 -> 24 -> 12 -> 6 -> 3 px
    assert s["img_size"] == 48 and s["balance"] == "none" and s["label_smoothing"] == 0.1
    assert s["scheduler"] == "onecycle" and s["optimizer"] == "adamw" and s["augment"]["crop"] == "resized"
    assert s["epochs"] == expected_epochs(split) == auto.MAX_EPOCHS  # 30 images train quickly
    assert keys(r) == ["data_balanced", "scratch", "size", "epochs", "smoothing"]
    text = said(r)
    assert "50 photos, 5 classes" in text and "no class weights" in text and "48 px" in text
    assert f"{s['epochs']} epochs" in text and "1,000 images/s" in text
    assert "50 张照片" in said(r, "zh")
    cfg = r.config(split)  # a valid TrainConfig
    assert cfg.epochs == s["epochs"] and cfg.model == s["model"]


def test_large_unbalanced_split_gets_class_weights_and_fewer_epochs(tmp_path, offline_hub, monkeypatch):  # noqa: F811
    monkeypatch.setattr(auto, "measured_speed", lambda *a, **k: SLOW)
    counts = [340, 300, 260, 225, 195, 165, 135, 105, 75, 50]  # 6.8:1, 1,850 photos
    split = make_split(tmp_path, counts, side=20)
    r = recipes.load("auto", split)
    s = r.settings
    assert s["balance"] == "weights" and s["img_size"] == 32   # photos below 32 px: the smallest size
    assert s["augment"]["crop"] == "random" and "rotation" not in s["augment"]
    assert auto.MIN_EPOCHS < s["epochs"] == expected_epochs(split, SLOW) < auto.MAX_EPOCHS
    assert keys(r)[0] == "data_unbalanced"
    text = said(r)
    assert "1,850 photos, 10 classes, unbalanced 6.8:1 (class0 vs class9): class weights on" in text
    assert "不平衡 6.8:1" in said(r, "zh")


def test_weights_on_the_machine_give_transfer_learning(tmp_path, offline_hub, fixed_speed):  # noqa: F811
    split = make_split(tmp_path, [10] * 4, side=100)
    assert "spec" in recipes.load("auto", split).settings["model"]
    cache_resnet18_weights()  # a local weights file where torchvision keeps downloaded ones
    r = recipes.load("auto", split)
    s = r.settings
    assert s["model"] == {"backbone": "resnet18", "pretrained": True} and r.weights() == "resnet18"
    assert recipes.missing_weights(r) is None
    assert s["img_size"] == 96 and s["normalization"] == "imagenet"
    assert 1 <= s["freeze_epochs"] < s["epochs"]
    assert keys(r) == ["data_balanced", "transfer", "size", "epochs", "phases", "smoothing"]
    assert "ImageNet weights of resnet18 are on this machine" in said(r)


def test_auto_needs_a_split_and_one_with_training_images():
    with pytest.raises(UserError) as err:
        recipes.load("auto")
    assert err.value.key == "recipes.needs_data"
    assert "auto" not in [r.name for r in recipes.load_all()]


def test_measured_speed_times_the_model_here():
    ref = auto.scratch_model(32)
    speed = auto.measured_speed(ref, 32, 3, 8)
    assert speed > 0 and auto.measured_speed(ref, 32, 3, 8) == speed  # remembered


def test_train_with_the_auto_recipe_and_a_one_epoch_override(workspace, tmp_path, offline_hub, fixed_speed,  # noqa: F811
                                                            capsys):
    split = make_split(tmp_path, [8] * 3, side=32)
    proposed = recipes.load("auto", split)
    assert printed_config(capsys, "--recipe", "auto", "--data", str(split)) == proposed.config(
        split.resolve()).to_dict() | {"name": "auto"}
    assert main(["train", "--recipe", "auto", "--data", str(split), "--epochs", "1", "--json"]) == 0
    *_, final = lines(capsys)
    assert final["summary"]["status"] == "finished", final
    saved = runs.read_config(workspace.runs / final["run"].rsplit("/", 1)[-1])
    assert saved["epochs"] == 1 and saved["model"] == proposed.settings["model"]
    assert saved["label_smoothing"] == 0.1 and saved["img_size"] == 32


def test_recipes_suggest_prints_the_proposal_and_its_reasons(tmp_path, offline_hub, fixed_speed, capsys):  # noqa: F811
    split = make_split(tmp_path, [12, 3], side=32)
    assert main(["recipes", "--suggest", str(split), "--json"]) == 0
    (printed,) = lines(capsys)
    assert printed["name"] == "auto" and printed["settings"] == recipes.load("auto", split).settings
    assert printed["settings"]["balance"] == "weights"
    assert printed["reasons"][0].startswith("15 photos, 2 classes, unbalanced")
    assert main(["recipes", "--suggest", str(split)]) == 0
    text = capsys.readouterr().out
    assert "Suggested for this data" in text and "class weights on" in text and "--recipe auto" in text
    assert main(["recipes", "--suggest", str(tmp_path / "nowhere"), "--json"]) == 2
