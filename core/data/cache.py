"""Decode once: every image of a split, resized to the training size, in one uint8 tensor.

On a 2-core laptop, decoding JPEGs every epoch costs more than the small CNN itself, so the
images are decoded once by a thread pool (PIL releases the GIL while decoding) and kept as a
uint8 tensor [N,3,S,S]; it is saved under the workspace cache, keyed by the file list, their
mtimes and sizes and the image size, so a second run (or an app restart) starts at once.
When the tensor would not fit the memory budget, batches are decoded from disk on demand
instead (`streaming`), and `note` says so.

The cache folder has a size cap (`CNN_STUDIO_CACHE_CAP` bytes, 2 GiB by default): a cache file
is touched each time it is used, and after a new one is saved the least recently used files
go until the folder fits. `clear_cache` empties it (the Data page's button).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.atomic import replacing
from core.data.files import class_folders, class_images
from core.data.images import open_image
from core.data.labels import class_names
from core.errors import UserError

DEFAULT_MEMORY_BUDGET = int(os.environ.get("CNN_STUDIO_CACHE_BUDGET", str(2 * 1024**3)))
DEFAULT_CACHE_CAP = 2 * 1024**3
CACHE_VERSION = 1
CACHE_PATTERN = "images-*.npy"  # each with an optional `.stats.json` beside it (core.data.augment)


def decode_resized(path: str | Path | Image.Image, img_size: int, mode: str = "square") -> torch.Tensor:
    """One image as uint8 [3,S,S], resized like torchvision `Resize((S, S))` (bilinear, antialiased),
    or with `mode` "shorter" like `Resize(S)` then `CenterCrop(S)` (aspect ratio kept).

    Training, evaluation and prediction all go through this, so a photo is prepared the same
    way wherever it comes from.
    """
    img = path if isinstance(path, Image.Image) else open_image(path)
    img = img.convert("RGB")
    if mode == "shorter":
        w, h = img.size
        size = (img_size, int(img_size * h / w)) if w <= h else (int(img_size * w / h), img_size)
        img = img.resize(size, Image.BILINEAR)
        left, top = round((size[0] - img_size) / 2.0), round((size[1] - img_size) / 2.0)
        img = img.crop((left, top, left + img_size, top + img_size))
    else:
        img = img.resize((img_size, img_size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


# (images decoded, images in all): called from the decoding threads, about every 1% of them
OnDecoded = Callable[[int, int], None]


def decode_many(paths: list[Path], img_size: int, workers: int | None = None, mode: str = "square",
                on_progress: OnDecoded | None = None) -> torch.Tensor:
    """uint8 [N,3,S,S] for `paths`, decoded in a thread pool; a broken file raises a UserError.
    `on_progress` hears how many are done (a first cache build takes seconds the page must explain)."""
    out = torch.empty((len(paths), 3, img_size, img_size), dtype=torch.uint8)
    if not paths:
        return out
    total, every = len(paths), max(1, len(paths) // 100)
    done = iter(range(1, total + 1))  # next() on a range iterator is atomic under the GIL

    def fill(i: int) -> None:
        out[i] = decode_resized(paths[i], img_size, mode)
        if on_progress is not None:
            n = next(done)
            if n % every == 0 or n == total:
                on_progress(n, total)

    with ThreadPoolExecutor(max_workers=workers or _workers()) as pool:
        list(pool.map(fill, range(len(paths))))
    return out


@dataclass
class ImageSet:
    """The images of one split: labels, paths and a way to get uint8 batches by index."""

    classes: list[str]
    display_names: list[str]
    paths: list[Path]
    labels: torch.Tensor
    img_size: int
    streaming: bool = False
    note: tuple[str, dict] | None = None  # translation key + params when something is worth saying
    cache_file: Path | None = None
    mean_std: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    _data: torch.Tensor | None = field(default=None, repr=False)
    mode: str = "square"  # how images were resized (core.data.cache.decode_resized)

    def __len__(self) -> int:
        return len(self.paths)

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        """uint8 [B,3,S,S] for these indices (from memory, or decoded now when streaming)."""
        if self._data is not None:
            return self._data[indices]
        return decode_many([self.paths[i] for i in indices.tolist()], self.img_size, mode=self.mode)


def _split_classes(split_dir: Path, folder: Path) -> tuple[list[str], list[str]]:
    """Class names (index order) and display names: from split.json when there is one."""
    from core.data.split import read_split_info

    info = read_split_info(split_dir) if (split_dir / "split.json").is_file() else {}
    if info.get("classes"):
        return list(info["classes"]), class_names(info)
    names = [p.name for p in class_folders(folder)]
    return names, names


def cache_key(paths: list[Path], root: Path, img_size: int, mode: str = "square") -> str:
    """Changes when any file is added, removed, renamed or touched, or the size or resize mode changes."""
    size = img_size if mode == "square" else f"{img_size}-{mode}"  # square keeps the keys of older caches
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{size}|{root.resolve()}".encode())
    for path in paths:
        st = path.stat()
        digest.update(f"|{path.relative_to(root).as_posix()}|{st.st_mtime_ns}|{st.st_size}".encode())
    return digest.hexdigest()[:24]


def load_images(
    split_dir: str | Path,
    split: str,
    img_size: int,
    cache_dir: Path | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    mode: str = "square",
    on_progress: OnDecoded | None = None,
) -> ImageSet:
    """The images of `split_dir/split`, decoded once (and saved to `cache_dir`) or streamed.

    Classes come from the split's `split.json` so that indices match across train, val and
    test even when a split lacks a class; without it, the sorted folder names. `on_progress`
    hears the decoding (not called when the images come from the cache or are streamed).
    """
    split_dir = Path(split_dir)
    folder = split_dir / split
    if not folder.is_dir():
        raise UserError("data.no_split_folder", path=str(folder))
    classes, display = _split_classes(split_dir, folder)
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        found = class_images(folder / name) if (folder / name).is_dir() else []
        paths += found
        labels += [index] * len(found)
    images = ImageSet(classes, display, paths, torch.tensor(labels, dtype=torch.long), img_size, mode=mode)
    if not paths:
        raise UserError("data.empty_split", path=str(folder))

    needed = len(paths) * 3 * img_size * img_size
    if needed > memory_budget:
        images.streaming = True
        images.note = ("data.cache_streaming", {"needed_mb": needed // 2**20, "budget_mb": memory_budget // 2**20})
        return images

    key = cache_key(paths, folder, img_size, mode)
    if cache_dir is not None:
        images.cache_file = Path(cache_dir) / f"images-{key}.npy"
        if images.cache_file.is_file():
            try:  # plain .npy without pickle: nothing in a cache file can run code
                data = torch.from_numpy(np.load(images.cache_file, allow_pickle=False))
                if tuple(data.shape) == (len(paths), 3, img_size, img_size) and data.dtype == torch.uint8:
                    images._data = data
                    _touch(images.cache_file)
                    return images
            except (OSError, ValueError, EOFError):
                pass  # a damaged cache file is rebuilt below
    images._data = decode_many(paths, img_size, mode=mode, on_progress=on_progress)
    if images.cache_file is not None:
        _save_atomically(images._data, images.cache_file)
        evict(images.cache_file.parent, keep=images.cache_file)
    return images


# --- the cache folder: size cap, least recently used first out ---------------------------------
def cache_cap() -> int:
    """Bytes the cache folder may hold: `CNN_STUDIO_CACHE_CAP`, else 2 GiB."""
    try:
        return max(0, int(os.environ.get("CNN_STUDIO_CACHE_CAP", "")))
    except ValueError:
        return DEFAULT_CACHE_CAP


def _entries(cache_dir: Path) -> list[tuple[float, int, list[Path]]]:
    """(last use, bytes, files) for each cached image set, least recently used first."""
    entries = []
    for npy in Path(cache_dir).glob(CACHE_PATTERN):
        files = [npy] + [f for f in (npy.with_suffix(".stats.json"),) if f.is_file()]
        try:
            entries.append((npy.stat().st_mtime, sum(f.stat().st_size for f in files), files))
        except OSError:
            continue  # removed meanwhile by another process
    return sorted(entries, key=lambda e: e[0])


def cache_size(cache_dir: str | Path) -> int:
    """Bytes held by the cached image sets in `cache_dir`."""
    return sum(size for _, size, _ in _entries(Path(cache_dir))) if Path(cache_dir).is_dir() else 0


def evict(cache_dir: str | Path, cap: int | None = None, keep: Path | None = None) -> list[Path]:
    """Delete the least recently used image sets until the folder holds at most `cap` bytes;
    `keep` (the set just saved or used) stays even when alone it is over the cap."""
    cap = cache_cap() if cap is None else cap
    entries = _entries(Path(cache_dir))
    total = sum(size for _, size, _ in entries)
    removed = []
    for _, size, files in entries:
        if total <= cap:
            break
        if keep is not None and files[0] == keep:
            continue
        for f in files:
            f.unlink(missing_ok=True)
        removed.append(files[0])
        total -= size
    return removed


def clear_cache(cache_dir: str | Path) -> int:
    """Delete every cached image set; returns the bytes freed. Safe while runs train: a run holds
    its images in memory, and the next run decodes them again."""
    if not Path(cache_dir).is_dir():
        return 0
    freed = cache_size(cache_dir)
    evict(cache_dir, cap=0)
    return freed


def _touch(path: Path) -> None:
    """Mark a cache file as just used (its mtime: access times are often not kept)."""
    try:
        os.utime(path)
    except OSError:
        pass


def _save_atomically(data: torch.Tensor, target: Path) -> None:
    """Never leave a half-written cache file (the app may be closed while saving)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with replacing(target, "wb") as fh:
        np.save(fh, data.numpy(), allow_pickle=False)
