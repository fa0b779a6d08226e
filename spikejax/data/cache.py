"""On-disk cache of binned datasets, keyed by a hash of everything that shapes the tensors.

Layout: <cache_dir>/<dataset>-<split>-<key>/ with
  spikes.npy   uint8 [N, T, ceil(F/8)] bit-packed (binarize) or [N, T, F] counts, memory-mapped on read
  labels.npy   int32 [N]
  events.npy   int64 [N]   events per sample (before binning)
  duration_us.npy int64 [N]
  meta.json    the key's contents, shapes, class names, and each array file's size and CRC-32
The directory is written under a temporary name (.tmp-<host>-<pid>-...) and renamed into place, so an
interrupted build never leaves a half cache that later runs would trust; the next build removes the
temporary folders of dead processes on this host.

Every open checks each file's size and CRC-32 (about 2 GB/s; BENCHMARKS.md) and the label range. A cache
that fails is named in a warning, removed and rebuilt from the source data; it is never read as data.

The key includes the source files' identity (`source_identity`): each file's name (relative to their common
folder), size and BLAKE2b hash of its whole content, so a replaced or changed file gives a new cache. The
hashes are remembered in <cache_dir>/sources-<dataset>-<split>.json with each file's size, mtime, ctime and
inode, and recomputed only when one of those changes: a later load costs one stat per file. ctime and the
inode cannot be carried over by `cp -p`, `rsync -a` or `touch -r`, so a replaced file is always re-hashed;
a file copied elsewhere with the same content keeps its cache. A full disk while building removes the
temporary folder and raises a DiskFullError naming the path and the bytes needed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable

import numpy as np

from spikejax.data.events import Binning, bin_events, frame_shape
from spikejax.errors import DataError, DiskFullError, is_disk_full

FORMAT_VERSION = 2  # 2: per-file CRC-32 in meta.json (the key also holds the source identity, below)
ARRAYS = ("spikes.npy", "labels.npy", "events.npy", "duration_us.npy")


@dataclasses.dataclass
class CachedSplit:
    """A binned split. `spikes` may be a read-only memmap; decode rows with `dense(indices)`."""

    name: str
    split: str
    spikes: np.ndarray
    labels: np.ndarray
    events: np.ndarray
    duration_us: np.ndarray
    frame_shape: tuple[int, ...]
    time_bins: int
    packed: bool
    classes: list[str]
    path: str
    rows: np.ndarray | None = None  # a subset: sample i is row rows[i] of `spikes` (labels etc. already subset)
    fingerprint: str = ""  # of the whole cached split's content (`content_fingerprint`); a subset keeps it

    @property
    def num_features(self) -> int:
        return int(np.prod(self.frame_shape))

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices) -> CachedSplit:
        """The samples `indices` (sorted int) of this split as a split of their own; the memory-mapped
        spikes are shared, not copied."""
        indices = np.asarray(indices, np.int64)
        rows = indices if self.rows is None else self.rows[indices]
        return dataclasses.replace(self, labels=self.labels[indices], events=self.events[indices],
                                   duration_us=self.duration_us[indices], rows=rows)

    def _stored(self, indices) -> np.ndarray:
        indices = np.asarray(indices)
        return self.spikes[indices if self.rows is None else self.rows[indices]]

    def dense(self, indices) -> np.ndarray:
        """uint8 [len(indices), T, *frame_shape] for sample indices (sorted reads are fastest)."""
        rows = self._stored(indices)
        if self.packed:
            rows = np.unpackbits(rows, axis=-1, count=self.num_features)
        return rows.reshape((len(rows), self.time_bins) + tuple(self.frame_shape))

    def packed_rows(self, indices) -> np.ndarray:
        """uint8 [len(indices), T, ceil(F/8)]: the stored bits (np.packbits, big-endian, over the flattened
        frame of F features) of a packed split, not unpacked; decode with `unpack_spikes` on device."""
        if not self.packed:
            raise ValueError(f"{self.name}/{self.split} is stored as counts, not bits; use dense()")
        return self._stored(indices)


def cache_key(description: dict) -> str:
    blob = json.dumps({**description, "format_version": FORMAT_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_or_build(
    *,
    name: str,
    split: str,
    cache_dir: str,
    sensor_size: tuple[int, int, int],
    binning: Binning,
    classes: list[str],
    source_options: dict,
    samples: Callable[[], Iterable[tuple[np.ndarray, int]]],
    num_samples: Callable[[], int] | None = None,
    sources: Callable[[], list[str]] | None = None,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
) -> CachedSplit:
    """Returns the cached split, building it from `samples()` (events, label) pairs when missing.
    `sources()`: the files the samples are read from (their identity is part of the key); None for data
    generated in code."""
    cache_dir = os.path.expanduser(cache_dir)
    description = {"dataset": name, "split": split, "binning": dataclasses.asdict(binning),
                   "sensor_size": list(sensor_size), "source": source_options}
    if sources is not None:
        description["source_files"] = source_identity(
            sources(), os.path.join(cache_dir, f"sources-{name}-{split}.json"))
    key = cache_key(description)
    path = os.path.join(cache_dir, f"{name}-{split}-{key}")
    if os.path.exists(path):
        try:
            return _open(path)
        except DataError as error:
            log(f"WARNING: {error}; removing it and rebuilding the cache")
            shutil.rmtree(path, ignore_errors=True)
    _build(path, description, sensor_size, binning, classes, samples, num_samples, log)
    return _open(path)


def file_crc32(path: str, chunk: int = 1 << 24) -> str:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}"


def source_identity(files: list[str], memo_path: str) -> dict:
    """{"files": n, "bytes": total size, "sha256": of every file's (name relative to the files' common
    folder, size, BLAKE2b-128 of its content)}. Content hashes are reused from `memo_path` for files whose
    size, mtime, ctime and inode are unchanged, and the memo is rewritten (atomically; skipped when the
    folder is read-only or full)."""
    files = sorted(os.path.abspath(f) for f in files)
    if not files:
        return {"files": 0, "bytes": 0, "sha256": hashlib.sha256().hexdigest()}
    root = os.path.dirname(files[0]) if len(files) == 1 else os.path.commonpath(files)
    try:
        with open(memo_path) as f:
            memo = json.load(f)
        memo = memo if isinstance(memo, dict) else {}
    except (OSError, ValueError):
        memo = {}
    fresh, digest, total = {}, hashlib.sha256(), 0
    for path in files:
        try:
            st = os.stat(path)
        except OSError as error:
            raise DataError(f"cannot read source file {path} ({error})") from None
        signature = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        known = memo.get(path)
        content = known[4] if isinstance(known, list) and known[:4] == signature else _content_hash(path)
        fresh[path] = signature + [content]
        digest.update(json.dumps([os.path.relpath(path, root), st.st_size, content]).encode())
        total += st.st_size
    if fresh != memo:
        _write_json_atomic(memo_path, fresh)
    return {"files": len(files), "bytes": total, "sha256": digest.hexdigest()}


def _content_hash(path: str, chunk: int = 1 << 24) -> str:
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                digest.update(block)
    except OSError as error:
        raise DataError(f"cannot read source file {path} ({error})") from None
    return digest.hexdigest()


def _write_json_atomic(path: str, value) -> None:
    """Best effort: a memo that cannot be written is recomputed next time."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=os.path.dirname(path))
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(value, f)
        os.replace(tmp, path)
    except OSError:
        try:
            os.remove(tmp)
        except OSError:
            pass


def _tmp_prefix() -> str:
    return f".tmp-{socket.gethostname()}-{os.getpid()}-"


def _remove_stale_tmp(parent: str) -> None:
    """Removes .tmp-<this host>-<pid>-* folders whose process is gone (an interrupted build)."""
    host = f".tmp-{socket.gethostname()}-"
    for entry in os.listdir(parent):
        if not entry.startswith(host):
            continue
        pid = entry[len(host):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _build(path, description, sensor_size, binning, classes, samples, num_samples, log):
    shape = frame_shape(sensor_size, binning)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    _remove_stale_tmp(parent)
    total = num_samples() if num_samples else None
    log(f"building cache {path} ({total if total is not None else '?'} samples, "
        f"[T={binning.time_bins}, {'x'.join(map(str, shape))}])")
    rows, labels, events, durations = [], [], [], []
    start = last = time.time()
    for i, (sample_events, label) in enumerate(samples()):
        dense = bin_events(sample_events, sensor_size, binning)
        rows.append(np.packbits(dense, axis=-1) if binning.binarize else dense)
        if not 0 <= int(label) < len(classes):
            raise DataError(f"{description['dataset']} {description['split']}: sample {i} has label {label}, "
                            f"outside [0, {len(classes)})")
        labels.append(int(label))
        events.append(len(sample_events))
        t = np.asarray(sample_events["t"], np.int64)
        durations.append(int(t.max() - t.min()) if len(t) else 0)
        if i == 0:
            first = last = time.time()
        elif time.time() - last > 5:
            last = time.time()
            rate = i / (last - first)
            eta = f", ETA {(total - i - 1) / rate:.0f} s" if total else ""
            log(f"  {i + 1}{'/' + str(total) if total else ''} samples, {rate:.0f}/s{eta}")
    if not rows:
        raise DataError(f"{description['dataset']} {description['split']}: no samples found in its source files; "
                        "check the dataset folder (see README, 'Datasets')")
    arrays = dict(zip(ARRAYS, (np.stack(rows), np.asarray(labels, np.int32), np.asarray(events, np.int64),
                               np.asarray(durations, np.int64))))
    try:
        _write(path, parent, arrays, description, shape, binning, classes)
    except OSError as error:
        needed = sum(a.nbytes for a in arrays.values()) + 4096 * (len(arrays) + 1)
        free = shutil.disk_usage(parent).free
        # numpy's own writer reports a full disk as "N requested and M written", without an errno
        if not (is_disk_full(error) or (error.errno is None and free < needed)):
            raise
        raise DiskFullError(f"no space left on the device writing the cache {path}: it needs about "
                            f"{needed / 2**20:.1f} MiB, {free / 2**20:.1f} MiB are free there; the partial cache was "
                            "removed. Free space or choose another --data_dir, and rerun.") from None
    log(f"  cached {len(rows)} samples in {time.time() - start:.1f} s")


def _write(path, parent, arrays, description, shape, binning, classes):
    """Writes the arrays and meta.json into a temporary folder in `parent` and renames it to `path`; the
    temporary folder is removed whatever happens."""
    tmp = tempfile.mkdtemp(prefix=_tmp_prefix(), dir=parent)
    try:
        files = {}
        for filename, array in arrays.items():
            np.save(os.path.join(tmp, filename), array)
            target = os.path.join(tmp, filename)
            files[filename] = {"bytes": os.path.getsize(target), "crc32": file_crc32(target)}
        meta = {**description, "frame_shape": list(shape), "num_samples": len(arrays["labels.npy"]), "classes": classes,
                "packed": bool(binning.binarize), "time_bins": binning.time_bins, "files": files}
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
        try:
            os.rename(tmp, path)
        except OSError:  # another process finished the same cache first
            if not os.path.exists(os.path.join(path, "meta.json")):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def verify(path: str) -> dict:
    """meta.json of the cache at `path` after checking every array file's size and CRC-32; raises a
    DataError naming the damaged or missing file."""
    try:
        with open(os.path.join(path, "meta.json")) as f:
            meta = json.load(f)
        files = meta["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"cache {path} is damaged or incomplete (meta.json: {type(error).__name__}: {error})") from None
    for filename in ARRAYS:
        target = os.path.join(path, filename)
        expected = files.get(filename, {})
        if not os.path.exists(target):
            raise DataError(f"cache {path} is damaged: {filename} is missing")
        size = os.path.getsize(target)
        if size != expected.get("bytes"):
            raise DataError(f"cache {path} is damaged: {filename} has {size} bytes, expected {expected.get('bytes')}")
        if file_crc32(target) != expected.get("crc32"):
            raise DataError(f"cache {path} is damaged: {filename} fails its CRC-32 check")
    return meta


def content_fingerprint(meta: dict) -> str:
    """16 hex digits of SHA-256 over every array file's size and CRC-32 (meta.json's "files"): equal for the
    same binned samples, labels and order, whatever folder, cache key or source path they came from."""
    return hashlib.sha256(json.dumps(meta["files"], sort_keys=True).encode()).hexdigest()[:16]


def _open(path) -> CachedSplit:
    meta = verify(path)

    def load(name, mode=None):
        try:
            return np.load(os.path.join(path, name), mmap_mode=mode, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise DataError(f"cache {path} is damaged: {name} cannot be read ({type(error).__name__}: "
                            f"{error})") from None

    try:
        name, split, frame_shape_, time_bins, packed, classes = (
            meta["dataset"], meta["split"], tuple(meta["frame_shape"]), meta["time_bins"], meta["packed"],
            meta["classes"])
    except (KeyError, TypeError) as error:
        raise DataError(f"cache {path} is damaged: meta.json lacks {error}") from None
    labels = load("labels.npy")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DataError(f"cache {path} has labels in [{labels.min()}, {labels.max()}], outside [0, {len(classes)})")
    return CachedSplit(
        name=name, split=split, spikes=load("spikes.npy", "r"), labels=labels,
        events=load("events.npy"), duration_us=load("duration_us.npy"),
        frame_shape=frame_shape_, time_bins=time_bins, packed=packed, classes=classes, path=path,
        fingerprint=content_fingerprint(meta))
