"""The one training loop, shared by a single run (`spikejax.train`) and the comparison's replica programs
(`spikejax.compare.sweep`): resume from the newest intact checkpoint, step, log and write metrics, validate
at epoch ends, checkpoint on a cadence, and stop on a signal after saving. It says when it compiles the
train step (the first step), and its progress lines' samples/s and ETA leave that step out
(`metric_writer.Progress`).

  with Session(workdir, template, meta, check_meta=..., keep=2) as session:   # lock, restore
      outcome = session.train(step_fn, train_data, schedule, stop=stop, report=..., on_epoch=...)
      ... evaluate outcome.state inside the lock

  StopSignal()            SIGTERM/SIGINT -> a flag the loop polls; installed only by whoever enters it
  Schedule                batch size, steps per epoch, the step to stop at, log and checkpoint cadence
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Callable

import jax
import numpy as np

from spikejax import data as data_lib
from spikejax import parallel
from spikejax.checkpoint import Checkpointer
from spikejax.errors import ConfigError, Interrupted
from spikejax.metric_writer import MetricWriter, Progress
from spikejax.workdir import lock_workdir, log


class StopSignal:
    """Turns SIGTERM/SIGINT during `Session.train`'s loop into a flag the loop checks after each step (save,
    then stop). Outside the loop (loading data, compiling, evaluating) a signal goes to the previous
    handler at once (Python's default: KeyboardInterrupt for SIGINT, termination for SIGTERM). The handlers
    are installed on __enter__ and the previous ones restored on __exit__; the library never installs
    them itself (the command-line entry points do)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received: str | None = None
        self.previous = {}
        self.in_loop = False  # set by Session.train while it steps

    def __enter__(self):
        for sig in self.SIGNALS:
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.in_loop:
            self.received = signal.Signals(signum).name
            return
        previous = self.previous.get(signum)
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:  # SIG_DFL: what the signal would have done without us
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

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




@dataclasses.dataclass(frozen=True)
class Schedule:
    """How a program walks its data: global batch, steps per epoch, the step training stops at (epochs x
    batches, or max_steps if sooner), the optimizer schedule's length, the log and checkpoint cadence, and
    the seed of the data order (or several: `data_seeds`, batches stacked over those orders, for replicas of
    different seeds)."""
    batch_size: int
    batches_per_epoch: int
    stop_at: int
    total_steps: int
    log_every: int
    checkpoint_every: int
    seed: int
    data_seeds: tuple[int, ...] | None = None


def schedule(*, batch_size: int, epochs: int, max_steps: int | None, log_every: int, checkpoint_every: int,
             seed: int, train_samples: int, devices: int, data_seeds: tuple[int, ...] | None = None) -> Schedule:
    """The Schedule; ConfigError (naming the field) when the batch does not split evenly over the devices
    or exceeds the training samples."""
    check_batch_split(batch_size, devices)
    if batch_size > train_samples:
        raise ConfigError(f"config field batch_size = {batch_size}: must be <= the {train_samples} training samples")
    batches_per_epoch = train_samples // batch_size
    total = epochs * batches_per_epoch
    return Schedule(batch_size, batches_per_epoch, min(total, max_steps or total), total, log_every,
                    checkpoint_every, seed, tuple(data_seeds) if data_seeds else None)


def epoch_text(step: int, plan: Schedule) -> str:
    """"epoch 2.50/8.00": epochs done at `step` and at the step training stops (plan.stop_at)."""
    return f"epoch {step / plan.batches_per_epoch:.2f}/{plan.stop_at / plan.batches_per_epoch:.2f}"


def check_batch_split(batch_size: int, devices: int) -> None:
    """ConfigError unless the global batch splits evenly over the devices (checked before any data work)."""
    if batch_size % devices:
        raise ConfigError(f"config field batch_size = {batch_size}: must be divisible by the {devices} devices")


@dataclasses.dataclass
class Outcome:
    """Where a loop ended: the state, the checkpoint meta, the step and the last saved step."""
    state: object
    meta: dict
    step: int
    last_saved: int | None


# report(step, metrics, state, last_saved) -> (values for metrics.jsonl, the log line's named fields, e.g.
# "step 40/160, epoch 2.00/8.00, loss 0.9130"; the loop adds ", 1234 samples/s, ETA 12 s")
Report = Callable[[int, dict, object, "int | None"], "tuple[dict[str, float], str]"]


@contextlib.contextmanager
def _in_loop(stop: StopSignal | None):
    """While the loop steps, `stop` turns signals into its flag (see StopSignal)."""
    if stop is None:
        yield
        return
    stop.in_loop = True
    try:
        yield
    finally:
        stop.in_loop = False


class Session:
    """A program's hold on its workdir: the lock, the checkpointer and the restored state.

    On entering: locks `workdir`, restores the newest intact checkpoint of <workdir>/checkpoints onto the
    shardings of `template` (damaged ones are set aside; `check_meta(saved_meta)` may refuse one that
    belongs to another run; `legacy`: see `Checkpointer.restore_latest`), and sets `state`, `meta`
    ({**meta_defaults, **saved meta}) and
    `resumed_step` (None for a fresh start). `train` then runs the loop. `stored`: (to_checkpoint,
    from_checkpoint), the state as checkpoints hold it and back (the comparison keeps its padding replicas
    out of them, `replicas.storage`); None: as it is.
    """

    def __init__(self, workdir: str, template, meta_defaults: dict, *, mesh, keep: int,
                 check_meta: Callable[[dict], None] | None = None, legacy=None, title: str = "",
                 stored: tuple[Callable, Callable] | None = None):
        self.workdir, self.template, self.mesh = workdir, template, mesh
        self.meta_defaults, self.keep, self.check_meta, self.legacy = meta_defaults, keep, check_meta, legacy
        self.stored = stored or (lambda state: state, lambda state: state)
        self.prefix = f"{title}: " if title else ""
        self.stack = None

    def __enter__(self) -> Session:
        self.stack = contextlib.ExitStack()
        try:
            self.stack.enter_context(lock_workdir(self.workdir))
            directory = os.path.join(self.workdir, "checkpoints")
            self.checkpointer = self.stack.enter_context(Checkpointer(directory, max_to_keep=self.keep))
            restored = self.checkpointer.restore_latest(self.stored[0](self.template), set_aside_damaged=True,
                                                        check_meta=self.check_meta, legacy=self.legacy)
        except BaseException:
            self.stack.close()
            raise
        self.state, self.meta = self.template, dict(self.meta_defaults)
        self.resumed_step = None
        if restored is not None:
            self.state, self.meta = self.stored[1](restored.state), {**self.meta, **restored.meta}
            self.resumed_step = restored.step
            log(f"{self.prefix}resumed from {directory} at step {restored.step} (epoch "
                f"{self.meta['data']['epoch']}, batch {self.meta['data']['position']})")
        return self

    def __exit__(self, *exc):
        self.stack.close()

    def train(self, step_fn, train_data, plan: Schedule, *, report: Report, stop: StopSignal | None = None,
              on_epoch: Callable[[int, object, dict], dict] | None = None, samples_per_step: int | None = None,
              ) -> Outcome:
        """Steps `state, metrics = step_fn(state, inputs, labels, mask)` from the restored step to
        plan.stop_at over `train_data` (batches from the restored iterator state). At every log step (and
        on a stop signal) `report` turns the metrics into values (written to metrics.jsonl / TensorBoard)
        and the log line; it may raise (a non-finite run). At each epoch's end `on_epoch(step, state, meta)`
        returns the meta to save (validation curves). Saves every plan.checkpoint_every steps, at the end,
        and on a signal, after which it raises Interrupted."""
        state, meta = self.state, self.meta
        step = int(parallel.to_host(state["step"]).reshape(-1)[0])
        last_saved = self.resumed_step
        walk = dict(packed=train_data.packed, process_index=jax.process_index(),
                    process_count=jax.process_count(), state=meta["data"])
        if plan.data_seeds:
            iterator = data_lib.SeededTrainIterator(train_data, plan.batch_size, seeds=plan.data_seeds, **walk)
        else:
            iterator = data_lib.TrainIterator(train_data, plan.batch_size, seed=plan.seed, **walk)
        progress = Progress(plan.stop_at, samples_per_step or plan.batch_size)
        seconds_before, started = meta["train_seconds"], time.time()
        if step < plan.stop_at:
            log(f"{self.prefix}compiling the train step (the first step; samples/s and the ETA leave it out) ...")
        with MetricWriter(self.workdir, resume_step=last_saved) as writer, _in_loop(stop):
            for batch in data_lib.prefetch(iterator) if step < plan.stop_at else ():
                state, metrics = step_fn(state, *parallel.global_batch_arrays(self.mesh, batch))
                step += 1
                if progress.start is None:  # the first step: compiled, and once its outputs are ready, timed
                    jax.block_until_ready(metrics)
                    progress.compiled(step)
                    log(f"{self.prefix}compiled; the first step took {progress.compile_seconds:.1f} s")
                # the iterator state after the last batch the model consumed (the prefetch thread runs ahead)
                meta = {**meta, "data": batch.next_state}
                last = step >= plan.stop_at
                log_now = step % plan.log_every == 0 or last
                if log_now or (stop is not None and stop.received):
                    values, line = report(step, metrics, state, last_saved)
                    rate, timing = progress.timing(step)
                    writer.write(step, values if rate is None else {**values, "samples_per_second": rate})
                    log(f"{self.prefix}{line}, {timing}")
                if on_epoch is not None and (step % plan.batches_per_epoch == 0 or last):
                    meta = on_epoch(step, state, meta)
                stopping = stop_now(stop, sync_point=log_now)
                if stopping or last or step % plan.checkpoint_every == 0:
                    meta["train_seconds"] = seconds_before + time.time() - started
                    self.checkpointer.save(step, self.stored[0](state), meta)
                    last_saved = step
                    reason = f"received {stopping}" if stopping else "end of training" if last else "periodic"
                    log(f"{self.prefix}saved checkpoint at step {step} ({reason})")
                if stopping:
                    raise Interrupted(stopping, step)
                if last:
                    break
        self.state, self.meta = state, meta
        return Outcome(state, meta, step, last_saved)
