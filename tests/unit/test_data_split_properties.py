"""Properties of every split, whatever the class sizes and fractions (Hypothesis): each usable
file in exactly one part, every class of the split in train, per-class shares within one image
of the request, the same seed the same split, and the source folder untouched.

Real files are needed (scan reads them): each example writes a few 2x2 PNGs, so 25 examples
take a few seconds."""
from __future__ import annotations

import tempfile
from itertools import count
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from core.data.scan import scan
from core.data.split import SPLITS, split_dataset
from tests.unit.test_data_scan import tree_hash

_unique = count(1)

datasets = st.fixed_dictionaries({
    # images per class (0: an empty class folder), 1 to 4 classes, one with an image at least
    "sizes": st.lists(st.integers(0, 14), min_size=1, max_size=4).filter(any),
    # exact copies of class 0's images put into the last class, and one unreadable file or not
    "copies": st.integers(0, 3),
    "broken": st.booleans(),
})
fractions = st.tuples(st.integers(0, 90), st.integers(0, 90)).filter(lambda vt: vt[0] + vt[1] <= 95)


def write_dataset(root: Path, sizes: list[int], copies: int, broken: bool) -> None:
    """Tiny 2x2 PNGs, each different (a global counter in its pixels), so only the copies repeat."""
    for c, n in enumerate(sizes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(n):
            k = next(_unique)
            Image.new("RGB", (2, 2), (k % 256, k // 256 % 256, k // 65536 % 256)).save(folder / f"{i}.png")
    originals = sorted((root / "class0").glob("*.png"))[:copies]
    for i, original in enumerate(originals):
        (root / f"class{len(sizes) - 1}" / f"copy{i}.png").write_bytes(original.read_bytes())
    if broken:
        (root / "class0" / "broken.png").write_bytes(b"not a picture")


def parts_on_disk(out: Path) -> dict[str, list[str]]:
    return {s: sorted(p.relative_to(out / s).as_posix() for p in (out / s).rglob("*.png")) if (out / s).is_dir() else []
            for s in SPLITS}


@settings(max_examples=25, deadline=None, database=None)  # no .hypothesis folder in the tree
@given(data=datasets, vt=fractions, seed=st.integers(0, 2**31 - 1))
def test_split_properties(data, vt, seed):
    val, test = vt[0] / 100, vt[1] / 100
    with tempfile.TemporaryDirectory() as tmp:
        src, tmp = Path(tmp) / "src", Path(tmp)
        write_dataset(src, **data)
        before = tree_hash(src)
        report = scan(src, workers=1)
        usable = {c.name: report.images[c.name] for c in report.classes if c.images}
        if not usable:
            return
        info = split_dataset(src, tmp / "a", val, test, seed, small="train_only")
        parts = parts_on_disk(tmp / "a")

        # Every usable file is in exactly one part; nothing else is.
        placed = [rel for files in parts.values() for rel in files]
        assert sorted(placed) == sorted(rel for files in usable.values() for rel in files)
        assert info["classes"] == sorted(usable)  # only classes without a usable image are left out

        needed = 1 + (val > 0) + (test > 0)
        shares = {"train": 1 - val - test, "val": val, "test": test}
        for cls, files in usable.items():
            n = len(files)
            got = info["counts"][cls]
            assert got["train"] >= 1  # every class of the split is in train
            assert sum(got.values()) == n and got == {s: sum(r.startswith(cls + "/") for r in parts[s]) for s in SPLITS}
            if n < needed:
                assert got == {"train": n, "val": 0, "test": 0}  # kept in training only, as asked
                continue
            for part, share in shares.items():
                if share > 0:
                    assert got[part] >= 1  # every part with a share gets the class
                # Within one image of the request, but for the images the other parts' minimum of
                # one takes when their share is under one image (3 images at 98/1/1% give 1/1/1).
                minimums = sum(max(0.0, 1 - shares[o] * n) for o in SPLITS if o != part and shares[o] > 0)
                assert abs(got[part] - share * n) <= 1 + minimums + 1e-9, (cls, n, part, got, shares)

        # The same seed gives the same split; the source is never touched.
        again = split_dataset(src, tmp / "b", val, test, seed, small="train_only")
        assert parts_on_disk(tmp / "b") == parts and again == info
        assert (tmp / "a" / "split.json").read_bytes() == (tmp / "b" / "split.json").read_bytes()
        assert tree_hash(src) == before
