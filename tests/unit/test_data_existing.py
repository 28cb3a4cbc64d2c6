"""Existing splits kept as given: detection (any naming and case, zips, separate folders), the
health of each part, import without moving a file between parts, held-out validation, the CLI."""
from __future__ import annotations

import json
import os
import shlex
import zipfile
from pathlib import Path

import pytest

from core.cli import main
from core.data.existing import (
    find_existing,
    from_parts,
    import_existing,
    inspect_existing,
    summary_params,
)
from core.data.scan import find_root, scan
from core.data.split import read_split_info, split_identity
from core.data.zipimport import import_zip
from core.errors import UserError
from tests.unit.test_data_scan import noise_image, save

CLASSES = ("daisy", "rose", "tulip")


def make_part(folder: Path, per_class: int, classes=CLASSES, seed: int = 0) -> Path:
    for k, cls in enumerate(classes):
        for i in range(per_class):
            save(noise_image(seed + 1000 * k + i), folder / cls / f"{cls}_{i}.png")
    return folder


def make_existing(root: Path, parts: dict[str, int], classes=CLASSES) -> Path:
    """`root/<part name>/<class>/*.png`, each part with its own images (a distinct seed per part)."""
    for j, (name, per_class) in enumerate(parts.items()):
        make_part(root / name, per_class, classes, seed=100_000 * (j + 1))
    return root


def tree(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under `folder` with its modification time and bytes (to prove it untouched)."""
    return {p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def files_of(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*.png")}


def records(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


@pytest.mark.parametrize("names", [("train", "val"), ("Train", "VALID"), ("TRAIN", "Validation", "Test"),
                                   ("train", "test"), ("train", "valid", "test")])
def test_a_root_of_split_names_in_any_case_is_an_existing_split(tmp_path, names):
    root = make_existing(tmp_path / "flowers", {name: 2 for name in names})
    found = find_existing(root)
    assert found is not None and found.root == root.resolve()
    expected = {{"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}[n.lower()]: n
                for n in names}
    assert {part: folder.name for part, folder in found.parts.items()} == expected
    report = inspect_existing(found)
    assert report.classes == list(CLASSES) and report.missing() == {}
    assert summary_params(report) == {"parts": " / ".join(f"{n} 6" for n in [expected[p] for p in found.parts]),
                                      "classes": 3}


def test_classes_named_like_splits_are_still_classes(tmp_path):
    """A dataset of trains and tests (images directly in the folders), or split names beside
    another class folder, is a plain class-folder dataset."""
    plain = tmp_path / "vehicles"
    for cls in ("train", "test"):
        for i in range(2):
            save(noise_image(i), plain / cls / f"{i}.png")
    assert find_existing(plain) is None and scan(plain).class_names == ["test", "train"]
    mixed = make_existing(tmp_path / "mixed", {"train": 1})
    make_part(mixed / "bus", 0)
    save(noise_image(7), mixed / "bus" / "b.png")
    assert find_existing(mixed) is None


def test_two_folders_for_one_part_are_refused_by_name(tmp_path):
    root = make_existing(tmp_path / "d", {"train": 1, "val": 1, "valid": 1})
    with pytest.raises(UserError) as err:
        find_existing(root)
    assert err.value.key == "data.parts_ambiguous" and "val, valid" in str(err.value)


def test_an_existing_split_inside_a_zip_wrapper_is_found(tmp_path):
    source = make_existing(tmp_path / "src" / "cifar10", {"train": 2, "test": 1})
    archive = tmp_path / "cifar10.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in source.rglob("*.png"):
            zf.write(path, path.relative_to(source.parent).as_posix())  # cifar10/train/daisy/...
    extracted = import_zip(archive, tmp_path / "datasets")
    found = find_existing(extracted)
    assert found is not None and found.root.name == "cifar10" and set(found.parts) == {"train", "test"}
    # a part of its own is unwrapped too (the Kaggle cats-vs-dogs folder nests training_set twice)
    nested = make_part(tmp_path / "kaggle" / "training_set" / "training_set", 2)
    assert find_root(tmp_path / "kaggle" / "training_set") == nested.resolve()


def test_classes_that_differ_are_named_and_can_be_left_out(tmp_path):
    root = tmp_path / "d"
    make_part(root / "train", 3)
    make_part(root / "valid", 1, classes=("daisy", "rose"), seed=50)
    make_part(root / "test", 1, classes=(*CLASSES, "lily"), seed=60)
    report = inspect_existing(find_existing(root))
    assert report.missing() == {"train": ["lily"], "val": ["lily", "tulip"]}
    with pytest.raises(UserError) as err:
        import_existing(report, tmp_path / "out")
    text = str(err.value)
    assert err.value.key == "data.classes_differ" and "valid: lily, tulip" in text and "train: lily" in text
    assert "--exclude lily --exclude tulip" in text and not (tmp_path / "out").exists()
    info = import_existing(report, tmp_path / "out", exclude=["lily", "tulip"])
    assert info["classes"] == ["daisy", "rose"] and files_of(tmp_path / "out" / "test") == {
        "daisy/daisy_0.png", "rose/rose_0.png"}
    assert {i["class"] for i in info["left_out"]} == {"lily", "tulip"}


def test_import_keeps_every_file_in_its_part_and_leaves_the_source_untouched(tmp_path):
    root = make_existing(tmp_path / "flowers", {"train": 4, "valid": 2, "test": 2})
    (root / "cat_to_name.json").write_text(json.dumps({"daisy": "雏菊"}), encoding="utf-8")
    (root / "valid" / "rose" / "broken.png").write_bytes(b"not a png")
    before = tree(root)
    report = inspect_existing(find_existing(root))
    assert [p.path for p in report.reports["val"].problems] == ["rose/broken.png"]
    out = tmp_path / "ws" / "flowers"
    info = import_existing(report, out)
    assert tree(root) == before
    for part, given in (("train", "train"), ("val", "valid"), ("test", "test")):
        kept = files_of(root / given) - {"rose/broken.png"}
        assert files_of(out / part) == kept
        for rel in kept:  # hard links to the very files (same inode), not copies of other files
            assert os.path.samefile(out / part / rel, root / given / rel)
    assert info["kept_as_given"] is True and info["held_out"] == 0.0 and info["source"] == str(root.resolve())
    assert info["sources"]["val"] == str((root / "valid").resolve()) and info["given_names"]["val"] == "valid"
    assert info["id"] == split_identity(out) and read_split_info(out) == info
    assert info["display_names"] == ["雏菊", "rose", "tulip"]
    assert info["counts"]["rose"] == {"train": 4, "val": 2, "test": 2}
    assert info["skipped"] == [{"path": "valid/rose/broken.png", "reason": "not_image"}]


def test_held_out_validation_is_seeded_stratified_and_only_from_train(tmp_path):
    root = make_existing(tmp_path / "d", {"train": 10, "test": 3})
    report = inspect_existing(find_existing(root))
    a = import_existing(report, tmp_path / "a", hold_out=0.2, seed=1)
    b = import_existing(report, tmp_path / "b", hold_out=0.2, seed=1)
    c = import_existing(report, tmp_path / "c", hold_out=0.2, seed=2)
    assert all(a["counts"][cls] == {"train": 8, "val": 2, "test": 3} for cls in CLASSES)
    assert files_of(tmp_path / "a" / "val") == files_of(tmp_path / "b" / "val") != files_of(tmp_path / "c" / "val")
    train = files_of(root / "train")
    assert files_of(tmp_path / "a" / "val") | files_of(tmp_path / "a" / "train") == train
    assert files_of(tmp_path / "a" / "test") == files_of(root / "test")
    assert a["id"] == b["id"] != c["id"] and a["held_out"] == 0.2
    none = import_existing(report, tmp_path / "none", hold_out=0)
    assert not (tmp_path / "none" / "val").exists() and none["counts"]["daisy"]["val"] == 0
    default = import_existing(report, tmp_path / "default")
    assert default["held_out"] == 0.1 and default["counts"]["daisy"] == {"train": 9, "val": 1, "test": 3}


def test_a_hold_out_is_refused_when_the_split_has_validation(tmp_path):
    report = inspect_existing(find_existing(make_existing(tmp_path / "d", {"train": 2, "Valid": 1})))
    with pytest.raises(UserError) as err:
        import_existing(report, tmp_path / "out", hold_out=0.2)
    assert err.value.key == "data.hold_out_has_val" and "Valid" in str(err.value)


def test_images_in_two_parts_are_reported_as_leakage(tmp_path):
    root = make_existing(tmp_path / "d", {"train": 2, "test": 2})
    (root / "test" / "rose" / "copy.png").write_bytes((root / "train" / "rose" / "rose_1.png").read_bytes())
    report = inspect_existing(find_existing(root))
    assert report.leakage == [["test/rose/copy.png", "train/rose/rose_1.png"]]
    info = import_existing(report, tmp_path / "out", hold_out=0)
    assert info["leakage"] == report.leakage and (tmp_path / "out" / "test" / "rose" / "copy.png").is_file()


def test_separate_folders_are_one_split(tmp_path):
    train = make_part(tmp_path / "a" / "training_set", 5)
    test = make_part(tmp_path / "b" / "test_set", 2, seed=77)
    split = from_parts(train, test=test)
    assert split.root is None and split.parts == {"train": train.resolve(), "test": test.resolve()}
    with pytest.raises(UserError) as err:
        from_parts(train, test=train)
    assert err.value.key == "data.parts_overlap"
    info = import_existing(inspect_existing(split), tmp_path / "out", hold_out=0.2)
    assert info["counts"]["daisy"] == {"train": 4, "val": 1, "test": 2}
    assert files_of(tmp_path / "out" / "test") == files_of(test)


def test_cli_split_keeps_an_existing_split_or_pools_it_with_resplit(tmp_path, capsys, workspace):
    root = make_existing(tmp_path / "flowers", {"Train": 5, "valid": 2})
    assert main(["split", str(root), str(tmp_path / "kept"), "--json"]) == 0
    (info,) = records(capsys)
    assert info["kept_as_given"] and info["counts"]["daisy"] == {"train": 5, "val": 2, "test": 0}
    assert main(["split", str(root), str(tmp_path / "x"), "--val", "0.1", "--json"]) == 2
    assert records(capsys)[0]["key"] == "data.hold_out_has_val"
    assert main(["split", str(root), str(tmp_path / "x"), "--test", "0.2", "--json"]) == 2
    assert records(capsys)[0]["key"] == "data.cli.kept_test_fraction"
    assert main(["split", str(root), str(tmp_path / "pooled"), "--resplit", "--val", "0.2", "--test", "0.2",
                 "--json"]) == 0
    (info,) = records(capsys)
    assert "kept_as_given" not in info and info["counts"]["daisy"] == {"train": 5, "val": 1, "test": 1}
    pooled = files_of(tmp_path / "pooled")
    assert len(pooled) == 21 and all(rel.split("/")[2] in ("Train", "valid") for rel in pooled)  # part kept as a folder


def test_cli_split_takes_separate_train_val_test_folders(tmp_path, capsys, workspace):
    train = make_part(tmp_path / "here" / "train_set", 10)
    test = make_part(tmp_path / "there" / "test_set", 2, seed=5)
    assert main(["split", "--train", str(train), "--test", str(test), str(tmp_path / "s"), "--val", "0.3",
                 "--seed", "4", "--json"]) == 0
    (info,) = records(capsys)
    assert info["counts"]["tulip"] == {"train": 7, "val": 3, "test": 2} and info["seed"] == 4
    val = make_part(tmp_path / "elsewhere" / "val_set", 1, seed=9)
    assert main(["split", "--train", str(train), "--val", str(val), "--test", str(test), str(tmp_path / "t")]) == 0
    assert "Kept as given" in capsys.readouterr().out
    assert files_of(tmp_path / "t" / "val") == files_of(val)
    assert main(["split", "--train", str(train), str(train), str(tmp_path / "u"), "--json"]) == 2
    assert records(capsys)[0]["key"] == "data.cli.train_and_src"
    assert main(["split", str(train), str(tmp_path / "u"), "--test", str(test), "--json"]) == 2
    assert records(capsys)[0]["key"] == "data.cli.folders_need_train"


def test_check_says_existing_split_and_names_missing_classes(tmp_path, capsys, workspace):
    root = tmp_path / "d"
    make_part(root / "train", 2)
    make_part(root / "test", 1, classes=("daisy", "rose"), seed=3)
    assert main(["check", str(root)]) == 0
    text = capsys.readouterr().out
    assert "an existing split: train 6 / test 2, 3 classes" in text and "test lacks these classes: tulip" in text
    assert f"python -m core split {root.resolve()} {workspace.splits / 'd'}" in text


def test_train_on_an_unimported_existing_split_gives_the_import_command(tmp_path, capsys, workspace):
    root = make_existing(tmp_path / "flowers", {"train": 3, "valid": 1})
    assert main(["train", "--data", str(root), "--model", "simple_cnn", "--epochs", "1", "--json"]) == 2
    (error,) = records(capsys)
    assert error["key"] == "data.not_split_existing" and not list(workspace.runs.iterdir())
    command = error["error"].split("\n")[1].strip()
    assert command == f"python -m core split {root.resolve()} {workspace.splits / 'flowers'}"
    assert main(shlex.split(command)[3:]) == 0  # the command works as given
    assert read_split_info(workspace.splits / "flowers")["kept_as_given"]
