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
from spikejax.errors import DataError

FORMAT_VERSION = 2  # 2: per-file CRC-32 in meta.json
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
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
) -> CachedSplit:
    """Returns the cached split, building it from `samples()` (events, label) pairs when missing."""
    description = {"dataset": name, "split": split, "binning": dataclasses.asdict(binning),
                   "sensor_size": list(sensor_size), "source": source_options}
    key = cache_key(description)
    path = os.path.join(os.path.expanduser(cache_dir), f"{name}-{split}-{key}")
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
        raise ValueError(f"{description['dataset']} {description['split']}: no samples found")
    tmp = tempfile.mkdtemp(prefix=_tmp_prefix(), dir=parent)
    try:
        arrays = dict(zip(ARRAYS, (np.stack(rows), np.asarray(labels, np.int32), np.asarray(events, np.int64),
                                   np.asarray(durations, np.int64))))
        files = {}
        for filename, array in arrays.items():
            np.save(os.path.join(tmp, filename), array)
            target = os.path.join(tmp, filename)
            files[filename] = {"bytes": os.path.getsize(target), "crc32": file_crc32(target)}
        meta = {**description, "frame_shape": list(shape), "num_samples": len(rows), "classes": classes,
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
    log(f"  cached {len(rows)} samples in {time.time() - start:.1f} s")


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


def _open(path) -> CachedSplit:
    meta = verify(path)
    load = lambda name, mode=None: np.load(os.path.join(path, name), mmap_mode=mode)
    labels = load("labels.npy")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(meta["classes"])):
        raise DataError(f"cache {path} has labels in [{labels.min()}, {labels.max()}], outside "
                        f"[0, {len(meta['classes'])})")
    return CachedSplit(
        name=meta["dataset"], split=meta["split"], spikes=load("spikes.npy", "r"), labels=labels,
        events=load("events.npy"), duration_us=load("duration_us.npy"),
        frame_shape=tuple(meta["frame_shape"]), time_bins=meta["time_bins"], packed=meta["packed"],
        classes=meta["classes"], path=path)
