"""`python -m core demo|check|split`: the CLI contract other tools depend on."""
from __future__ import annotations

import json
import subprocess
import sys


from core.cli import main
from core.data.split import read_split_info
from tests.conftest import ROOT
from tests.unit.test_data_scan import NUMBERED, make_bad_folder, make_numbered_folder


def records(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_demo_check_split_as_json(tmp_path, capsys):
    demo = tmp_path / "demo"
    assert main(["demo", str(demo), "--classes", "3", "--per-class", "10", "--size", "32", "--seed", "1", "--json"]) == 0
    assert records(capsys) == [{"path": str(demo), "classes": 3, "per_class": 10, "size": 32}]
    assert main(["check", str(demo), "--json"]) == 0
    (report,) = records(capsys)
    assert report["total_images"] == 30 and [c["name"] for c in report["classes"]] == ["circle", "square", "triangle"]
    out = tmp_path / "split"
    assert main(["split", str(demo), str(out), "--val", "0.1", "--test", "0.3", "--seed", "3", "--mode", "copy", "--json"]) == 0
    (info,) = records(capsys)
    assert info["counts"]["circle"] == {"train": 6, "val": 1, "test": 3} and info["mode"] == "copy"
    assert read_split_info(out)["seed"] == 3


def test_existing_split_needs_force(tmp_path, capsys):
    main(["demo", str(tmp_path / "d"), "--classes", "2", "--per-class", "5", "--size", "32"])
    assert main(["split", str(tmp_path / "d"), str(tmp_path / "s")]) == 0
    capsys.readouterr()
    assert main(["split", str(tmp_path / "d"), str(tmp_path / "s"), "--seed", "9", "--json"]) == 2
    assert records(capsys)[-1]["key"] == "data.split_exists"
    assert main(["split", str(tmp_path / "d"), str(tmp_path / "s"), "--seed", "9", "--force"]) == 0
    assert read_split_info(tmp_path / "s")["seed"] == 9


def test_check_lists_problems_and_exits_0(tmp_path, capsys):
    assert main(["check", str(make_bad_folder(tmp_path / "bad"))]) == 0
    text = capsys.readouterr().out
    assert "cat/truncated.jpg" in text and "cat/bomb.png" in text and "猫咪" in text


def test_not_a_dataset_exits_2_with_a_message(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    (tmp_path / "flat").mkdir()  # a folder without class folders
    assert main(["check", str(tmp_path / "flat"), "--json"]) == 2
    assert records(capsys)[0]["key"] == "data.no_classes"


def test_too_small_class_exits_2(tmp_path, capsys):
    bad = make_bad_folder(tmp_path / "bad")
    assert main(["split", str(bad), str(tmp_path / "s")]) == 2
    assert "empty" in capsys.readouterr().err


def test_chinese_output(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CNN_STUDIO_LANG", "zh")
    main(["demo", str(tmp_path / "demo"), "--classes", "2", "--per-class", "3", "--size", "32"])
    assert main(["check", str(tmp_path / "demo")]) == 0
    assert "数据集" in capsys.readouterr().out


def test_exit_status_of_the_real_process(tmp_path):
    """A file is not a dataset: the process itself exits 2 with a message and no traceback."""
    (tmp_path / "photo.jpg").write_bytes(b"x")
    done = subprocess.run([sys.executable, "-m", "core", "check", str(tmp_path / "photo.jpg")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "photo.jpg" in done.stderr and "Traceback" not in done.stderr


def test_split_table_shows_display_names_in_natural_order(tmp_path, capsys):
    src = make_numbered_folder(tmp_path / "flowers")
    assert main(["split", str(src), str(tmp_path / "s"), "--val", "0.2", "--test", "0.2"]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:5]]
    assert rows == ["1", "2", "10"]  # not 1, 10, 2
    assert main(["split", str(src), str(tmp_path / "s"), "--force"]) == 0
    text = capsys.readouterr().out
    assert "1 (pink primrose)" in text and "10 (globe thistle)" in text
    assert read_split_info(tmp_path / "s")["classes"] == NUMBERED  # indices keep ImageFolder's order
