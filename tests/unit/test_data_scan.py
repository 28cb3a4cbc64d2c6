"""The health report: every kind of problem file, Chinese class names, nested roots, class order."""
from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data.files import natural_order
from core.data.scan import find_root, sample_paths, scan
from core.errors import UserError

CHINESE = "猫咪"


def noise_image(seed: int, size=(24, 20), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)


def save(img: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def bomb_png() -> bytes:
    """A tiny PNG whose header claims 30000 x 30000 pixels: must be refused without decoding."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    raw = bytearray(buf.getvalue())
    ihdr = raw[12:29]  # b"IHDR" + 13 bytes of data
    ihdr[4:12] = struct.pack(">II", 30000, 30000)
    raw[12:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(raw)


# Numbered class folders as flowers-102 ships them, and what a user should see for them.
NUMBERED = ["1", "10", "2"]  # class indices: torchvision ImageFolder's plain sorted order
NUMBERED_NAMES = {"1": "pink primrose", "10": "globe thistle"}  # "2" has no name: its folder name shows
NUMBERED_READING = ["pink primrose", "2", "globe thistle"]  # natural order, display names


def make_numbered_folder(root: Path, per_class: int = 5) -> Path:
    """Class folders 1, 2, 10 with a cat_to_name.json that names two of them."""
    for k, cls in enumerate(NUMBERED):
        for i in range(per_class):
            save(noise_image(100 * k + i), root / cls / f"{cls}_{i}.png")
    (root / "cat_to_name.json").write_text(json.dumps(NUMBERED_NAMES), encoding="utf-8")
    return root


def make_bad_folder(root: Path) -> Path:
    """A dataset with one of every problem the report must list, built from scratch."""
    cat, cn = root / "cat", root / CHINESE
    for i in range(6):
        save(noise_image(i), cat / f"ok_{i}.jpg", quality=95)
        save(noise_image(100 + i), cn / f"好_{i}.png")
    save(noise_image(200), root / "one" / "only.jpg")
    (root / "empty").mkdir()
    (cat / "zero.jpg").write_bytes(b"")
    (cat / "fake.jpg").write_text("this is not a picture")
    (cat / "notes.txt").write_text("class notes")
    full = (cat / "ok_0.jpg").read_bytes()
    (cat / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (cat / "bomb.png").write_bytes(bomb_png())
    save(noise_image(300, mode="CMYK"), cat / "cmyk.jpg")
    save(Image.fromarray(np.arange(20 * 24, dtype=np.uint16).reshape(20, 24) * 100), cat / "sixteen.png")
    save(noise_image(301).convert("P"), cat / "palette.png")
    save(noise_image(302, mode="RGBA"), cat / "rgba.png")
    save(noise_image(303, mode="L"), cat / "gray.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: the stored 40x20 image is shown 20x40
    save(noise_image(304, size=(40, 20)), cat / "rotated.jpg", exif=exif)
    (cn / "dup_of_cat.jpg").write_bytes((cat / "ok_1.jpg").read_bytes())
    (cat / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (cat / "Thumbs.db").write_bytes(b"\0" * 10)
    (cat / "._ok_0.jpg").write_bytes(b"\0\5\26\7")
    (root / "__MACOSX" / "cat").mkdir(parents=True)
    (root / "__MACOSX" / "cat" / "._ok_1.jpg").write_bytes(b"\0\5\26\7")
    (root / "readme.md").write_text("about this data")
    return root


def tree_hash(root: Path) -> str:
    """Names, bytes, sizes and mtimes of everything under root: any change shows."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest.update(f"{path.relative_to(root)}|{st.st_mode}|{st.st_mtime_ns}|{st.st_size}".encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def bad(tmp_path) -> Path:
    return make_bad_folder(tmp_path / "bad")


def test_every_problem_kind_is_listed_with_its_reason(bad):
    report = scan(bad)
    problems = {p.path: p.kind for p in report.problems}
    assert problems == {
        "cat/zero.jpg": "zero_bytes",
        "cat/fake.jpg": "not_image",
        "cat/notes.txt": "not_image_ext",
        "cat/truncated.jpg": "broken",
        "cat/bomb.png": "bomb",
        "readme.md": "outside_class",
    }
    notes = {(p.path, p.kind) for p in report.notes}
    assert {("cat/cmyk.jpg", "cmyk"), ("cat/sixteen.png", "16bit"), ("cat/palette.png", "palette"),
            ("cat/rgba.png", "transparency"), ("cat/gray.jpg", "grayscale"), ("cat/rotated.jpg", "exif_rotated")} <= notes
    assert report.duplicates == [["cat/ok_1.jpg", f"{CHINESE}/dup_of_cat.jpg"]]
    assert report.ignored >= 4  # .DS_Store, Thumbs.db, ._ok_0.jpg, __MACOSX


def test_classes_counts_sizes_and_chinese_names(bad):
    report = scan(bad)
    assert report.class_names == sorted(["cat", CHINESE, "empty", "one"])  # ImageFolder order
    by_name = {c.name: c for c in report.classes}
    assert by_name["cat"].images == 6 + 6  # ok_* plus the six readable oddities
    assert by_name["cat"].problems == 5
    assert by_name[CHINESE].images == 6  # 7 readable, one an exact copy of cat/ok_1.jpg (kept there)
    assert by_name[CHINESE].copies == 1 and by_name[CHINESE].copies_of == ["cat"]
    assert by_name["empty"].images == 0 and by_name["one"].images == 1
    assert f"{CHINESE}/dup_of_cat.jpg" not in report.images[CHINESE] and "cat/ok_1.jpg" in report.images["cat"]
    assert f"{CHINESE}/好_0.png" in report.images[CHINESE]
    assert report.sizes["width"]["min"] == 20 and report.sizes["height"]["max"] == 40  # EXIF upright
    assert set(report.formats) == {"JPEG", "PNG"}
    json.dumps(report.to_dict(), ensure_ascii=False, default=str)


def test_hidden_and_system_files_are_never_listed(bad):
    report = scan(bad)
    every = [p.path for p in report.problems + report.notes] + [f for fs in report.images.values() for f in fs]
    assert not any(name in f for f in every for name in (".DS_Store", "Thumbs.db", "__MACOSX", "._"))


def test_nested_root_is_recognised(tmp_path):
    wrapped = tmp_path / "upload" / "flowers"
    for i, cls in enumerate(("daisy", "tulip")):
        save(noise_image(i), wrapped / cls / "a.jpg")
    (tmp_path / "upload" / "__MACOSX").mkdir()
    assert find_root(tmp_path / "upload") == wrapped.resolve()
    assert scan(tmp_path / "upload").class_names == ["daisy", "tulip"]


def test_cat_to_name_and_natural_order(tmp_path):
    report = scan(make_numbered_folder(tmp_path, per_class=1))
    assert report.class_names == NUMBERED == ["1", "10", "2"]  # indices as torchvision ImageFolder
    assert [c.name for c in report.listed()] == ["1", "2", "10"]  # what people read
    assert [c.display for c in report.listed()] == NUMBERED_READING
    assert [c.label for c in report.listed()] == ["1 (pink primrose)", "2", "10 (globe thistle)"]
    assert report.display_names == ["pink primrose", "globe thistle", "2"]
    assert natural_order(report.class_names) == [0, 2, 1]
    assert not report.problems  # cat_to_name.json is not a stray file
    assert list(sample_paths(report, per_class=1)) == ["1", "2", "10"]


@pytest.mark.parametrize("make", ["missing", "file", "no_classes"])
def test_not_a_dataset_is_a_user_error(tmp_path, make):
    target = tmp_path / "x"
    if make == "file":
        target.write_text("hello")
    elif make == "no_classes":
        target.mkdir()
        save(noise_image(0), target / "loose.jpg")
    with pytest.raises(UserError) as err:
        scan(target)
    assert err.value.key in {"data.not_found", "data.not_folder", "data.no_classes"}
    assert str(target) in str(err.value)


def test_bad_cat_to_name_is_a_user_error(tmp_path):
    save(noise_image(0), tmp_path / "a" / "x.jpg")
    (tmp_path / "cat_to_name.json").write_text("{not json")
    with pytest.raises(UserError, match="cat_to_name"):
        scan(tmp_path)


def copies_of_another_class(root: Path, n: int = 12) -> Path:
    """Class a with n images and class b whose n files are all byte copies of a's."""
    for i in range(n):
        save(noise_image(500 + i), root / "a" / f"{i}.png")
        (root / "b").mkdir(parents=True, exist_ok=True)
        (root / "b" / f"copy_{i}.png").write_bytes((root / "a" / f"{i}.png").read_bytes())
    for i in range(n):
        save(noise_image(600 + i), root / "c" / f"{i}.png")
    return root


def test_usable_count_leaves_out_copies_and_says_why(tmp_path):
    """Bug 11: b's 12 files all duplicate a's; the report said 12 usable where a split uses 0."""
    report = scan(copies_of_another_class(tmp_path / "d"))
    b = next(c for c in report.classes if c.name == "b")
    assert b.images == 0 and b.copies == 12 and b.files == 12 and report.images["b"] == []
    assert report.total_images == 24
    key, params = b.note()
    assert key == "data.class_note.all_copies" and params == {"n": 12, "others": "a"}
    from core.i18n import t
    assert t(key, "en", **params).startswith("12 images, all exact copies of images in class a")
    assert next(c for c in report.classes if c.name == "a").note() is None


def test_the_same_photo_in_two_classes_is_a_label_conflict(bad):
    """Issue 14: a photo filed under two labels was listed as a plain duplicate."""
    report = scan(bad)
    assert report.label_conflicts() == [[("cat/ok_1.jpg", "cat"), (f"{CHINESE}/dup_of_cat.jpg", CHINESE)]]
    assert report.plain_duplicates() == []
    save(noise_image(77), bad / "cat" / "twin_a.png")
    (bad / "cat" / "twin_b.png").write_bytes((bad / "cat" / "twin_a.png").read_bytes())
    report = scan(bad)
    assert report.plain_duplicates() == [["cat/twin_a.png", "cat/twin_b.png"]]
    assert len(report.label_conflicts()) == 1
    record = report.to_dict()
    assert record["label_conflicts"] == [[{"path": "cat/ok_1.jpg", "class": "cat"},
                                          {"path": f"{CHINESE}/dup_of_cat.jpg", "class": CHINESE}]]


def test_class_imbalance_is_largest_over_smallest():
    from core.data.scan import imbalance

    found = imbalance({"shirt": 680, "sock": 100, "empty": 0, "hat": 300})
    assert (found.largest, found.smallest, found.largest_n, found.smallest_n) == ("shirt", "sock", 680, 100)
    assert found.ratio == 6.8 and found.warn
    assert not imbalance({"a": 30, "b": 10}).warn  # 3 : 1 is the limit, not above it
    assert imbalance({"a": 31, "b": 10}).warn
    assert imbalance({"a": 5, "b": 0}) is None and imbalance({}) is None
