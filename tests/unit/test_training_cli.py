"""`python -m core train | evaluate | predict`: one JSON object per epoch and a summary; bad input
exits 2 with a message; Ctrl-C stops the run cleanly."""
from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest

from core.cli import Output, main
from core import runs
from core.runs import create_run
from core.training.engine import Trainer
from tests.unit.test_training_core import TINY, cache, config, split  # noqa: F401 - shared fixtures

EPOCH_KEYS = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "img_per_s", "seconds"}
COMMON = ["--img-size", "32", "--batch-size", "16", "--augment", "light", "--seed", "3"]


@pytest.fixture(autouse=True)
def keep_ctrl_c():
    """`train` installs its own Ctrl-C handler; give pytest its own back."""
    previous = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, previous)


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
    from core.cli.train import AUGMENTS, DEVICES
    from core.data.augment import AUGMENT_PRESETS
    from core.device import CHOICES

    assert (AUGMENTS, DEVICES) == (AUGMENT_PRESETS, CHOICES)
