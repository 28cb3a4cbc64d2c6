"""CIFAR-10 / CIFAR-100 "python version" batches (what `torchvision.datasets.CIFAR10` downloads)
as a split of PNG files: the official train and test sets kept, validation held out of train.

The batches are pickles, and unpickling runs whatever code a file names. These are read by an
unpickler that resolves only the few names a numpy array needs; any other name refuses the file
with a message, before anything it names is imported or called.
"""
from __future__ import annotations

import io
import os
import pickle
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.data.scan import ClassInfo, HealthReport
from core.data.split import SPLITS, counts, guard_output, plan_split, write_split
from core.errors import UserError

CIFAR10_DIR, CIFAR100_DIR = "cifar-10-batches-py", "cifar-100-python"
LAYOUTS = {  # kind -> (meta file, its class-name key, train files, test files, label key)
    "cifar-10": ("batches.meta", "label_names", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels"),
    "cifar-100": ("meta", "fine_label_names", ["train"], ["test"], "fine_labels"),
}
DEFAULT_VAL = 0.1
SIDE = 32


def _reconstruct():
    core = getattr(np, "_core", None)
    return (core.multiarray._reconstruct if core is not None else np.core.multiarray._reconstruct)


def _frombuffer():
    core = getattr(np, "_core", None)
    return (core.numeric._frombuffer if core is not None else np.core.numeric._frombuffer)


# What a pickled numpy array needs, under the names numpy 1 and 2 use; nothing else resolves.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1,  # bytes in a protocol-2 pickle written by Python 3
}


def _latin1(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """`_codecs.encode` as Python 3 pickles bytes, and only that: no codec lookup by name."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}")
    return text.encode("latin-1", errors)


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, fh, label: str) -> None:
        super().__init__(fh, encoding="latin1")  # as torchvision reads the Python 2 pickles
        self.label = label

    def find_class(self, module: str, name: str):
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise UserError("data.cifar_unsafe", path=self.label, name=f"{module}.{name}")
        return allowed()

    def persistent_load(self, pid):
        raise UserError("data.cifar_unsafe", path=self.label, name="persistent id")


def load_batch(path: str | Path) -> dict:
    """One batch (or meta) file as a dict with str keys, read without running any code it names."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = _SafeUnpickler(fh, str(path)).load()
    except UserError:
        raise
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError) as err:
        raise UserError("data.cifar_bad", path=str(path), reason=f"{type(err).__name__}: {err}") from None
    if not isinstance(data, dict):
        raise UserError("data.cifar_bad", path=str(path), reason=type(data).__name__)
    return {_text(k): v for k, v in data.items()}


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class CifarFolder:
    folder: Path
    kind: str  # "cifar-10" or "cifar-100"

    def files(self, which: str) -> list[Path]:
        _, _, train, test, _ = LAYOUTS[self.kind]
        return [self.folder / name for name in (train if which == "train" else test)]


def _kind_of(folder: Path) -> str | None:
    for kind, (meta, _, train, test, _) in LAYOUTS.items():
        if all((folder / name).is_file() for name in [meta, *train, *test]):
            return kind
    return None


def find_cifar(path: str | Path) -> CifarFolder | None:
    """The CIFAR batches folder at `path`, or in it (torchvision's `root`), else None."""
    path = Path(path).expanduser()
    if not path.is_dir():
        return None
    path = path.resolve()
    kind = _kind_of(path)
    if kind:
        return CifarFolder(path, kind)
    found = [CifarFolder(path / name, k) for name in (CIFAR10_DIR, CIFAR100_DIR)
             if (path / name).is_dir() and (k := _kind_of(path / name))]
    if len(found) > 1:
        raise UserError("data.cifar_both", path=str(path), names=", ".join(f.folder.name for f in found))
    return found[0] if found else None


def import_command(cifar: CifarFolder) -> str:
    """The one command that imports this folder into the workspace (for messages)."""
    from core.workspace import default_root

    return shlex.join(["python", "-m", "core", "import-cifar", str(cifar.folder), str(default_root() / "splits" / cifar.kind)])


def class_names(cifar: CifarFolder) -> list[str]:
    """The class names in label order, as folder names (a "/" or a leading dot cannot be one)."""
    meta, key, *_ = LAYOUTS[cifar.kind]
    names = load_batch(cifar.folder / meta).get(key)
    if not isinstance(names, list) or not names:
        raise UserError("data.cifar_bad", path=str(cifar.folder / meta), reason=f"no {key}")
    safe = [_text(n).strip().replace("/", "_").replace("\\", "_").lstrip(".") or f"class_{i}"
            for i, n in enumerate(names)]
    if len(set(safe)) != len(safe):
        raise UserError("data.cifar_bad", path=str(cifar.folder / meta), reason="repeated class names")
    return safe


def load_part(cifar: CifarFolder, which: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N,32,32,3], labels int [N]) of the official train or test set."""
    label_key = LAYOUTS[cifar.kind][4]
    images, labels = [], []
    for path in cifar.files(which):
        batch = load_batch(path)
        data, found = batch.get("data"), batch.get(label_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                or data.shape[1] != 3 * SIDE * SIDE or not isinstance(found, list) or len(found) != len(data):
            raise UserError("data.cifar_bad", path=str(path), reason="not a CIFAR batch")
        found = np.asarray(found, dtype=np.int64)
        if found.size and (found.min() < 0 or found.max() >= n_classes):
            raise UserError("data.cifar_bad", path=str(path), reason="label out of range")
        images.append(data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1))
        labels.append(found)
    return np.concatenate(images), np.concatenate(labels)


def summary(cifar: CifarFolder) -> dict:
    """What the page and `check` say about a batches folder, reading the labels only once."""
    names = class_names(cifar)
    totals = {which: len(load_part(cifar, which, len(names))[1]) for which in ("train", "test")}
    return {"kind": cifar.kind, "folder": str(cifar.folder), "classes": len(names), **totals}


def _save_png(image: np.ndarray, path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    path.write_bytes(buf.getvalue())


def import_cifar(
    src: str | Path,
    out: str | Path,
    val: float = DEFAULT_VAL,
    seed: int = 42,
    force: bool = False,
    small: str = "refuse",
    runs_dir: str | Path | None = None,
    workers: int | None = None,
) -> dict:
    """Write the batches at `src` as OUT/{train,val,test}/<class>/<index>.png and return the split's
    info: test is the official test set, val a seeded, stratified share of the official train set.

    Files are named by their index in the official set (`00042.png`), so a run can be traced back.
    """
    cifar = find_cifar(src)
    if cifar is None:
        raise UserError("data.not_cifar", path=str(src))
    out = Path(out).expanduser().resolve()
    guard_output(cifar.folder, out, force, runs_dir)
    names = class_names(cifar)
    train_x, train_y = load_part(cifar, "train", len(names))
    test_x, test_y = load_part(cifar, "test", len(names))
    rels = [f"{names[y]}/{i:05d}.png" for i, y in enumerate(train_y.tolist())]
    images = {c: [] for c in names}
    for rel, y in zip(rels, train_y.tolist()):
        images[names[y]].append(rel)
    folders = sorted(names)  # the report's class order is ImageFolder's; the split keeps the label order
    report = HealthReport(cifar.folder, [ClassInfo(c, c, len(images[c]), 0) for c in folders],
                          {c: images[c] for c in folders}, [], [], [], {}, {"PNG": len(rels)}, 0)
    plan = plan_split(report, val, 0.0, seed, small)
    if plan["too_small"]:
        name, have = plan["too_small"][0]
        raise UserError("data.class_too_small", name=name, count=have, needed=plan["needed"],
                        others=len(plan["too_small"]) - 1)
    if not plan["classes"]:
        raise UserError("data.no_usable_classes", path=str(cifar.folder))
    kept = [c for c in names if c in plan["classes"]]
    index = {rel: i for i, rel in enumerate(rels)}
    jobs = [(train_x[index[rel]], part, rel) for part in ("train", "val")
            for files in plan["assign"][part].values() for rel in files]
    jobs += [(test_x[i], "test", f"{names[y]}/{i:05d}.png") for i, y in enumerate(test_y.tolist()) if names[y] in kept]

    def fill(tmp: Path) -> dict:
        for folder in {(part, rel.split("/", 1)[0]) for _, part, rel in jobs}:
            (tmp / folder[0] / folder[1]).mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 2)) as pool:
            list(pool.map(lambda job: _save_png(job[0], tmp / job[1] / job[2]), jobs))
        tally = counts(plan, kept)
        for c in kept:
            tally[c]["test"] = int((test_y == names.index(c)).sum())
        total = sum(sum(row.values()) for row in tally.values())
        return {
            "source": str(cifar.folder),
            "format": cifar.kind,
            "kept_as_given": True,
            "held_out": val,
            "seed": seed,
            "ratios": {s: round(sum(row[s] for row in tally.values()) / total, 6) for s in SPLITS},
            "mode": "png",
            "classes": kept,
            "display_names": kept,
            "counts": tally,
            "skipped": [],
            "left_out": plan["left_out"],
            "train_only": plan["train_only"],
        }

    return write_split(out, fill)
