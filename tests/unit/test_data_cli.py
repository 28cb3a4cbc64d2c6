"""`python -m core demo|check|split`: the CLI contract other tools depend on."""
from __future__ import annotations

import json
import subprocess
import sys

from core.cli import main
from core.data.split import read_split_info
from tests.conftest import ROOT
from tests.unit.test_data_scan import (
    NUMBERED,
    copies_of_another_class,
    make_bad_folder,
    make_numbered_folder,
    noise_image,
    save,
)


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


def test_too_small_class_exits_2_naming_it_and_the_way_out(tmp_path, capsys):
    bad = make_bad_folder(tmp_path / "bad")
    assert main(["split", str(bad), str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "Class one has only 1" in err and "--small-classes" in err  # the empty class is not the problem
    assert not (tmp_path / "s").exists()


def test_small_classes_flag_and_empty_class_note(tmp_path, capsys):
    """Bug 11: an empty class folder is left out with a note, not a refusal; a 1-image class is
    kept in training only or left out, as asked."""
    bad = make_bad_folder(tmp_path / "bad")
    assert main(["split", str(bad), str(tmp_path / "s"), "--small-classes", "train-only"]) == 0
    text = capsys.readouterr().out
    assert "Class empty: no images: left out of the split" in text
    assert "In training only (too few images for validation and test): one" in text
    info = read_split_info(tmp_path / "s")
    assert "empty" not in info["classes"] and info["counts"]["one"] == {"train": 1, "val": 0, "test": 0}
    assert info["left_out"] == [{"class": "empty", "reason": "empty", "images": 0}] and info["train_only"] == ["one"]
    assert main(["split", str(bad), str(tmp_path / "t"), "--small-classes", "leave-out", "--json"]) == 0
    (record,) = records(capsys)
    assert record["classes"] == ["cat", "猫咪"]
    assert {item["class"]: item["reason"] for item in record["left_out"]} == {"empty": "empty", "one": "too_small"}


def test_tiny_class_keeps_a_training_image(tmp_path, capsys):
    """Bug 8: 3 images with --val 0.05 --test 0.9 gave train 0 / val 1 / test 2 and exit 0."""
    for cls in ("big", "tiny"):
        for i in range(3 if cls == "tiny" else 40):
            save(noise_image((cls == "tiny") * 1000 + i), tmp_path / "src" / cls / f"{i}.png")
    assert main(["split", str(tmp_path / "src"), str(tmp_path / "s"), "--val", "0.05", "--test", "0.9", "--json"]) == 0
    (info,) = records(capsys)
    assert info["counts"]["tiny"] == {"train": 1, "val": 1, "test": 1}
    assert len(list((tmp_path / "s" / "train" / "tiny").iterdir())) == 1


def test_check_reports_the_count_a_split_uses_with_the_reason(tmp_path, capsys):
    """Bug 11: `check` said 12 usable for a class of copies, `split` then used 0."""
    src = copies_of_another_class(tmp_path / "d")
    assert main(["check", str(src)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["b"])
    assert line.split()[1] == "0" and "12 images, all exact copies of images in class a" in line
    assert main(["check", str(src), "--json"]) == 0
    (report,) = records(capsys)
    usable = {c["name"]: c["images"] for c in report["classes"]}
    assert main(["split", str(src), str(tmp_path / "s"), "--json"]) == 0
    (info,) = records(capsys)
    used = {c: sum(n.values()) for c, n in info["counts"].items()}
    assert used == {c: n for c, n in usable.items() if n} and usable["b"] == 0
    assert info["left_out"] == [{"class": "b", "reason": "no_usable", "images": 0}]


def test_chinese_output(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CNN_STUDIO_LANG", "zh")
    main(["demo", str(tmp_path / "demo"), "--classes", "2", "--per-class", "3", "--size", "32"])
    assert main(["check", str(tmp_path / "demo")]) == 0
    assert "数据集" in capsys.readouterr().out


def test_exit_status_of_the_real_process(tmp_path):
    """A file is not a dataset: the process itself exits 2 with a message and no traceback."""
    (tmp_path / "photo.jpg").write_bytes(b"x")
    done = subprocess.run([sys.executable, "-m", "core", "check", str(tmp_path / "photo.jpg")], check=False, cwd=ROOT,
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


def test_check_names_label_conflicts_and_imbalance(tmp_path, capsys):
    src = tmp_path / "d"
    for i in range(8):
        save(noise_image(700 + i), src / "big" / f"{i}.png")
    for i in range(2):
        save(noise_image(800 + i), src / "small" / f"{i}.png")
    (src / "small" / "also_big.png").write_bytes((src / "big" / "0.png").read_bytes())
    assert main(["check", str(src)]) == 0
    text = capsys.readouterr().out
    assert "Label conflicts (the same photo in two class folders; the first copy is used): 1" in text
    assert "big/0.png (big) = small/also_big.png (small)" in text
    assert "Largest : smallest class: 4.0 : 1 (big 8, small 2)" in text and "unbalanced" in text
    assert main(["check", str(src), "--json"]) == 0
    (record,) = records(capsys)
    assert record["imbalance"] == {"ratio": 4.0, "largest": "big", "smallest": "small"}
    assert record["label_conflicts"][0][1] == {"path": "small/also_big.png", "class": "small"}
