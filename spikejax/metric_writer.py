"""Metrics on disk and progress on the terminal.

  MetricWriter(workdir)   metrics.jsonl + TensorBoard, both on disk at every write; on resume drops the
                          steps logged after the checkpoint
  Progress(...)           samples/s and the ETA for the log line, without the first (compiling) step
"""
from __future__ import annotations

import json
import os
import time

import jax

from spikejax.files import atomic_write, open_append


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
        self.jsonl = open_append(path)  # a symlink there is refused, never followed
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
    if not os.path.lexists(path):
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
    atomic_write(path, lambda f: f.writelines(kept))


class Progress:
    """The progress line's timing, without the session's first step, which compiles the train step (seconds
    to minutes of XLA compilation that no later step repeats):

      progress = Progress(last_step, samples_per_step)    before the first step
      progress.compiled(step)        once the first step has finished (its outputs ready)
      progress.timing(step)          at a log step: (samples/s, "1234 samples/s, ETA 12 s"); a new window

    samples/s = samples_per_step x steps since the last report / seconds since then; ETA = steps left x the
    mean step time since the first step finished. `clock`: seconds (time.monotonic; a test passes its own).
    """

    def __init__(self, last_step: int, samples_per_step: int, clock=time.monotonic):
        self.last_step, self.samples_per_step = last_step, samples_per_step
        self.clock = clock
        self.created = clock()
        self.start = self.timed_from = None  # when, and at which step, the first step finished
        self.compile_seconds = None  # the first step's time: compilation and one step
        self.window_start = self.window_step = None

    def compiled(self, step: int) -> None:
        """The first step (to `step`) has finished: timing starts here."""
        now = self.clock()
        self.compile_seconds = now - self.created
        self.start = self.window_start = now
        self.timed_from = self.window_step = step

    def report(self, step: int) -> tuple[float | None, float | None]:
        """(samples/s over the window, ETA in seconds); (None, None) while no step after the first has run.
        Starts a new window."""
        if self.start is None or step <= self.timed_from:
            return None, None
        now = self.clock()
        rate = (step - self.window_step) * self.samples_per_step / max(now - self.window_start, 1e-9)
        eta = (self.last_step - step) * (now - self.start) / (step - self.timed_from)
        self.window_start, self.window_step = now, step
        return rate, eta

    def timing(self, step: int) -> tuple[float | None, str]:
        """(samples/s or None, the line's timing text) at `step`; see `report`."""
        rate, eta = self.report(step)
        if rate is None:
            first = "" if self.compile_seconds is None else f" ({self.compile_seconds:.1f} s, compiling)"
            return None, f"first step{first}: samples/s and ETA from the next log step"
        return rate, f"{rate:.0f} samples/s, ETA {duration(eta)}"


def duration(seconds: float) -> str:
    """"12 s", "3 min 05 s", "2 h 07 min"."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
