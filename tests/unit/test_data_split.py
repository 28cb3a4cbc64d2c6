"""Splitting: stratified, seeded and byte-identical, links or copies, and the source never touched."""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from core.data.cache import load_images
from core.data.demo import make_demo
from core.data.scan import scan
from core.data.split import (
    SPLITS,
    next_version,
    plan_split,
    read_split_info,
    record_use,
    runs_using,
    split_dataset,
    split_identity,
)
from core.errors import UserError
from tests.unit.test_data_scan import (
    CHINESE,
    make_bad_folder,
    noise_image,
    save,
    tree_hash,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return make_demo(tmp_path_factory.mktemp("demo") / "demo", classes=3, per_class=20, size=32)


def files_of(split_dir: Path) -> dict[str, set[str]]:
    return {s: {p.relative_to(split_dir / s).as_posix() for p in (split_dir / s).rglob("*.jpg")} for s in SPLITS}


def test_stratified_counts_no_overlap_and_info(demo, tmp_path):
    info = split_dataset(demo, tmp_path / "s", val=0.2, test=0.2, seed=1)
    assert info["counts"] == {c: {"train": 12, "val": 4, "test": 4} for c in ("circle", "square", "triangle")}
    files = files_of(tmp_path / "s")
    assert sum(map(len, files.values())) == 60
    assert not (files["train"] & files["val"] or files["train"] & files["test"] or files["val"] & files["test"])
    assert read_split_info(tmp_path / "s") == info
    assert info["classes"] == ["circle", "square", "triangle"] and info["seed"] == 1
    assert info["ratios"] == {"train": 0.6, "val": 0.2, "test": 0.2}


def test_same_seed_is_byte_identical_and_another_seed_differs(demo, tmp_path):
    split_dataset(demo, tmp_path / "a", seed=7)
    split_dataset(demo, tmp_path / "b", seed=7)
    split_dataset(demo, tmp_path / "c", seed=8)
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")
    assert (tmp_path / "a" / "split.json").read_bytes() == (tmp_path / "b" / "split.json").read_bytes()
    assert (tmp_path / "a" / "val" / "annotations.csv").read_bytes() == (tmp_path / "b" / "val" / "annotations.csv").read_bytes()
    assert files_of(tmp_path / "a") != files_of(tmp_path / "c")
    assert read_split_info(tmp_path / "a")["counts"] == read_split_info(tmp_path / "c")["counts"]


def test_hard_links_by_default_and_copies_on_request(demo, tmp_path):
    split_dataset(demo, tmp_path / "link")
    info = split_dataset(demo, tmp_path / "copy", mode="copy")
    linked = next((tmp_path / "link" / "train" / "circle").iterdir())
    copied = next((tmp_path / "copy" / "train" / "circle").iterdir())
    assert linked.stat().st_ino == (demo / "circle" / linked.name).stat().st_ino
    assert copied.stat().st_ino != (demo / "circle" / copied.name).stat().st_ino
    assert info["mode"] == "copy" and copied.read_bytes() == (demo / "circle" / copied.name).read_bytes()


def test_links_fall_back_to_copies(demo, tmp_path, monkeypatch):
    def no_links(*_):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    assert split_dataset(demo, tmp_path / "s")["mode"] == "copy"
    assert len(list((tmp_path / "s").rglob("*.jpg"))) == 60


def test_annotations_follow_each_split(demo, tmp_path):
    split_dataset(demo, tmp_path / "s")
    for split in SPLITS:
        with (tmp_path / "s" / split / "annotations.csv").open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert {r["path"] for r in rows} == files_of(tmp_path / "s")[split]
        assert all((tmp_path / "s" / split / r["path"]).is_file() and int(r["x1"]) > int(r["x0"]) for r in rows)


def test_existing_split_needs_force_and_is_replaced_whole(demo, tmp_path):
    split_dataset(demo, tmp_path / "s", seed=1)
    with pytest.raises(UserError) as err:
        split_dataset(demo, tmp_path / "s", seed=2)
    assert err.value.key == "data.split_exists"
    (tmp_path / "s" / "train" / "circle" / "stray.jpg").write_bytes(b"old")
    split_dataset(demo, tmp_path / "s", seed=2, force=True)
    assert read_split_info(tmp_path / "s")["seed"] == 2
    assert not (tmp_path / "s" / "train" / "circle" / "stray.jpg").exists()  # never mixes two splits
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_refuses_targets_that_are_not_splits_or_overlap_the_source(demo, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.docx").write_text("precious")
    with pytest.raises(UserError, match="not a split"):
        split_dataset(demo, tmp_path / "mine", force=True)
    assert (tmp_path / "mine" / "thesis.docx").read_text() == "precious"
    with pytest.raises(UserError) as err:
        split_dataset(demo, demo / "inside")
    assert err.value.key == "data.split_inside_source"
    with pytest.raises(UserError) as err:
        split_dataset(demo, demo.parent, force=True)
    assert err.value.key == "data.split_inside_source"


def test_too_small_class_says_which_and_what_is_needed(tmp_path):
    bad = make_bad_folder(tmp_path / "bad")
    with pytest.raises(UserError) as err:
        split_dataset(bad, tmp_path / "s")
    message = str(err.value)
    assert err.value.key == "data.class_too_small" and "Class one has only 1" in message and "3" in message
    assert not (tmp_path / "s").exists()


def test_an_empty_class_folder_is_left_out_not_a_refusal(tmp_path):
    """Bug 11: one empty class folder refused the whole split."""
    src = make_bad_folder(tmp_path / "bad")
    shutil.rmtree(src / "one")
    info = split_dataset(src, tmp_path / "s", val=0.25, test=0.25)
    assert info["classes"] == ["cat", CHINESE] and info["display_names"] == ["cat", CHINESE]
    assert info["left_out"] == [{"class": "empty", "reason": "empty", "images": 0}]
    assert not (tmp_path / "s" / "train" / "empty").exists()
    assert load_images(tmp_path / "s", "train", 16).classes == ["cat", CHINESE]


@pytest.mark.parametrize("small", ["leave_out", "train_only"])
def test_a_class_of_one_or_two_images_is_left_out_or_trained_on_only(tmp_path, small):
    src = make_bad_folder(tmp_path / "bad")
    save(noise_image(900), src / "two" / "b.png")
    save(noise_image(901), src / "two" / "a.png")
    info = split_dataset(src, tmp_path / "s", val=0.25, test=0.25, small=small)
    if small == "leave_out":
        assert {i["class"]: i["reason"] for i in info["left_out"]} == {"empty": "empty", "one": "too_small",
                                                                       "two": "too_small"}
        assert info["classes"] == ["cat", CHINESE] and info["train_only"] == []
    else:
        assert info["classes"] == ["cat", "one", "two", CHINESE] and info["train_only"] == ["one", "two"]
        assert info["counts"]["two"] == {"train": 2, "val": 0, "test": 0}
        assert sorted(p.name for p in (tmp_path / "s" / "train" / "two").iterdir()) == ["a.png", "b.png"]
        assert load_images(tmp_path / "s", "val", 16).classes == info["classes"]  # indices agree across parts


@pytest.mark.parametrize("n,val,test", [(3, 0.05, 0.9), (3, 0.9, 0.05), (4, 0.45, 0.5), (5, 0.1, 0.85), (2, 0.5, 0)])
def test_every_class_keeps_a_training_image(tmp_path, n, val, test):
    """Bug 8: a 3-image class with val 0.05 / test 0.9 came out train 0 / val 1 / test 2."""
    for i in range(n):
        save(noise_image(700 + i), tmp_path / "src" / "tiny" / f"{i}.png")
    for i in range(20):
        save(noise_image(800 + i), tmp_path / "src" / "big" / f"{i}.png")
    info = split_dataset(tmp_path / "src", tmp_path / "s", val=val, test=test)
    tiny = info["counts"]["tiny"]
    assert tiny["train"] >= 1 and sum(tiny.values()) == n
    assert (tiny["val"] >= 1) == (val > 0) and (tiny["test"] >= 1) == (test > 0)
    assert len(list((tmp_path / "s" / "train" / "tiny").iterdir())) == tiny["train"]


def test_excluded_classes_stay_out_and_unknown_ones_are_named(demo, tmp_path):
    info = split_dataset(demo, tmp_path / "s", exclude=["square"])
    assert info["classes"] == ["circle", "triangle"] and not (tmp_path / "s" / "train" / "square").exists()
    with pytest.raises(UserError, match="nothing"):
        split_dataset(demo, tmp_path / "t", exclude=["nothing"])


def test_split_json_carries_the_identity_of_its_file_lists(demo, tmp_path):
    a = split_dataset(demo, tmp_path / "a", seed=7)
    assert a["id"] == split_identity(tmp_path / "a") == split_dataset(demo, tmp_path / "b", seed=7)["id"]
    assert split_dataset(demo, tmp_path / "c", seed=8)["id"] != a["id"]
    moved = next((tmp_path / "a" / "test" / "circle").iterdir())
    moved.rename(tmp_path / "a" / "train" / "circle" / moved.name)  # same files, another part
    assert split_identity(tmp_path / "a") != a["id"]


def test_a_split_a_run_used_is_never_replaced(demo, tmp_path):
    """Bug 5: --force replaced the split runs were trained on; now it is refused, naming the runs
    and the next version folder, and the split is left exactly as it was."""
    split_dataset(demo, tmp_path / "s", seed=1)
    before = (files_of(tmp_path / "s"), (tmp_path / "s" / "split.json").read_bytes())
    run = tmp_path / "elsewhere" / "20260101-000000-mine"  # a run outside any workspace
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"data": str(tmp_path / "s")}), encoding="utf-8")
    record_use(tmp_path / "s", run)
    assert runs_using(tmp_path / "s") == [run]
    with pytest.raises(UserError) as err:
        split_dataset(demo, tmp_path / "s", seed=2, force=True)
    assert err.value.key == "data.split_in_use" and run.name in str(err.value)
    assert err.value.params["new"] == str(tmp_path / "s-2")
    assert (files_of(tmp_path / "s"), (tmp_path / "s" / "split.json").read_bytes()) == before
    (tmp_path / "s" / ".runs" / f"{run.name}.json").unlink()
    # A run found through the runs folder (made before markers) counts too.
    assert runs_using(tmp_path / "s", tmp_path / "elsewhere") == [run]
    with pytest.raises(UserError, match="s-2"):
        split_dataset(demo, tmp_path / "s", seed=2, force=True, runs_dir=tmp_path / "elsewhere")
    assert read_split_info(tmp_path / "s")["seed"] == 1
    split_dataset(demo, next_version(tmp_path / "s"), seed=2)
    assert next_version(tmp_path / "s") == next_version(tmp_path / "s-2") == tmp_path / "s-3"
    # A deleted run, or one that moved to other data, no longer holds the split.
    (run / "config.json").write_text(json.dumps({"data": str(tmp_path / "s-2")}), encoding="utf-8")
    assert runs_using(tmp_path / "s", tmp_path / "elsewhere") == []
    split_dataset(demo, tmp_path / "s", seed=2, force=True, runs_dir=tmp_path / "elsewhere")
    assert read_split_info(tmp_path / "s")["seed"] == 2


def test_problem_files_and_duplicates_are_left_out_and_listed(tmp_path):
    bad = make_bad_folder(tmp_path / "bad")
    src = tmp_path / "copy"
    shutil.copytree(bad, src)
    shutil.rmtree(src / "empty")
    shutil.rmtree(src / "one")
    info = split_dataset(src, tmp_path / "s", val=0.25, test=0.25)
    skipped = {s["path"]: s["reason"] for s in info["skipped"]}
    assert skipped["cat/truncated.jpg"] == "broken" and skipped["cat/bomb.png"] == "bomb"
    assert skipped[f"{CHINESE}/dup_of_cat.jpg"] == "duplicate"
    written = {p.name for p in (tmp_path / "s").rglob("*") if p.is_file()}
    assert not written & {"zero.jpg", "fake.jpg", "notes.txt", "truncated.jpg", "bomb.png", "dup_of_cat.jpg", ".DS_Store"}
    assert info["counts"][CHINESE] == {"train": 2, "val": 2, "test": 2}  # 7 images, one a duplicate
    assert sum(info["counts"][CHINESE].values()) == next(c for c in scan(src).classes if c.name == CHINESE).images
    assert (tmp_path / "s" / "train" / CHINESE).is_dir()


def test_zero_val_and_test_keep_every_image_for_training(demo, tmp_path):
    plan = plan_split(scan(demo), val=0, test=0)
    assert sum(len(v) for v in plan["assign"]["train"].values()) == 60 and not plan["assign"]["val"]["circle"]
    split_dataset(demo, tmp_path / "s", val=0.2, test=0)
    assert (tmp_path / "s" / "val").is_dir() and not (tmp_path / "s" / "test").exists()  # readers test for it
    with pytest.raises(UserError) as err:
        load_images(tmp_path / "s", "test", 16)
    assert err.value.key == "data.no_split_folder"


@pytest.mark.parametrize("val,test", [(-0.1, 0.2), (0.5, 0.5), (1.2, 0)])
def test_bad_ratios_are_user_errors(demo, tmp_path, val, test):
    with pytest.raises(UserError):
        split_dataset(demo, tmp_path / "s", val=val, test=test)


def test_source_untouched_after_check_split_and_cache(tmp_path):
    src = make_bad_folder(tmp_path / "bad")
    shutil.rmtree(src / "empty")
    shutil.rmtree(src / "one")
    for i in range(6, 9):
        save(noise_image(400 + i), src / "cat" / f"ok_{i}.jpg")
    before = tree_hash(src)
    scan(src)
    split_dataset(src, tmp_path / "s", mode="link")
    split_dataset(src, tmp_path / "c", mode="copy")
    for split in SPLITS:
        load_images(tmp_path / "s", split, 16, cache_dir=tmp_path / "cache")
    split_dataset(src, tmp_path / "s", force=True)
    assert tree_hash(src) == before
    assert json.loads((tmp_path / "s" / "split.json").read_text(encoding="utf-8"))["source"] == str(src.resolve())
