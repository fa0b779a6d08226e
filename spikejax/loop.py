"""Utilities of the training loop: the workdir lock, the stop signal, the metric writer, progress/ETA and
atomic JSON writes. Each is small and has no knowledge of models or data.

  WorkdirLock(workdir)    one run per workdir: an flock on <workdir>/.lock holding the owner's pid
  StopSignal()            SIGTERM/SIGINT -> a flag the loop polls; installed only by whoever enters it
  MetricWriter(workdir)   metrics.jsonl + TensorBoard, both on disk at every write; on resume drops the
                          steps logged after the checkpoint
  Progress(...)           samples/s and ETA for the log line
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import time

import jax
import numpy as np

from spikejax.errors import WorkdirLockedError


def log(message: str) -> None:
    """Prints on process 0 only."""
    if jax.process_index() == 0:
        print(message, flush=True)


def atomic_write_json(path: str, obj) -> None:
    """Writes JSON to a temporary file and renames it over `path`: a reader (or a crash, or a full disk)
    sees the old file or the new one, never half of one."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class WorkdirLock:
    """Exclusive use of a workdir by one run (one process: multi-process runs lock on process 0).

    An advisory `flock` on <workdir>/.lock. The kernel drops it when its process dies, however it dies, so
    the lock of a dead process is simply taken over (`stale_owner` then names it); the file holds the
    owner's host and pid for the message. A second run raises WorkdirLockedError naming the workdir and the
    holder. Creates the workdir, and removes it again on release if the run left nothing else in it.
    """

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.path = os.path.join(workdir, ".lock")
        self.file = None
        self.created = False
        self.stale_owner: str | None = None

    def acquire(self) -> WorkdirLock:
        self.created = not os.path.isdir(self.workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            self.file = None
            raise WorkdirLockedError(f"workdir {self.workdir} is in use by {holder}; wait for it to finish, stop "
                                     "it, or choose another --workdir") from None
        self.file.seek(0)
        self.stale_owner = self.file.read().strip() or None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        self.file.flush()
        return self

    def release(self) -> None:
        """Clears the owner line (a non-empty line found by the next run means its owner died holding the
        lock) and unlocks. The file stays: deleting it could let two runs lock two different files."""
        if self.file is None:
            return
        self.file.seek(0)
        self.file.truncate()
        self.file.flush()
        if self.created and os.listdir(self.workdir) == [".lock"]:
            os.remove(self.path)  # a failed start leaves no empty workdir behind
            os.rmdir(self.workdir)
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()
        self.file = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


class StopSignal:
    """Turns SIGTERM/SIGINT into a flag the loop checks after each step (save, then stop). The handlers
    are installed on __enter__ and the previous ones restored on __exit__; the library never installs
    them itself (the command-line entry points do)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received: str | None = None
        self.previous = {}

    def __enter__(self):
        for sig in self.SIGNALS:
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def agreed_stop(stop: StopSignal | None) -> str | None:
    """Multi-process: the signal name if any process received one (SIGTERM if the name is not known here).
    A collective: every process must call it at the same steps."""
    from jax.experimental import multihost_utils

    received = stop.received if stop is not None else None
    flags = multihost_utils.process_allgather(np.int32(received is not None))
    return (received or "SIGTERM") if np.any(flags) else None


def stop_now(stop: StopSignal | None, sync_point: bool) -> str | None:
    """The received signal's name when the loop should save and stop at this step, else None. One process
    stops at once; several stop only at a `sync_point` (a step every process reaches at the same time:
    the log steps), where they agree through `agreed_stop`, because a save is a collective."""
    if jax.process_count() > 1:
        return agreed_stop(stop) if sync_point else None
    return stop.received if stop is not None else None


class MetricWriter:
    """metrics.jsonl (one JSON object per logged step) and TensorBoard event files (tensorboardX, no
    TensorFlow), written by process 0 only.

    `resume_step`: the step of the checkpoint the run resumed from. Lines of later steps, logged by the
    interrupted run after its last checkpoint, are dropped from metrics.jsonl (rewritten atomically), and
    TensorBoard is told to purge them (`purge_step`). Both are flushed at every write, so a killed run
    loses nothing it logged.
    """

    def __init__(self, workdir: str, resume_step: int | None = None):
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        path = os.path.join(workdir, "metrics.jsonl")
        if resume_step is not None:
            _truncate_jsonl(path, resume_step)
        self.jsonl = open(path, "a")
        self.tensorboard = _EventFile(os.path.join(workdir, "tensorboard"),
                                      purge_step=None if resume_step is None else resume_step + 1)

    def write(self, step: int, metrics: dict, prefix: str = "train") -> None:
        if not self.enabled:
            return
        # TensorBoard first: a line in metrics.jsonl means both are on disk
        self.tensorboard.write(int(step), {f"{prefix}/{key}": float(value) for key, value in metrics.items()})
        self.jsonl.write(json.dumps({"step": int(step), **{k: float(v) for k, v in metrics.items()}}) + "\n")
        self.jsonl.flush()

    def close(self) -> None:
        if self.enabled:
            self.jsonl.close()
            self.tensorboard.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _EventFile:
    """A TensorBoard event file written synchronously (tensorboardX's record writer and protos, no
    TensorFlow). tensorboardX's SummaryWriter queues events for a background thread, and its flush() does
    not wait for that queue: a killed process lost the last logged steps. `purge_step` writes the
    SessionLog.START event that makes TensorBoard drop earlier-written events at steps >= purge_step."""

    def __init__(self, folder: str, purge_step: int | None = None):
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto import event_pb2

        os.makedirs(folder, exist_ok=True)
        self.event_pb2 = event_pb2
        self.writer = EventsWriter(os.path.join(folder, "events"))
        if purge_step is not None:
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self.writer.write_event(event_pb2.Event(wall_time=time.time(), step=purge_step, session_log=start))
        self.writer.flush()

    def write(self, step: int, scalars: dict[str, float]) -> None:
        from tensorboardX.proto.summary_pb2 import Summary
        from tensorboardX.summary import scalar

        summary = Summary(value=[value for name, number in scalars.items() for value in scalar(name, number).value])
        self.writer.write_event(self.event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _truncate_jsonl(path: str, last_step: int) -> None:
    """Keeps the complete lines of `path` with step <= last_step (a torn last line is dropped too)."""
    if not os.path.exists(path):
        return
    kept = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if line.endswith("\n") and record.get("step", 0) <= last_step:
                kept.append(line)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.writelines(kept)
    os.replace(tmp, path)


class Progress:
    """Throughput over the last logging window and the ETA from the whole run's average step time."""

    def __init__(self, first_step: int, last_step: int, batch_size: int):
        self.first_step, self.last_step, self.batch_size = first_step, last_step, batch_size
        self.start = self.window_start = time.time()
        self.window_steps = 0

    def step(self) -> None:
        self.window_steps += 1

    def report(self, step: int) -> tuple[float, float]:
        """(samples/s over the window, ETA in seconds); starts a new window."""
        now = time.time()
        rate = self.window_steps * self.batch_size / max(now - self.window_start, 1e-9)
        eta = (self.last_step - step) * (now - self.start) / max(step - self.first_step, 1)
        self.window_start, self.window_steps = now, 0
        return rate, eta
