"""Bug 5: a split a run trained on never changes under it, and evaluating a run on any other data
is stored apart from the run's own results (which Compare reads)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core import runs
from core.cli import main
from core.data.demo import make_demo
from core.data.split import read_split_info, split_dataset, split_identity
from core.runs import create_run
from core.runs.compare import load_view
from core.training.engine import Trainer
from core.training.evaluate import evaluate_run
from tests.unit.test_training_core import config

OWN_FILES = ("predictions.csv", "eval_test.json")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A demo set, its split (seed 1) and a finished one-epoch run on it, in a runs folder of its own."""
    root = tmp_path_factory.mktemp("versions")
    make_demo(root / "demo", classes=3, per_class=12, size=32, seed=0)
    split_dataset(root / "demo", root / "split", val=0.25, test=0.25, seed=1)
    cfg = config(root / "split")
    run = create_run(cfg, root / "runs")
    Trainer(cfg, run, cache_dir=root / "cache").run()
    assert runs.read_summary(run)["status"] == "finished"
    return {"root": root, "demo": root / "demo", "split": root / "split", "run": run, "cache": root / "cache"}


def own_files(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in OWN_FILES}


def copy_of(trained, tmp_path) -> tuple[Path, Path]:
    """The split and the run copied elsewhere, the run pointing at its copy (tests that change them)."""
    split, run = tmp_path / "split", tmp_path / "runs" / trained["run"].name
    shutil.copytree(trained["split"], split)
    shutil.copytree(trained["run"], run)
    config_file = run / "config.json"
    config_file.write_text(json.dumps(runs.read_config(run) | {"data": str(split)}), encoding="utf-8")
    return split, run


def test_the_run_records_the_identity_of_its_split(trained):
    split_id = read_split_info(trained["split"])["id"]
    assert split_id == split_identity(trained["split"])
    assert runs.read_summary(trained["run"])["split_id"] == split_id  # kept when training rewrote the config
    assert (trained["split"] / ".runs" / f"{trained['run'].name}.json").is_file()


def test_resplitting_a_split_in_use_is_refused_naming_the_run(trained, capsys):
    """`core split SRC OUT --force --seed 2` replaced the run's split: 12 of 18 new test images
    had been its training images."""
    split, run = trained["split"], trained["run"]
    before = (read_split_info(split), sorted(p.relative_to(split).as_posix() for p in split.rglob("*.png")))
    assert main(["split", str(trained["demo"]), str(split), "--seed", "2", "--force"]) == 2
    err = capsys.readouterr().err
    assert run.name in err and f"{split.name}-2" in err
    assert (read_split_info(split), sorted(p.relative_to(split).as_posix() for p in split.rglob("*.png"))) == before
    assert main(["split", str(trained["demo"]), str(split), "--force", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["key"] == "data.split_in_use"


def test_evaluating_on_another_split_is_stored_apart_and_labelled(trained, capsys):
    run = trained["run"]
    own, compared = own_files(run), load_view(run)
    other = trained["root"] / "other"
    split_dataset(trained["demo"], other, val=0.25, test=0.25, seed=2)
    result = evaluate_run(run, other, cache_dir=trained["cache"])
    assert not result["own_data"] and result["other_reason"] == "other_folder"
    stored = Path(result["stored"])
    assert stored.parent == run / "evaluations" and stored.is_file() and stored.with_suffix(".csv").is_file()
    saved = json.loads(stored.read_text(encoding="utf-8"))
    assert saved["split_id"] == split_identity(other) and saved["accuracy"] == result["accuracy"]
    assert own_files(run) == own  # the run's own predictions and test figures are untouched
    again = load_view(run)  # Compare still reads the run's own files
    assert again.predictions.equals(compared.predictions) and again.evaluation == compared.evaluation

    assert main(["evaluate", str(run), "--data", str(other)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Evaluated on other data:") and "not the split the run trained on" in text
    assert own_files(run) == own


def test_a_changed_split_in_the_same_folder_is_other_data(trained, tmp_path, capsys):
    """The same folder, but not the same files in each part (edited by hand, or by an older version)."""
    split, run = copy_of(trained, tmp_path)
    predictions = (run / "predictions.csv").read_bytes()
    assert evaluate_run(run, cache_dir=trained["cache"])["own_data"]  # unchanged: the run's own evaluation
    assert (run / "predictions.csv").read_bytes() == predictions
    own = own_files(run)
    moved = next((split / "train" / "circle").iterdir())
    moved.rename(split / "test" / "circle" / moved.name)  # a training image is now a test image
    result = evaluate_run(run, cache_dir=trained["cache"])
    assert not result["own_data"] and result["other_reason"] == "split_changed"
    assert own_files(run) == own and Path(result["stored"]).parent == run / "evaluations"
    assert main(["evaluate", str(run), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["own_data"] is False and record["other_reason"] == "split_changed"


def test_a_run_from_before_split_ids_compares_its_image_counts(trained, tmp_path):
    split, run = copy_of(trained, tmp_path)
    for name in ("config.json", "summary.json"):
        values = json.loads((run / name).read_text(encoding="utf-8"))
        values.pop("split_id", None)
        (run / name).write_text(json.dumps(values), encoding="utf-8")
    assert evaluate_run(run, cache_dir=trained["cache"])["own_data"]
    next((split / "test" / "circle").iterdir()).unlink()
    assert evaluate_run(run, cache_dir=trained["cache"])["other_reason"] == "split_changed"
