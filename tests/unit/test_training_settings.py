"""The course's settings in a run: plateau on the val loss, StepLR per transfer phase, phase 2
from phase 1's best weights (resumed exactly across that switch), TensorBoard per-batch
scalars, augmentation settings with a resize + centre-crop evaluation transform shared by
training, evaluation, prediction and export, and typed normalisation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import core
from core import runs
from core.data.augment import settings
from core.errors import UserError
from core.training import checkpoint, engine
from core.training.config import TrainConfig
from core.training.evaluate import evaluate_run
from tests.unit.test_training_core import (  # noqa: F401 - shared fixtures
    TINY,
    cache,
    config,
    epoch_figures,
    initial_model,
    scheduled_lrs,
    split,
    stop_after_epoch,
    train,
)

pytestmark = pytest.mark.usefixtures("steady_threads")  # conftest.py


# --- the config ------------------------------------------------------------------------------
def test_every_new_setting_round_trips_through_json():
    cfg = TrainConfig(data="/data/split", img_size=64, scheduler="plateau", plateau_metric="val_loss",
                      plateau_patience=3, gamma=0.5, freeze_epochs=20, epochs=30, phase2_lr=1e-3,
                      phase2_step_size=7, phase2_gamma=0.1, phase2_from_best=True, tensorboard_batch_every=50,
                      augment={"resize": 96, "rotation": 45, "crop": "center", "hflip": 0.5, "vflip": 0.5,
                               "brightness": 0.2, "contrast": 0.1, "saturation": 0.1, "hue": 0.1,
                               "grayscale": 0.025},
                      normalization={"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}).validated()
    assert cfg.augment == settings(cfg.augment, 64) and cfg.augment["resize"] == 96  # stored complete
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.to_dict() == cfg.to_dict()


def test_a_run_saved_before_these_settings_keeps_its_behaviour():
    old = {k: v for k, v in TrainConfig(data="x", scheduler="plateau").to_dict().items()
           if k not in ("plateau_metric", "plateau_patience", "phase2_lr", "phase2_step_size", "phase2_gamma",
                        "phase2_from_best", "tensorboard_batch_every")}
    cfg = TrainConfig.of_run(old)
    assert (cfg.plateau_metric, cfg.plateau_patience, cfg.phase2_lr, cfg.phase2_from_best, cfg.augment) == (
        "val_acc", 2, 0.0, False, "seed")


@pytest.mark.parametrize("changes, key", [
    ({"plateau_metric": "train_loss"}, "training.config_choice"),
    ({"plateau_patience": -1}, "training.config_range"),
    ({"phase2_lr": -0.1}, "training.config_range"),
    ({"phase2_step_size": -2}, "training.config_range"),
    ({"tensorboard_batch_every": 0}, "training.config_positive"),
    ({"augment": {"hflip": 2}}, "training.augment.bad_value"),
    ({"augment": {"resize": 96}}, "training.augment.needs_crop"),
    ({"normalization": {"mean": [0.5], "std": [0.5]}}, "training.normalization_bad"),
    ({"normalization": "cifar"}, "training.config_choice"),
])
def test_bad_new_settings_are_refused(changes, key):
    with pytest.raises(UserError) as err:
        TrainConfig.from_dict({"data": "x"} | changes)
    assert err.value.key == key


# --- schedules ---------------------------------------------------------------------------------
def test_plateau_on_the_val_loss_cuts_the_lr_after_patience_epochs():
    """The course: ReduceLROnPlateau(mode min, patience 3, factor 0.5) on the validation loss."""
    losses = [1.0, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.7]
    lrs = scheduled_lrs("plateau", len(losses), 1, metric=lambda e: losses[e], gamma=0.5,
                        plateau_metric="val_loss", plateau_patience=3)
    # epochs 3-5 without a lower loss are the patience, the fourth cuts; 0.7 then counts as progress
    assert lrs == pytest.approx([0.1] * 6 + [0.05] * 4 + [0.05])
    # the same numbers watched as an accuracy (mode max): a falling value is no progress
    lrs = scheduled_lrs("plateau", 4, 1, metric=lambda e: losses[e], gamma=0.5, plateau_metric="val_acc",
                        plateau_patience=1)
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05])


@pytest.mark.parametrize("metric, want", [
    ("val_loss", [0.01] * 5),                                  # the loss keeps falling: no cut
    ("val_acc", [0.01, 0.01, 0.01, 0.01, 0.005]),              # the accuracy is flat: cut after patience 2
])
def test_the_engine_steps_plateau_with_the_metric_it_watches(split, cache, tmp_path, monkeypatch, metric, want):
    scripted = iter([(1.0 - 0.1 * e, 0.5) for e in range(10)])  # (val loss, val acc) per epoch
    real = engine.loss_and_accuracy
    monkeypatch.setattr(engine, "loss_and_accuracy", lambda probs, labels: (real(probs, labels), next(scripted))[1])
    cfg = config(split, epochs=5, lr=0.01, scheduler="plateau", gamma=0.5, plateau_metric=metric, augment="none")
    run_dir, _ = train(cfg, tmp_path, cache)
    # an epoch record holds the lr its epoch trained with; the cut shows the epoch after
    assert [r["lr"] for r in runs.read_metrics(run_dir, "epoch")] == pytest.approx(want)


def test_steplr_step_and_gamma_per_transfer_phase(split, cache, tmp_path):
    cfg = config(split, epochs=6, lr=0.02, scheduler="step", step_size=2, gamma=0.5, freeze_epochs=3,
                 phase2_lr=0.01, phase2_step_size=1, phase2_gamma=0.1, augment="none")
    run_dir, summary = train(cfg, tmp_path, cache)
    assert summary["status"] == "finished"
    assert [r["lr"] for r in runs.read_metrics(run_dir, "epoch")] == pytest.approx(
        [0.02, 0.02, 0.01, 0.01, 0.001, 0.0001])
    # without phase 2 values: lr x unfreeze factor and the first phase's step and gamma, as before
    cfg = config(split, epochs=5, lr=0.02, scheduler="step", step_size=2, gamma=0.5, freeze_epochs=2,
                 unfreeze_lr_factor=0.5, augment="none")
    run_dir, _ = train(cfg, tmp_path, cache)
    assert [r["lr"] for r in runs.read_metrics(run_dir, "epoch")] == pytest.approx([0.02, 0.02, 0.01, 0.01, 0.005])


# --- phase 2 from phase 1's best weights --------------------------------------------------------
def weights(state: dict) -> dict:
    """Trained weights only (BatchNorm statistics follow the data even at a tiny lr)."""
    return {k: v for k, v in state.items() if k.endswith(("weight", "bias"))}


def test_phase_2_starts_from_phase_1s_best_weights(split, cache, tmp_path, monkeypatch):
    real_track = engine.Trainer._track
    # epoch 1 is phase 1's best, epoch 2 not: best.pt and last.pt differ at the switch
    monkeypatch.setattr(engine.Trainer, "_track", lambda self, loss, acc: real_track(self, loss, acc) and self.epoch == 1)
    base = {"epochs": 3, "lr": 0.05, "freeze_epochs": 2, "phase2_lr": 1e-12, "augment": "none"}  # phase 2 barely moves
    stopped, _ = train(config(split, **base), tmp_path, cache, **stop_after_epoch(2))
    best = weights(checkpoint.load(stopped / "best.pt")["model"])
    at_switch = weights(checkpoint.load(stopped / "last.pt")["model"])
    assert checkpoint.load(stopped / "best.pt")["epoch"] == 1
    assert any(not torch.equal(best[k], at_switch[k]) for k in best)

    for from_best, start in ((True, best), (False, at_switch)):
        run_dir, summary = train(config(split, **base, phase2_from_best=from_best), tmp_path, cache)
        assert summary["status"] == "finished"
        after = weights(checkpoint.load(run_dir / "last.pt")["model"])
        assert all(torch.allclose(after[k], start[k], atol=1e-6) for k in start), from_best


def test_resume_is_exact_across_the_switch_to_phase_2_from_best(split, cache, tmp_path, monkeypatch):
    real_track = engine.Trainer._track
    monkeypatch.setattr(engine.Trainer, "_track", lambda self, loss, acc: real_track(self, loss, acc) and self.epoch == 1)
    cfg = config(split, epochs=4, lr=0.02, freeze_epochs=2, phase2_from_best=True, phase2_lr=5e-3,
                 scheduler="step", step_size=1, phase2_step_size=1, phase2_gamma=0.5)
    full, summary = train(cfg, tmp_path, cache)
    assert summary["status"] == "finished"
    for stop_at in (1, 2, 3):  # inside phase 1, right at the switch, inside phase 2
        stopped, _ = train(cfg, tmp_path, cache, **stop_after_epoch(stop_at))
        _, summary = train(cfg, tmp_path, cache, run_dir=stopped, resume=True)
        assert summary["status"] == "finished"
        for got, want in zip(epoch_figures(stopped), epoch_figures(full), strict=True):
            assert got == pytest.approx(want, rel=1e-5, abs=1e-6), stop_at
        final, reference = checkpoint.load(stopped / "last.pt")["model"], checkpoint.load(full / "last.pt")["model"]
        assert all(torch.allclose(final[k].float(), reference[k].float(), atol=1e-5) for k in reference)


# --- TensorBoard per-batch scalars --------------------------------------------------------------
def test_tensorboard_batch_scalars_every_n_batches(split, cache, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = config(split, epochs=2, lr=4e-3, tensorboard=True, tensorboard_batch_every=3, scheduler="onecycle")
    run_dir, _ = train(cfg, tmp_path, cache)
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"Train/Batch_Loss", "Train/Batch_Accuracy", "Train/Learning_Rate"} <= tags
    # 2 epochs x 4 batches: batches 0, 3 and 6 (counted from 0 over the run, as the lesson's global step)
    for tag in ("Train/Batch_Loss", "Train/Batch_Accuracy", "Train/Learning_Rate"):
        assert [e.step for e in events.Scalars(tag)] == [0, 3, 6], tag
    assert all(0 <= e.value <= 1 for e in events.Scalars("Train/Batch_Accuracy"))
    assert all(e.value > 0 for e in events.Scalars("Train/Batch_Loss"))
    # the lr the batch trained with (one-cycle moves it every step)
    from tests.unit.test_training_core import one_cycle

    assert [e.value for e in events.Scalars("Train/Learning_Rate")] == pytest.approx(
        [one_cycle(s, cfg.lr, 8) for s in (0, 3, 6)], rel=1e-5)


# --- augmentation settings and the evaluation transform through a run ------------------------
def test_a_run_with_resize_and_centre_crop_evaluates_and_predicts_the_same_way(split, cache, tmp_path):
    """Training images stored at 40 px and centre-cropped to 32; evaluation resizes to 40 and
    takes the centre: the val batches, `evaluate`, `predict` and the cache agree."""
    augment = {"resize": 40, "crop": "random", "rotation": 10.0, "hflip": 0.5, "hue": 0.05, "eval_resize": 40}
    cfg = config(split, epochs=2, augment=augment,
                 normalization={"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]})
    run_dir, summary = train(cfg, tmp_path, cache)
    assert summary["status"] == "finished"
    saved = runs.read_config(run_dir)
    assert saved["augment"] == settings(augment, 32) and saved["mean"] == [0.4914, 0.4822, 0.4465]
    assert (3, 40, 40) in {np.load(f, mmap_mode="r").shape[1:] for f in cache.glob("images-*.npy")}

    result = evaluate_run(run_dir, split="val", cache_dir=cache)
    assert result["accuracy"] == pytest.approx(runs.read_metrics(run_dir, "epoch")[-1]["val_acc"], abs=1e-6)
    rows = [line.split(",") for line in (run_dir / "predictions.csv").read_text(encoding="utf-8").splitlines()[1:7]]
    model, info = core.load_model(run_dir)
    probs = core.predict(model, [split / "test" / row[0] for row in rows], info)
    assert [info.classes[i] for i in probs.argmax(1).tolist()] == [row[2] for row in rows]
    assert probs.max(1).values.tolist() == pytest.approx([float(row[3]) for row in rows], abs=1e-4)
    # a photo straight to 32 px would differ: the crop is really applied
    from core.data.augment import eval_input

    image = split / "test" / rows[0][0]
    assert not torch.equal(eval_input(image, 32, 40), eval_input(image, 32, 32))
    x = core.inference.preprocess([image], info)
    assert x.shape == (1, 3, 32, 32)


def test_a_preset_run_keeps_its_preset_name_and_imagenet_statistics(split, cache, tmp_path):
    cfg = config(split, epochs=1)
    run_dir, _ = train(cfg, tmp_path, cache)
    saved = runs.read_config(run_dir)
    assert saved["augment"] == "light" and saved["mean"] == [0.485, 0.456, 0.406]
    assert initial_model(cfg).state_dict().keys() == checkpoint.load(run_dir / "last.pt")["model"].keys()
    assert TINY == saved["model"]


# --- export follows the evaluation transform ----------------------------------------------------
@pytest.mark.parametrize("mode", ["square", "shorter"])
def test_predict_py_applies_the_evaluation_transform_like_the_studio(tmp_path, mode):
    from core.data.augment import eval_input
    from tests.unit.test_export import load_template, odd_images

    shipped = load_template()
    for path in odd_images(tmp_path):
        for size, side in ((32, 32), (32, 40), (57, 73)):
            ours = eval_input(path, size, side, mode).numpy()
            theirs = shipped.to_input(shipped.open_image(path), size, side, mode)
            assert np.array_equal(ours, theirs), (path.name, size, side, mode)


def test_an_export_of_a_run_with_resize_and_centre_crop_passes_its_check(tmp_path):
    from core.atomic import read_json, write_json
    from core.data.demo import make_demo
    from core.data.split import split_dataset
    from core.export import export_run, recheck
    from tests.unit.test_export import make_run

    make_demo(tmp_path / "demo", classes=3, per_class=6, size=50, seed=1)
    split_dataset(tmp_path / "demo", tmp_path / "split", val=0.34, test=0.34, seed=0)
    run_dir = make_run(tmp_path / "runs", {"preset": "simple_cnn"}, tmp_path / "split")
    saved = runs.read_config(run_dir)
    write_json(run_dir / "config.json", saved | {"augment": settings({"eval_resize": 44, "resize_mode": "shorter"}, 32)})
    result = export_run(run_dir)
    assert result.passed, result.parity.problems
    prep = read_json(result.folder / "preprocess.json")
    assert (prep["size"], prep["resize_to"], prep["resize_mode"]) == (32, 44, "shorter")
    assert result.parity.predictor_agreement == 1.0
    # a folder whose preprocess.json lost the rule fails the check
    write_json(result.folder / "preprocess.json", {k: v for k, v in prep.items() if k != "resize_to"})
    assert "export.check.preprocess_mismatch" in [p["key"] for p in recheck(run_dir).parity.problems]
