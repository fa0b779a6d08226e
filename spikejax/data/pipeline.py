"""Batches: seeded per-epoch shuffling, resumable position, per-process slices, padded evaluation.

Batches are time-major: inputs uint8 [T, b, *frame_shape], labels int32 [b], mask float32 [b] (1 for a
real sample, 0 for padding), where b = global_batch_size / process_count is this process's share.
With `packed=True` (bit-packed splits only) inputs stay packed, uint8 [T, b, ceil(F/8)], 8x fewer bytes
to assemble and to copy to the device; `spikejax.data.device.unpack_spikes` decodes them there.
"""
from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator

import numpy as np

from spikejax.data.cache import CachedSplit


@dataclasses.dataclass
class Batch:
    inputs: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    next_state: dict  # iterator state after this batch: saving it resumes at the following batch


def _local_slice(global_batch_size, process_index, process_count):
    if global_batch_size % process_count:
        raise ValueError(f"batch size {global_batch_size} must be divisible by the {process_count} processes")
    local = global_batch_size // process_count
    return slice(process_index * local, (process_index + 1) * local)


def _assemble(data: CachedSplit, indices: np.ndarray, mask: np.ndarray, next_state: dict,
              packed: bool = False) -> Batch:
    order = np.argsort(indices)  # sorted reads from the memmap, then back to batch order
    rows = data.packed_rows(indices[order]) if packed else data.dense(indices[order])
    assembled = np.empty_like(rows)
    assembled[order] = rows
    inputs = np.ascontiguousarray(np.swapaxes(assembled, 0, 1))
    return Batch(inputs, np.asarray(data.labels[indices], np.int32), mask.astype(np.float32), next_state)


class TrainIterator:
    """Endless training batches. Each epoch is a permutation seeded by (seed, epoch); the incomplete last
    batch of an epoch is dropped so shapes stay static. State: {"epoch", "position"} (batch in epoch)."""

    def __init__(self, data: CachedSplit, global_batch_size: int, *, seed: int,
                 process_index: int = 0, process_count: int = 1, state: dict | None = None,
                 packed: bool = False):
        if global_batch_size > len(data):
            raise ValueError(f"batch size {global_batch_size} exceeds the {len(data)} training samples")
        self.data, self.batch_size, self.seed = data, global_batch_size, seed
        self.packed = packed
        self.local = _local_slice(global_batch_size, process_index, process_count)
        self.batches_per_epoch = len(data) // global_batch_size
        state = state or {"epoch": 0, "position": 0}
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.data))

    @property
    def state(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
        start = self.position * self.batch_size
        indices = self.order(self.epoch)[start:start + self.batch_size][self.local]
        self.position += 1
        return _assemble(self.data, indices, np.ones(len(indices)), self.state, self.packed)


class SeededTrainIterator:
    """Batches of several data orders at once, for replicas with different seeds: one `TrainIterator` per
    seed, all at the same position (one shared state), stacked: inputs [S, T, b, ...], labels [S, b], mask
    [S, b], entry s in the order of seeds[s]. Each seed's batches are exactly those a TrainIterator with that
    seed gives, so a replica of seed s sees what a single run of seed s would."""

    def __init__(self, data: CachedSplit, global_batch_size: int, *, seeds, process_index: int = 0,
                 process_count: int = 1, state: dict | None = None, packed: bool = False):
        if not seeds:
            raise ValueError("SeededTrainIterator needs at least one seed")
        self.iterators = [TrainIterator(data, global_batch_size, seed=int(s), process_index=process_index,
                                        process_count=process_count, state=state, packed=packed) for s in seeds]

    @property
    def state(self) -> dict:
        return self.iterators[0].state

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        batches = [next(it) for it in self.iterators]
        return Batch(np.stack([b.inputs for b in batches]), np.stack([b.labels for b in batches]),
                     np.stack([b.mask for b in batches]), batches[0].next_state)


def eval_batches(data: CachedSplit, global_batch_size: int, *, process_index: int = 0,
                 process_count: int = 1, packed: bool = False) -> Iterator[Batch]:
    """One pass over every sample exactly once, in order; the last batch is padded (mask 0)."""
    local = _local_slice(global_batch_size, process_index, process_count)
    count = len(data)
    for start in range(0, count, global_batch_size):
        indices = np.arange(start, start + global_batch_size)[local]
        mask = indices < count
        yield _assemble(data, np.where(mask, indices, 0), mask, {}, packed)


def prefetch(iterator: Iterator[Batch], size: int = 2) -> Iterator[Batch]:
    """Runs `iterator` in a background thread, `size` batches ahead (numpy releases the GIL while it
    unpacks and copies, so batch assembly overlaps the device step)."""
    buffer: queue.Queue = queue.Queue(maxsize=size)
    done = object()
    stop = threading.Event()

    def worker():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(done)
        except BaseException as error:  # surfaced in the consumer
            buffer.put(error)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
