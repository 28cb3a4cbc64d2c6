"""CIFAR-10/100 python batches as a split of PNG files; pickles read without running code."""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.cli import main
from core.data.cifar import find_cifar, import_cifar, load_batch
from core.data.split import read_split_info, split_identity
from core.errors import UserError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` (BINSTRING), as the 2009 batches hold their keys and pixels."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_str(self, obj: bytes) -> None:
        n = len(obj)
        self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256 else pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_str


def py2_pickle(obj) -> bytes:
    """A pickle like the official files: protocol 2, Python 2 strings, numpy 1's module path."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def _batch(rng, labels: list[int], label_key: bytes) -> dict:
    """A batch as the Python 2 pickles hold it (bytes keys, uint8 rows of 3072 = R, G, B planes)."""
    n = len(labels)
    return {b"batch_label": b"batch", label_key: labels, b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [b"img_%d.png" % i for i in range(n)]}


def make_cifar10(folder: Path, per_class_per_batch: int = 2, test_per_class: int = 2, classes: int = 4) -> Path:
    """Batches 1-4 and the meta file as Python 2 wrote them; batch 5 and the test batch as Python 3
    writes protocol 2 (bytes through `_codecs.encode`)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for b in range(1, 6):
        labels = [i % classes for i in range(per_class_per_batch * classes)]
        batch = _batch(rng, labels, b"labels")
        (folder / f"data_batch_{b}").write_bytes(py2_pickle(batch) if b < 5 else pickle.dumps(batch, protocol=2))
    labels = [i % classes for i in range(test_per_class * classes)]
    (folder / "test_batch").write_bytes(pickle.dumps(_batch(rng, labels, b"labels"), protocol=2))
    meta = {b"label_names": [n.encode() for n in CIFAR10_NAMES[:classes]], b"num_cases_per_batch": 10000, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return folder


def make_cifar100(folder: Path, train_per_class: int = 5, test_per_class: int = 1) -> Path:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    fine = ["apple", "aquarium_fish", "baby"]
    for name, per in (("train", train_per_class), ("test", test_per_class)):
        labels = [i % len(fine) for i in range(per * len(fine))]
        batch = _batch(rng, labels, b"fine_labels") | {b"coarse_labels": [0] * len(labels)}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=4))
    meta = {b"fine_label_names": [n.encode() for n in fine], b"coarse_label_names": [b"fruit", b"fish", b"people"]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=4))
    return folder


def png_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_cifar10_becomes_a_split_with_the_official_test_set(tmp_path):
    src = make_cifar10(tmp_path / "data" / "cifar-10-batches-py")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    out = tmp_path / "out"
    info = import_cifar(tmp_path / "data", out, val=0.2, seed=3)  # torchvision's root folder works too
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    assert info["classes"] == CIFAR10_NAMES[:4] and info["format"] == "cifar-10" and info["kept_as_given"]
    assert all(info["counts"][c] == {"train": 8, "val": 2, "test": 2} for c in info["classes"])
    assert info["id"] == split_identity(out) and read_split_info(out) == info
    # pixels and labels are the batch's: the official test image 5 is label 5 % 4 = 1 (automobile)
    test = load_batch(src / "test_batch")
    expected = test["data"][5].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(png_pixels(out / "test" / "automobile" / "00005.png"), expected)
    # train indices run over the five batches of 8: image 17 is the third batch's image 1 (label 1)
    third = load_batch(src / "data_batch_3")
    part = next(p for p in ("train", "val") if (out / p / "automobile" / "00017.png").is_file())
    assert np.array_equal(png_pixels(out / part / "automobile" / "00017.png"),
                          third["data"][1].reshape(3, 32, 32).transpose(1, 2, 0))


def test_validation_is_carved_seeded_and_stratified(tmp_path):
    src = make_cifar10(tmp_path / "cifar-10-batches-py", per_class_per_batch=4)
    val_files = lambda out: sorted(p.relative_to(out / "val").as_posix() for p in (out / "val").rglob("*.png"))
    import_cifar(src, tmp_path / "a", val=0.1, seed=1)
    import_cifar(src, tmp_path / "b", val=0.1, seed=1)
    import_cifar(src, tmp_path / "c", val=0.1, seed=2)
    assert val_files(tmp_path / "a") == val_files(tmp_path / "b") != val_files(tmp_path / "c")
    assert [f.split("/")[0] for f in val_files(tmp_path / "a")] == sorted(CIFAR10_NAMES[:4] * 2)  # 2 of 20 per class
    train_a = {p.name for p in (tmp_path / "a" / "train").rglob("*.png")}
    assert not train_a & {f.split("/")[1] for f in val_files(tmp_path / "a")}


def test_cifar100_uses_the_fine_labels(tmp_path):
    src = make_cifar100(tmp_path / "cifar-100-python")
    assert find_cifar(src).kind == "cifar-100"
    info = import_cifar(src, tmp_path / "out", val=0.2)
    assert info["classes"] == ["apple", "aquarium_fish", "baby"] and info["format"] == "cifar-100"
    assert info["counts"]["baby"] == {"train": 4, "val": 1, "test": 1}


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("victim", ["data_batch_3", "batches.meta"])
def test_a_pickle_that_would_run_code_is_refused(tmp_path, victim):
    src = make_cifar10(tmp_path / "cifar-10-batches-py")
    marker = tmp_path / "pwned"
    (src / victim).write_bytes(pickle.dumps({b"data": _RunsCode(marker), b"labels": []}, protocol=2))
    with pytest.raises(UserError) as err:
        import_cifar(src, tmp_path / "out")
    assert err.value.key == "data.cifar_unsafe" and "system" in str(err.value) and victim in str(err.value)
    assert not marker.exists() and not (tmp_path / "out").exists()
    assert main(["import-cifar", str(src), str(tmp_path / "out"), "--json"]) == 2
    assert not marker.exists()


def test_other_globals_and_bad_batches_are_refused(tmp_path):
    path = tmp_path / "b"
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")  # protocol 0: builtins.eval("1+1")
    with pytest.raises(UserError, match="builtins.eval"):
        load_batch(path)
    path.write_bytes(b"c_codecs\nencode\n(Vx\nVrot13\ntR.")  # a codec looked up by name
    with pytest.raises(UserError) as err:
        load_batch(path)
    assert err.value.key == "data.cifar_bad"
    path.write_bytes(b"garbage")
    with pytest.raises(UserError) as err:
        load_batch(path)
    assert err.value.key == "data.cifar_bad"
    src = make_cifar10(tmp_path / "cifar-10-batches-py")
    (src / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(UserError, match="not a CIFAR batch"):
        import_cifar(src, tmp_path / "out")


def test_cli_import_cifar_check_and_train_hint(tmp_path, capsys, workspace):
    src = make_cifar10(tmp_path / "cifar-10-batches-py")
    assert main(["check", str(src)]) == 0
    text = capsys.readouterr().out
    assert "cifar-10 batches: train 40 / test 8, 4 classes" in text
    assert f"python -m core import-cifar {src} {workspace.splits / 'cifar-10'}" in text
    assert main(["train", "--data", str(src), "--json"]) == 2
    error = json.loads(capsys.readouterr().out.splitlines()[0])
    assert error["key"] == "data.not_split_cifar" and "import-cifar" in error["error"]
    out = tmp_path / "split"
    assert main(["import-cifar", str(src), str(out), "--val", "0.25", "--seed", "5", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["counts"]["bird"] == {"train": 8, "val": 2, "test": 2} and info["seed"] == 5
    assert main(["import-cifar", str(tmp_path), str(tmp_path / "x"), "--json"]) == 0  # the folder holding it
    assert main(["import-cifar", str(tmp_path / "nothing"), str(tmp_path / "y"), "--json"]) == 2
