"""Decode once: every image of a split, resized to the training size, in one uint8 array.

On a 2-core laptop, decoding JPEGs every epoch costs more than the small CNN itself, so the
images are decoded once by a thread pool (PIL releases the GIL while decoding) into a uint8
array [N,3,S,S], saved under the workspace cache as a plain .npy file, keyed by the file list,
their mtimes and sizes and the image size, so a second run (or an app restart) starts at once.

How a split's images are held (`load_images(cache=...)`, a run's `TrainConfig.cache`):
- "memory": the array in RAM (read whole from the cache file, or decoded and then saved).
- "disk": the same .npy file, written once chunk by chunk (little memory while decoding) and
  mapped read-only: the OS keeps the pages in use, and the several processes of a torchrun job
  map one file and share those pages; each reads only the rows it asks for.
- "stream": decoded from the image files for each batch. Only where there is no cache folder,
  or its disk has no room for the file (`note` says which).
- "auto" (the default): memory when the decoded split fits the memory budget
  (`CNN_STUDIO_CACHE_BUDGET` bytes, 2 GiB by default), else disk, with a `note` saying why.

Several processes (advisory flocks, where the OS has them): whoever builds a set holds its lock
file (`images-<key>.lock`) exclusively, so the other processes wait and then read the file
instead of decoding it again; a process that maps a set holds a shared lock on the .npy itself
for as long as the mapping lives.

The cache folder has a size cap (`CNN_STUDIO_CACHE_CAP` bytes, 2 GiB by default): a cache file
is touched each time it is used, and after a new one is saved the least recently used files go
until the folder fits. A set that some process has mapped is never deleted (its shared lock is
held); were it deleted all the same (a user's `rm`), on Linux and macOS a mapped file stays
readable until unmapped, and on Windows the delete fails and is skipped. The set just saved stays even when alone it is
over the cap, so a disk set larger than the cap is still written (it is the only way to train on
it from disk) and lives until a later set is saved while no process maps it. `clear_cache`
empties the folder (the Data page's button) but for the sets in use.
"""
from __future__ import annotations

import hashlib
import math
import mmap
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from numpy.lib.format import open_memmap
from PIL import Image

from core.atomic import replacing
from core.data.files import class_folders, class_images
from core.data.images import open_image
from core.data.labels import class_names
from core.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks (a mapped file cannot be deleted there anyway)
    fcntl = None

RELEASE = getattr(mmap, "MADV_DONTNEED", None) if hasattr(mmap.mmap, "madvise") else None  # see Mapped
DEFAULT_MEMORY_BUDGET = int(os.environ.get("CNN_STUDIO_CACHE_BUDGET", str(2 * 1024**3)))
DEFAULT_CACHE_CAP = 2 * 1024**3
CACHE_VERSION = 1
CACHE_PATTERN = "images-*.npy"  # each with an optional `.stats.json` and a `.lock` beside it
CACHE_MODES = ("auto", "memory", "disk", "stream")  # TrainConfig.cache (core.training.config.CACHES)
CHUNK_BYTES = 64 * 2**20  # a disk set is decoded this much at a time
DISK_RESERVE = 256 * 2**20  # a disk set is written only when this much (or a tenth of it) stays free


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


def _ticker(total: int, on_progress: OnDecoded | None) -> Callable[[], None]:
    """Called once per decoded image; tells `on_progress` about every 1% of `total`."""
    if on_progress is None:
        return lambda: None
    every = max(1, total // 100)
    done = iter(range(1, total + 1))  # next() on a range iterator is atomic under the GIL

    def tick() -> None:
        n = next(done)
        if n % every == 0 or n == total:
            on_progress(n, total)
    return tick


def _decode_into(out: torch.Tensor, paths: list[Path], img_size: int, mode: str, pool: ThreadPoolExecutor,
                 tick: Callable[[], None]) -> None:
    def fill(i: int) -> None:
        out[i] = decode_resized(paths[i], img_size, mode)
        tick()

    list(pool.map(fill, range(len(paths))))


def decode_many(paths: list[Path], img_size: int, workers: int | None = None, mode: str = "square",
                on_progress: OnDecoded | None = None) -> torch.Tensor:
    """uint8 [N,3,S,S] for `paths`, decoded in a thread pool; a broken file raises a UserError.
    `on_progress` hears how many are done (a first cache build takes seconds the page must explain)."""
    out = torch.empty((len(paths), 3, img_size, img_size), dtype=torch.uint8)
    if paths:
        with ThreadPoolExecutor(max_workers=workers or _workers()) as pool:
            _decode_into(out, paths, img_size, mode, pool, _ticker(len(paths), on_progress))
    return out


@dataclass
class ImageSet:
    """The images of one split: labels, paths and a way to get uint8 batches by index."""

    classes: list[str]
    display_names: list[str]
    paths: list[Path]
    labels: torch.Tensor
    img_size: int
    note: tuple[str, dict] | None = None  # translation key + params when something is worth saying
    cache_file: Path | None = None
    mean_std: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    _data: torch.Tensor | Mapped | None = field(default=None, repr=False)  # in RAM, a mapped file, or none
    mode: str = "square"  # how images were resized (core.data.cache.decode_resized)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def storage(self) -> str:
        """Where the decoded images are: "memory", "disk" (a mapped file) or "stream" (none)."""
        return "stream" if self._data is None else "disk" if isinstance(self._data, Mapped) else "memory"

    @property
    def streaming(self) -> bool:
        return self._data is None

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        """uint8 [B,3,S,S] for these indices, in their order (any subset: a rank's shard too)."""
        if self._data is None:
            return decode_many([self.paths[i] for i in indices.tolist()], self.img_size, mode=self.mode)
        if isinstance(self._data, Mapped):
            return self._data.gather(indices)
        return self._data.index_select(0, indices)  # about 10x faster than self._data[indices] on CPU


class Mapped:
    """A cached set's .npy file mapped read-only: the uint8 array [N,3,S,S] without reading it.

    The pages a process touches count in its resident memory although they are the OS's page
    cache, shared by every process mapping the file; so once about RELEASE_BYTES may have been
    mapped the mapping hands them back (madvise DONTNEED: they stay cached, and a later read maps
    them again), which keeps a run's resident memory small however large the set. A read of one
    row maps up to FAULT_AROUND bytes around it (Linux maps cached neighbours along), hence the count.
    """

    RELEASE_BYTES = 64 * 2**20
    FAULT_AROUND = 64 * 2**10

    def __init__(self, mapping: mmap.mmap, offset: int, shape: tuple[int, ...]) -> None:
        self._mapping, self._read = mapping, 0
        self.array = np.frombuffer(mapping, dtype=np.uint8, count=math.prod(shape), offset=offset).reshape(shape)

    def gather(self, indices: torch.Tensor) -> torch.Tensor:
        """Rows `indices` (any subset, any order, repeats too) as a uint8 tensor in that order;
        read in file order, which is sequential on disk when the pages are not cached."""
        idx = indices.cpu().numpy().astype(np.int64, copy=False)
        order = np.argsort(idx, kind="stable")
        out = np.empty((len(idx), *self.array.shape[1:]), dtype=np.uint8)
        out[order] = self.array[idx[order]]
        self._read += len(idx) * max(out[0].nbytes if len(idx) else 0, self.FAULT_AROUND)
        if self._read >= self.RELEASE_BYTES and RELEASE is not None:
            self._read = 0
            self._mapping.madvise(RELEASE)
        return torch.from_numpy(out)


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
    memory_budget: int | None = None,
    mode: str = "square",
    on_progress: OnDecoded | None = None,
    cache: str = "auto",
) -> ImageSet:
    """The images of `split_dir/split`, decoded once (and saved to `cache_dir`) or streamed;
    `cache` chooses how they are held (see the module's docstring).

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

    if cache not in CACHE_MODES:
        raise ValueError(f"cache must be one of {CACHE_MODES}, not {cache!r}")
    needed = len(paths) * 3 * img_size * img_size
    memory_budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else memory_budget
    sizes = {"needed_mb": needed // 2**20, "budget_mb": memory_budget // 2**20}
    fits = needed <= memory_budget
    wanted = ("memory" if fits else "disk") if cache == "auto" else cache
    if wanted == "stream":
        return images
    if wanted == "disk" and cache_dir is None:  # nowhere to put the file: as if there were no disk form
        if not fits:
            images.note = ("data.cache_streaming", sizes)
            return images
        wanted = "memory"
    if cache_dir is None:
        images._data = decode_many(paths, img_size, mode=mode, on_progress=on_progress)
        return images

    images.cache_file = file = Path(cache_dir) / f"images-{cache_key(paths, folder, img_size, mode)}.npy"
    shape = (len(paths), 3, img_size, img_size)
    mapped = wanted == "disk"
    data = _read(file, shape, mapped)
    if data is None:
        with _build_lock(file):  # one process builds; the others wait here, then read its file
            data = _read(file, shape, mapped)
            if data is None:
                _remove_leftovers(file)
                if mapped and not _room_for(file.parent, needed):
                    if not fits:
                        free_mb = shutil.disk_usage(file.parent).free // 2**20
                        images.note = ("data.cache_streaming_no_space", sizes | {"free_mb": free_mb})
                        return images
                    mapped = False
                data = (_build_mapped(file, paths, img_size, mode, on_progress) if mapped
                        else _build_in_memory(file, paths, img_size, mode, on_progress))
                evict(file.parent, keep=file)
    else:
        _touch(file)
    images._data = data
    if mapped and cache == "auto":
        images.note = ("data.cache_disk", sizes)
    return images


def _read(file: Path, shape: tuple[int, ...], mapped: bool) -> torch.Tensor | Mapped | None:
    """The cached set in `file`, mapped read-only or read into memory; None when it is missing
    or damaged (it is rebuilt). Plain .npy without pickle: nothing in it can run code.

    A mapped set holds a shared flock on the file it maps for as long as the mapping lives (the
    mapping keeps a duplicate of the descriptor, and the lock with it), which tells `evict` that
    a process is using it."""
    try:
        with open(file, "rb") as fh:
            if mapped and fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_SH)  # `evict` holds it exclusively for a moment at most
            version = np.lib.format.read_magic(fh)
            if version not in ((1, 0), (2, 0)):
                return None
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            found, fortran, dtype = read_header(fh)
            offset, n = fh.tell(), math.prod(shape)
            if tuple(found) != shape or fortran or dtype != np.uint8 or os.fstat(fh.fileno()).st_size != offset + n:
                return None
            if mapped:
                return Mapped(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ), offset, shape)
            return torch.from_numpy(np.fromfile(fh, dtype=np.uint8, count=n).reshape(shape))
    except (OSError, ValueError, EOFError):
        return None


@contextmanager
def _build_lock(file: Path) -> Iterator[None]:
    """Held exclusively while `file` is (re)built, on a lock file beside it; gone afterwards
    when no set came of it (a broken image, no room). A no-op where there is no flock."""
    file.parent.mkdir(parents=True, exist_ok=True)
    lock_file, fd = file.with_suffix(".lock"), None
    if fcntl is not None:
        with suppress(OSError):  # a read-only cache folder: no lock, and no saved file either
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        if not file.is_file():
            with suppress(OSError):
                lock_file.unlink()
        if fd is not None:
            os.close(fd)


def _build_in_memory(file: Path, paths: list[Path], img_size: int, mode: str,
                     on_progress: OnDecoded | None) -> torch.Tensor:
    data = decode_many(paths, img_size, mode=mode, on_progress=on_progress)
    try:
        _save_atomically(data, file)
    except OSError:
        pass  # a full or read-only disk costs the next run a decode, not this one its images
    return data


def _build_mapped(file: Path, paths: list[Path], img_size: int, mode: str,
                  on_progress: OnDecoded | None) -> Mapped:
    """Decode into a new .npy file a chunk at a time (each chunk mapped, filled by the thread
    pool, flushed and unmapped, so memory stays about CHUNK_BYTES), then move it into place."""
    shape = (len(paths), 3, img_size, img_size)
    row = 3 * img_size * img_size
    fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
    os.close(fd)
    try:
        header = open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        offset = header.offset
        del header  # the file now has its header and full length
        rows = max(1, CHUNK_BYTES // row)
        tick = _ticker(len(paths), on_progress)
        with ThreadPoolExecutor(max_workers=_workers()) as pool:
            for start in range(0, len(paths), rows):
                part = paths[start:start + rows]
                window = np.memmap(tmp, dtype=np.uint8, mode="r+", offset=offset + start * row,
                                   shape=(len(part), 3, img_size, img_size))
                _decode_into(torch.from_numpy(window), part, img_size, mode, pool, tick)
                window.flush()
                del window
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, file)  # a reader sees no file or the whole file, never half of one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    data = _read(file, shape, mapped=True)
    if data is None:
        raise OSError(f"{file} could not be read back")
    return data


def _room_for(folder: Path, needed: int) -> bool:
    """Whether the disk holding `folder` has room for a set of `needed` bytes and a margin."""
    return shutil.disk_usage(folder).free >= needed + max(needed // 10, DISK_RESERVE)


def _remove_leftovers(file: Path) -> None:
    """Temporary files of an earlier build of `file` that was killed (called under its lock)."""
    for tmp in file.parent.glob(f".{file.name}.*.tmp"):
        with suppress(OSError):
            tmp.unlink()


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
    `keep` (the set just saved or used) stays even when alone it is over the cap, and so does
    every set a process has mapped."""
    cap = cache_cap() if cap is None else cap
    entries = _entries(Path(cache_dir))
    total = sum(size for _, size, _ in entries)
    removed = []
    for _, size, files in entries:
        if total <= cap:
            break
        if (keep is not None and files[0] == keep) or not _remove_unused(files):
            continue
        removed.append(files[0])
        total -= size
    return removed


def _remove_unused(files: list[Path]) -> bool:
    """Delete a set's files unless a process has it mapped (a shared flock on it, see `_read`);
    False when the set stays."""
    fd = None
    try:
        if fcntl is not None:
            fd = os.open(files[0], os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for f in files:
            f.unlink(missing_ok=True)
    except FileNotFoundError:
        pass  # removed meanwhile by another process
    except OSError:
        return False  # mapped: the lock is held, or Windows refuses to delete a mapped file
    finally:
        if fd is not None:
            os.close(fd)
    with suppress(OSError):
        files[0].with_suffix(".lock").unlink()
    return True


def clear_cache(cache_dir: str | Path) -> int:
    """Delete every cached image set but those a process has mapped; returns the bytes freed.
    Safe while runs train: a run holds its images in memory or keeps its mapped set, and the
    next run decodes the others again."""
    if not Path(cache_dir).is_dir():
        return 0
    before = cache_size(cache_dir)
    evict(cache_dir, cap=0)
    return before - cache_size(cache_dir)


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
