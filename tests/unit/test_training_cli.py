"""`python -m core train | evaluate | predict`: one JSON object per epoch and a summary; bad input
exits 2 with a message; Ctrl-C stops the run cleanly."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core import i18n, runs
from core.cli import Output, main
from core.cli.train import field_default, field_kinds
from core.errors import UserError
from core.runs import create_run
from core.training.config import TrainConfig
from core.training.engine import Trainer
from tests.conftest import ROOT
from tests.unit.test_training_core import TINY, cache, config, split  # noqa: F401 - shared fixtures

EPOCH_KEYS = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "img_per_s", "seconds"}
COMMON = ["--img-size", "32", "--batch-size", "16", "--augment", "light", "--seed", "3"]


pytestmark = pytest.mark.usefixtures("keep_ctrl_c")  # train installs its own Ctrl-C handler


@pytest.fixture
def tiny_spec(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY["spec"]), encoding="utf-8")
    return path


def records(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_train_prints_a_record_per_epoch_and_a_summary(workspace, split, tiny_spec, capsys):
    code = main(["train", "--data", str(split), "--model", str(tiny_spec), "--epochs", "2", *COMMON, "--json"])
    assert code == 0
    start, *epochs, final = records(capsys)
    assert start["event"] == "start"
    assert [r["epoch"] for r in epochs] == [1, 2] and all(set(r) == EPOCH_KEYS for r in epochs)
    assert final["run"] == start["run"] and final["summary"]["status"] == "finished"
    assert final["summary"]["epochs_done"] == 2 and 0 <= final["summary"]["test_acc"] <= 1
    run_dir = workspace.runs / final["run"].rsplit("/", 1)[-1]
    assert runs.read_config(run_dir)["model"] == TINY
    assert [r["val_acc"] for r in runs.read_metrics(run_dir, "epoch")] == [r["val_acc"] for r in epochs]


def test_evaluate_and_predict_a_run_by_id(workspace, split, cache, capsys):
    cfg = config(split, epochs=1)
    run_dir = create_run(cfg, workspace.runs)
    Trainer(cfg, run_dir, cache_dir=cache).run()

    assert main(["evaluate", run_dir.name, "--split", "val", "--json"]) == 0
    (result,) = records(capsys)
    assert result["n"] == 30 and len(result["per_class"]) == 5 and len(result["confusion"]) == 5
    assert result["accuracy"] == pytest.approx(runs.read_metrics(run_dir, "epoch")[-1]["val_acc"], abs=1e-6)
    assert (run_dir / "eval_val.json").is_file()
    assert main(["evaluate", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert "circle" in text and "F1" in text
    # Display names from the split's cat_to_name.json (kept in the run's config) label the rows.
    config_path = run_dir / "config.json"
    saved = json.loads(config_path.read_text(encoding="utf-8"))
    names = ["圆形", "十字", "正方形", "星形", "三角形"]
    config_path.write_text(json.dumps(saved | {"display_names": names}, ensure_ascii=False), encoding="utf-8")
    assert main(["evaluate", run_dir.name, "--split", "val"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in names)
    assert main(["evaluate", run_dir.name, "--split", "val", "--json"]) == 0
    rows = records(capsys)[0]["per_class"]
    assert [(r["class"], r["name"]) for r in rows][:2] == [("circle", "圆形"), ("cross", "十字")]

    images = sorted((split / "test" / "star").iterdir())[:2]
    assert main(["predict", str(run_dir), *map(str, images), "--topk", "3", "--json"]) == 0
    first, second = records(capsys)
    assert first["image"] == str(images[0]) and second["image"] == str(images[1])
    ps = [r["p"] for r in first["top"]]
    assert len(ps) == 3 and ps == sorted(ps, reverse=True) and 0 < sum(ps) <= 1 + 1e-6
    assert {r["class"] for r in first["top"]} <= {"circle", "cross", "square", "star", "triangle"}


def stopped_after_one_epoch(split, cache, runs_dir) -> Path:
    cfg = config(split, epochs=2)
    run_dir = create_run(cfg, runs_dir)
    stop = threading.Event()
    Trainer(cfg, run_dir, cache_dir=cache, stop=stop,
            on_record=lambda r: stop.set() if r["type"] == "epoch" else None).run()
    assert runs.read_summary(run_dir)["status"] == "stopped"
    return run_dir


def test_resume_a_stopped_run(workspace, split, cache, capsys):
    run_dir = stopped_after_one_epoch(split, cache, workspace.runs)
    assert main(["train", "--resume", run_dir.name, "--json"]) == 0
    _, epoch, final = records(capsys)
    assert epoch["epoch"] == 2 and final["summary"]["status"] == "finished"
    # finished now: resuming again is refused with a message
    assert main(["train", "--resume", run_dir.name, "--json"]) == 2
    assert records(capsys)[0]["key"] == "training.cannot_resume"


def test_resume_a_run_whose_training_process_was_killed(workspace, split, cache, capsys):
    """Left `running` by a dead process: the CLI sees it is interrupted and continues it."""
    run_dir = stopped_after_one_epoch(split, cache, workspace.runs)
    runs.update_summary(run_dir, status="running", pid=2**22 + 1)  # as a SIGKILL leaves it
    assert main(["train", "--resume", str(run_dir), "--json"]) == 0
    _, epoch, final = records(capsys)
    assert epoch["epoch"] == 2 and final["summary"]["status"] == "finished"


@pytest.mark.parametrize("argv, key", [
    (["train", "--data", "{tmp}/nowhere"], "data."),
    (["train", "--epochs", "1"], "training.cli.need_data"),
    (["train", "--data", "{split}", "--optimizer", "rmsprop"], "training.config_choice"),
    (["train", "--data", "{split}", "--model", "{tmp}/no-model.json"], "models.ref_not_found"),
    (["train", "--resume", "no-such-run"], "runs.not_found"),
    (["evaluate", "{tmp}/no-run"], "runs.not_found"),
    (["evaluate", "{tmp}", "--split", "test"], "runs.not_found"),
    (["predict", "{tmp}/no-run", "{tmp}/x.jpg"], "runs.not_found"),
])
def test_bad_input_exits_2_with_a_message(workspace, split, tmp_path, capsys, argv, key):
    argv = [a.format(tmp=tmp_path, split=split) for a in argv]
    assert main(argv + ["--json"]) == 2
    (error,) = records(capsys)
    assert error["key"].startswith(key) and error["error"] and "Traceback" not in error["error"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() and "Traceback" not in captured.err and captured.out == ""
    assert not list(workspace.runs.glob("*"))  # nothing half-made


def test_predict_a_missing_or_broken_image_exits_2(workspace, split, cache, tmp_path, capsys):
    cfg = config(split, epochs=1)
    run_dir = create_run(cfg, workspace.runs)
    Trainer(cfg, run_dir, cache_dir=cache).run()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    for image in (tmp_path / "missing.jpg", broken):
        assert main(["predict", str(run_dir), str(image), "--json"]) == 2
        (error,) = records(capsys)
        assert error["key"].startswith("image") and str(image) in error["error"], error


def test_ctrl_c_stops_a_cli_run_cleanly(workspace, split, tiny_spec, capsys, monkeypatch):
    """SIGINT (Ctrl-C) after the first epoch's line ends the run as `stopped`, exit code 0."""
    real_emit = Output.emit

    def emit_then_ctrl_c(self, record, text=None):
        real_emit(self, record, text)
        if "epoch" in record:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(Output, "emit", emit_then_ctrl_c)
    assert main(["train", "--data", str(split), "--model", str(tiny_spec), "--epochs", "50", *COMMON, "--json"]) == 0
    *_, epoch, final = records(capsys)
    assert epoch["epoch"] == 1 and final["summary"]["status"] == "stopped" and final["summary"]["epochs_done"] == 1
    run_dir = workspace.runs / final["run"].rsplit("/", 1)[-1]
    assert runs.read_summary(run_dir)["status"] == "stopped" and (run_dir / "last.pt").is_file()


def test_train_help_lists_the_choices_core_accepts():
    """--help names the choices without importing torch; they must not drift from core's."""
    from core.cli.explain import METHODS
    from core.cli.train import AUGMENTS, CHOICES, DEVICES
    from core.data.augment import AUGMENT_PRESETS
    from core.device import CHOICES as DEVICE_CHOICES
    from core.explain.cam import METHODS as CAM_METHODS

    assert (AUGMENTS, DEVICES, METHODS) == (AUGMENT_PRESETS, DEVICE_CHOICES, tuple(CAM_METHODS))
    # a field that validated() checks against a list of choices lists those same choices in --help
    for f in dataclasses.fields(TrainConfig):
        if field_kinds()[f.name] is not str or f.name in ("data", "name"):
            continue
        try:
            TrainConfig(**{"data": "x", f.name: "no such choice"}).validated()
        except UserError as refused:
            if refused.key == "training.config_choice":
                assert ", ".join(CHOICES[f.name]) == refused.params["choices"], f.name


# --- every setting of the Training page on the command line -----------------------------------

def other_value(name: str, kind, default):
    """A valid value for field `name` that is not its default, as a flag's text."""
    from core.cli.train import CHOICES

    if name in CHOICES:
        return next(c for c in CHOICES[name] if c != default)
    if name == "model":
        return "cbam_cnn"
    return {int: lambda: str(default + 1), float: lambda: "0.25" if default != 0.25 else "0.5",
            str: lambda: "another"}[kind]()


# Fields that take a name or a JSON object: set by flag as JSON (the names are other tests' business).
OBJECTS = {"augment": {"rotation": 10, "hflip": 0.5, "crop": "center", "resize": 80, "eval_resize": 72},
           "normalization": {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.201]}}


def flags_for_every_field(data: Path) -> tuple[list[str], dict]:
    """Flags that set every TrainConfig field to a value other than its default, and those values."""
    from core.data.augment import settings

    argv, expected = [], {}
    for f in dataclasses.fields(TrainConfig):
        kind, default = field_kinds()[f.name], field_default(f)
        flag = "--" + f.name.replace("_", "-")
        if f.name == "data":
            argv += [flag, str(data)]
            expected[f.name] = str(data.resolve())
        elif f.name in OBJECTS:
            argv += [flag, json.dumps(OBJECTS[f.name])]
            expected[f.name] = OBJECTS[f.name]
        elif kind is bool:
            argv.append(flag if not default else "--no-" + f.name.replace("_", "-"))
            expected[f.name] = not default
        else:
            text = other_value(f.name, kind, default)
            argv += [flag, text]
            expected[f.name] = {"preset": text} if f.name == "model" else kind(text)
        assert expected[f.name] != default, f.name
    expected["augment"] = settings(expected["augment"], expected["img_size"])  # stored with every setting
    return argv, expected


def print_config(argv: list[str], capsys) -> dict:
    assert main(["train", *argv, "--print-config", "--json"]) == 0
    (printed,) = records(capsys)
    return printed


def test_every_training_setting_is_reachable_by_a_flag(workspace, tmp_path, capsys):
    argv, expected = flags_for_every_field(tmp_path / "split")
    printed = print_config(argv, capsys)
    assert printed == expected
    assert TrainConfig.from_dict(printed).to_dict() == printed
    assert not list(workspace.runs.glob("*"))  # --print-config trains nothing


def test_a_config_file_round_trips_and_flags_override_it(workspace, tmp_path, capsys):
    argv, expected = flags_for_every_field(tmp_path / "split")
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(print_config(argv, capsys)), encoding="utf-8")
    assert print_config(["--config", str(saved)], capsys) == expected

    # Flags win over the file, also a flag given with TrainConfig's default value.
    defaults = TrainConfig(data="x")
    overridden = print_config(["--config", str(saved), "--epochs", str(defaults.epochs), "--lr", "0.5",
                               "--no-tensorboard", "--model", "simple_cnn"], capsys)
    assert overridden == expected | {"epochs": defaults.epochs, "lr": 0.5, "tensorboard": False,
                                     "model": {"preset": "simple_cnn"}}

    # A short file: TrainConfig's defaults fill the rest; its model may be a reference or a name.
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"data": str(tmp_path / "split"), "model": TINY, "epochs": 3}), encoding="utf-8")
    assert print_config(["--config", str(short)], capsys) == defaults.to_dict() | {
        "data": str((tmp_path / "split").resolve()), "model": TINY, "epochs": 3}


def test_augmentation_and_normalisation_take_a_name_or_json_settings(workspace, tmp_path, capsys):
    from core.data.augment import settings

    base = ["--data", str(tmp_path / "split"), "--img-size", "64"]
    assert print_config(base + ["--augment", "strong"], capsys)["augment"] == "strong"
    printed = print_config(base + ["--augment", '{"resize": 96, "rotation": 45, "crop": "center", "vflip": 0.5}',
                                   "--normalization", "dataset"], capsys)
    assert printed["augment"] == settings({"resize": 96, "rotation": 45.0, "crop": "center", "vflip": 0.5}, 64)
    assert printed["augment"]["eval_resize"] == 0 and printed["normalization"] == "dataset"
    # the printed config is a --config file that gives the same settings back, flags still win
    saved = tmp_path / "printed.json"
    saved.write_text(json.dumps(printed), encoding="utf-8")
    again = print_config(["--config", str(saved), "--normalization", '{"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}'],
                         capsys)
    assert again == printed | {"normalization": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}
    assert TrainConfig.from_dict(again).to_dict() == again


@pytest.mark.parametrize("argv, file, key, params", [
    (["--epochs", "ten"], None, "training.cli.not_int", {"field": "epochs", "value": "ten"}),
    (["--lr", "fast"], None, "training.cli.not_float", {"field": "lr", "value": "fast"}),
    (["--batch-size", "0"], None, "training.config_positive", {"field": "batch_size", "value": 0}),
    (["--frozen-bn", "sometimes"], None, "training.config_choice",
     {"field": "frozen_bn", "value": "sometimes", "choices": "eval, train"}),
    ([], {"nesterov": "yes"}, "training.cli.not_bool", {"field": "nesterov", "value": "yes"}),
    ([], {"epochs": 2.5}, "training.cli.not_int", {"field": "epochs", "value": 2.5}),
    ([], {"learning_rate": 0.1}, "training.config_unknown", {"keys": "learning_rate"}),
    (["--augment", "{rotation: 10}"], None, "training.cli.not_json", {"field": "augment", "value": "{rotation: 10}"}),
    (["--augment", "spin"], None, "training.config_choice",
     {"field": "augment", "value": "spin", "choices": "none, light, seed, strong"}),
    (["--augment", '{"spin": 10}'], None, "training.augment.unknown",
     {"keys": "spin", "known": "resize, resize_mode, crop, padding, scale, ratio, hflip, vflip, rotation, translate, "
      "interpolation, brightness, contrast, saturation, hue, jitter_order, grayscale, eval_resize, order"}),
    (["--plateau-metric", "train_loss"], None, "training.config_choice",
     {"field": "plateau_metric", "value": "train_loss", "choices": "val_acc, val_loss"}),
    ([], ["not", "an", "object"], "training.cli.config_not_object", {"path": "{tmp}/run.json"}),
    ([], "{not json", "training.cli.config_bad", {"path": "{tmp}/run.json", "reason": ""}),
    (["--config", "{tmp}/nowhere.json"], None, "training.cli.config_missing", {"path": "{tmp}/nowhere.json"}),
])
def test_a_bad_setting_exits_2_with_a_translated_message(workspace, tmp_path, capsys, monkeypatch,
                                                          argv, file, key, params):
    argv = ["train", "--data", str(tmp_path), *[a.replace("{tmp}", str(tmp_path)) for a in argv]]
    if file is not None:
        path = tmp_path / "run.json"
        path.write_text(file if isinstance(file, str) else json.dumps(file), encoding="utf-8")
        argv += ["--config", str(path)]
    assert main([*argv, "--json"]) == 2
    (error,) = records(capsys)
    assert error["key"] == key and "Traceback" not in error["error"]
    monkeypatch.setenv("CNN_STUDIO_LANG", "zh")
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    message = captured.err.strip().split(": ", 1)[1]
    expected = i18n.t(key, "zh", **{k: str(v).replace("{tmp}", str(tmp_path)) for k, v in params.items()})
    assert message.startswith(expected) if "reason" in params else message == expected
    assert not list(workspace.runs.glob("*"))


def test_the_zh_message_is_the_translation():
    assert i18n.t("training.cli.not_int", "zh", field="epochs", value="ten") == "epochs 必须是整数（当前为 ten）。"


def test_help_lists_every_setting_translated_without_importing_torch():
    """`train --help` is quick: it builds the flags from TrainConfig without loading torch."""
    code = ("import contextlib, io, sys\n"
            "from core.cli import main\n"
            "text = io.StringIO()\n"
            "with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):\n"
            "    main(['train', '--help'])\n"
            "print(text.getvalue())\n"
            "print('torch imported' if 'torch' in sys.modules else 'no torch')\n")
    for lang in i18n.LANGS:
        done = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env=os.environ | {"CNN_STUDIO_LANG": lang})
        assert done.returncode == 0, done.stderr
        assert done.stdout.rstrip().endswith("no torch")
        for f in dataclasses.fields(TrainConfig):
            assert "--" + f.name.replace("_", "-") in done.stdout, f.name
            assert f"training.cli.{f.name}" not in done.stdout  # a missing translation shows its key
        assert "--print-config" in done.stdout and "--config" in done.stdout


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    """`python -m core check DIR --json | head -1`: the pipe closes before the CLI has written."""
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("RGB", (8, 8), (60 * i, 0, 0) if name == "a" else (0, 60 * i, 0)).save(tmp_path / name / f"{i}.png")
    proc = subprocess.Popen([sys.executable, "-m", "core", "check", str(tmp_path), "--json"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert stderr == ""
