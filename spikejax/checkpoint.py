"""Orbax checkpoints of everything needed to resume exactly, and the resume policy.

A checkpoint at step N holds two items:
  state  the train state pytree (params, optimizer state with its hyperparameters, step), restored onto the
         shardings of a template state
  meta   JSON: the data-iterator state ({"epoch", "position"}) after step N, the run's config, the training
         wall time so far (seconds), the train split's content fingerprint and the state's layout (STATE_LAYOUT)

Guarantees:
- Never saves a non-finite state: `save` checks every parameter and optimizer leaf first and raises
  NonFiniteError instead, so the last good checkpoint survives.
- Orbax writes each step into a temporary folder and renames it when complete. When the disk fills up,
  `save` removes that partial folder and raises a one-line DiskFullError; earlier checkpoints are intact.
- `restore_latest` falls back from a damaged checkpoint (truncated or missing file) to the newest intact
  one, with a warning naming the damaged folder; a training run moves damaged folders aside
  (<step>.damaged-<time>) so that it can save that step again.
- Resume policy: a checkpoint's config may differ from the run's only in RESUMABLE_FIELDS, and its train
  split's content fingerprint must be the data's now (`check_same_data`; data_dir may move, the data may not).
"""
from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import sys
import time

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from spikejax import config as config_lib
from spikejax.errors import ConfigMismatchError, DiskFullError, NoCheckpointError, NonFiniteError, is_disk_full

# The train state's layout, saved in each checkpoint's meta: 1 (spikejax 0.1: {params, opt_state, step, rng},
# the optimizer without injected hyperparameters), 2 ({params, opt_state, step}, opt_state.hyperparams).
STATE_LAYOUT = 2

# Config fields that may change when a run resumes; any other difference is refused.
RESUMABLE_FIELDS = ("epochs", "max_steps", "log_every", "checkpoint_every_steps", "keep_checkpoints", "data_dir",
                    "eval_batch_size", "plots",
                    # the same function, computed another way:
                    "model.neuron.implementation", "model.neuron.recompute_chunk")


def check_resumable(saved: dict, current: dict) -> None:
    """Raises ConfigMismatchError listing every field (outside RESUMABLE_FIELDS) that differs."""
    a, b = config_lib.flatten(config_lib.upgrade(saved)), config_lib.flatten(config_lib.to_dict(current))
    ignored = set(RESUMABLE_FIELDS) | config_lib.inactive_loss_fields(a) | config_lib.inactive_loss_fields(b)
    diffs = [f"  {k}: checkpoint {a.get(k)!r} != now {b.get(k)!r}" for k in sorted(set(a) | set(b))
             if k not in ignored and a.get(k) != b.get(k)]
    if diffs:
        raise ConfigMismatchError(
            "the workdir holds a checkpoint of a run with a different config; refusing to mix them:\n"
            + "\n".join(diffs) + "\nUse a new --workdir, or rerun with the checkpoint's settings.")


def check_same_data(saved_meta: dict, fingerprint: str, source: str) -> None:
    """ConfigMismatchError when the checkpoint was trained on a train split of other content: its meta's
    "data_fingerprint" (`spikejax.data.cache.content_fingerprint`) differs from `fingerprint` (of the split
    read now from `source`). A checkpoint without one (older spikejax) is accepted."""
    before = saved_meta.get("data_fingerprint")
    if before is not None and before != fingerprint:
        raise ConfigMismatchError(
            f"the workdir's checkpoint was trained on other data: train split fingerprint {before} (checkpoint) != "
            f"{fingerprint} (now, {source}); point --data_dir or $SPIKEJAX_DATA_DIR at the data it was trained on, "
            "or use a new --workdir")


def finite(tree) -> jax.Array:
    """Scalar bool: whether every floating leaf of `tree` is finite (traceable: the train step uses it)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


_finite_jit = jax.jit(finite)


def all_finite(tree) -> bool:
    """Whether every floating leaf of `tree` is finite."""
    return bool(_finite_jit(tree))


@dataclasses.dataclass
class Restored:
    step: int
    state: object
    meta: dict


class Checkpointer:
    """Save/restore of {state, meta} per step under `directory`.

    `create=False` (evaluation) never creates the directory: a missing one raises NoCheckpointError. A relative
    `directory` is taken from the working directory (orbax itself refuses one).
    """

    def __init__(self, directory: str, *, max_to_keep: int = 2, create: bool = True):
        directory = os.path.abspath(os.path.expanduser(directory))
        if not create and not os.path.isdir(directory):
            raise NoCheckpointError(f"no checkpoint in {directory}: the folder does not exist; train first")
        self.directory = directory
        self.failed_saves: list[int] = []  # steps whose partial folders are removed again on close
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create,
                                               enable_async_checkpointing=False)
        self.manager = _listing_retried(
            lambda: ocp.CheckpointManager(directory, options=options, item_names=("state", "meta")))

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, meta: dict) -> None:
        """Saves `state` and `meta` as step `step`, unless the state holds a non-finite value."""
        meta = {**meta, "state_layout": STATE_LAYOUT}
        if not all_finite({"params": state["params"], "opt_state": state["opt_state"]}):
            raise NonFiniteError(
                f"refusing to save step {step}: the parameters or optimizer state hold NaN or inf; "
                f"{_last_good(self.latest_step())} in {self.directory} is kept. Lower optimizer.learning_rate or "
                "check the inputs.")
        try:
            self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                            meta=ocp.args.JsonSave(meta)), force=True)
            self.manager.wait_until_finished()
        except Exception as error:
            if not is_disk_full(error):
                raise
            self._remove_partial(step)
            self.failed_saves.append(step)
            self._reload()
            raise DiskFullError(
                f"no space left on the device while saving checkpoint step {step} to {self.directory}; the partial "
                f"checkpoint was removed; {_last_good(self.latest_step())} is intact. Free space and rerun the "
                "same command to resume.") from None

    def _remove_partial(self, step: int) -> None:
        """Removes step's temporary folders, and its final folder unless orbax committed it."""
        for path in glob.glob(os.path.join(self.directory, f"{step}.orbax-checkpoint-tmp*")):
            _remove_tree(path)
        final = os.path.join(self.directory, str(step))
        if os.path.isdir(final) and not os.path.exists(os.path.join(final, "commit_success.txt")):
            _remove_tree(final)

    def _complete_steps(self) -> set[int]:
        return {s for s in self.manager.all_steps()
                if os.path.exists(os.path.join(self.directory, str(s), "commit_success.txt"))}

    def restore_meta(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore_state(self, step: int, template):
        """The state saved at `step`, with the structure, dtypes and shardings of `template`. ValueError when a
        saved array's shape is not its template's (orbax would return the saved shape without a word)."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
        for (path, saved), wanted in zip(jax.tree_util.tree_leaves_with_path(restored["state"]),
                                         jax.tree_util.tree_leaves(abstract)):
            if jnp.shape(saved) != tuple(wanted.shape):
                raise ValueError(f"{jax.tree_util.keystr(path)} was saved with shape {jnp.shape(saved)}, the model's "
                                 f"has {tuple(wanted.shape)}")
        return restored["state"]

    def restore_latest(self, template, *, check_meta=None, set_aside_damaged: bool = False,
                       legacy=None) -> Restored | None:
        """The newest checkpoint that restores completely and holds only finite values, or None when there
        is none at all.

        `check_meta(meta)` runs on the newest readable meta before its state is restored (the resume policy:
        a refusal propagates and nothing is touched). A checkpoint whose meta or state fails to restore (a
        truncated, missing or unreadable file) is reported on stderr by name and skipped; with
        `set_aside_damaged` it is renamed to <step>.damaged-<unix time>. One whose parameters or optimizer
        state hold NaN or inf is skipped too, and said so. A checkpoint of an older state layout (meta
        "state_layout" below STATE_LAYOUT) is restored onto `legacy = (template, convert)`'s template and
        converted. Steps are listed afresh after each failure, so a run saving meanwhile (which adds a step
        and deletes old ones) is followed, and a step deleted while it was read is not called damaged; a step
        still being written (<step>.orbax-checkpoint-tmp-*) is never read. Raises NoCheckpointError when
        checkpoints exist but none is intact, or (reading, not `set_aside_damaged`: a training run holds the
        lock, so its temporary folders are a killed run's) when none is complete yet.
        """
        damaged, tried, causes = [], set(), set()
        while True:
            # the newest step not tried yet, listed afresh: a run writing meanwhile adds steps and deletes old ones
            listed = self.all_steps()
            fresh = [s for s in listed if s not in tried]
            if not fresh:
                break
            step = fresh[-1]
            tried.add(step)
            try:
                meta = self.restore_meta(step)
            except Exception as error:  # orbax/tensorstore raise many types for a damaged file
                if self._vanished(step, listed):
                    continue
                causes.add(self._report_damaged(step, error))
                damaged.append(step)
                continue
            if check_meta is not None:
                check_meta(meta)
            old = meta.get("state_layout", 1) < STATE_LAYOUT and legacy is not None
            try:
                state = self.restore_state(step, legacy[0] if old else template)
            except Exception as error:
                if self._vanished(step, listed):
                    continue
                causes.add(self._report_damaged(step, error))
                damaged.append(step)
                continue
            if not all_finite({"params": state["params"], "opt_state": state["opt_state"]}):
                _warn(f"checkpoint {os.path.join(self.directory, str(step))} holds NaN or inf in its parameters or "
                      "optimizer state and is skipped")
                causes.add(None)  # damage in values, not an error shared with the others
                damaged.append(step)
                continue
            if old:
                state = legacy[1](state)
            if set_aside_damaged:
                self._set_aside(damaged)
            if damaged:
                _warn(f"using the newest intact checkpoint, step {step}")
            return Restored(step, state, meta)
        if len(damaged) > 1 and len(causes) == 1 and None not in causes:
            raise NoCheckpointError(
                f"no checkpoint in {self.directory} could be restored, and every one (steps {sorted(damaged)}) failed "
                f"alike ({causes.pop()}): that may not be damage but something they all share, such as a model or "
                "optimizer whose parameters no longer match theirs, or a jax/orbax release that reads them "
                "otherwise; check that before moving the folder away to start afresh")
        if damaged:
            raise NoCheckpointError(f"every checkpoint in {self.directory} is damaged (steps {sorted(damaged)}); move "
                                    "the folder away to start afresh")
        writing = self.being_written()
        if not set_aside_damaged and (writing or tried):  # a reader beside a training run (which holds the lock)
            what = f"step {writing[0]} is being written" if writing else "its checkpoints were replaced while read"
            raise NoCheckpointError(f"no complete checkpoint in {self.directory} yet ({what}); wait for the training "
                                    "run to save one, then rerun")
        return None

    def _reload(self) -> None:
        """The manager's step list read afresh (see `_listing_retried`)."""
        _listing_retried(self.manager.reload)

    def _vanished(self, step: int, listed: list[int]) -> bool:
        """Whether `step` was replaced while it was read: gone, or a step newer than it appeared since `listed`
        was read (a run saved one and is deleting this one). Not damaged: the newer one is read instead. A
        newer step that was listed already (one found damaged before) does not count. Re-reads the list."""
        self._reload()
        return (not os.path.isdir(os.path.join(self.directory, str(step)))
                or any(s > step and s not in listed for s in self.all_steps()))

    def being_written(self) -> list[int]:
        """Steps with a temporary folder (<step>.orbax-checkpoint-tmp-*): being written by a live run, or left
        by a killed one. Never read as checkpoints."""
        names = glob.glob(os.path.join(glob.escape(self.directory), "*.orbax-checkpoint-tmp*"))
        return sorted({int(os.path.basename(n).split(".", 1)[0]) for n in names
                       if os.path.basename(n).split(".", 1)[0].isdigit()}, reverse=True)

    def _report_damaged(self, step: int, error: BaseException) -> str:
        """Warns that `step` is skipped; returns the error's root cause."""
        cause = _root_cause(error)
        _warn(f"checkpoint {os.path.join(self.directory, str(step))} is damaged and is skipped ({cause})")
        return cause

    def _set_aside(self, steps: list[int]) -> None:
        if not steps:
            return
        if jax.process_index() == 0:
            for step in steps:
                path = os.path.join(self.directory, str(step))
                target = f"{path}.damaged-{int(time.time())}"
                os.rename(path, target)
                _warn(f"moved the damaged checkpoint to {target}")
        if jax.process_count() > 1:  # the others see the folder only after process 0 has moved it
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("spikejax_set_aside_damaged")
        self._reload()

    def close(self) -> None:
        """Closes the manager (its writer threads end), then removes once more what a failed save left: a
        writer thread of that save may have added files after the first removal."""
        self.manager.close()
        for step in self.failed_saves:
            self._remove_partial(step)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _root_cause(error: BaseException) -> str:
    """The innermost cause's type and first line (orbax wraps tensorstore's message several times)."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:300] if text else ''}"


def _remove_tree(path: str, attempts: int = 50) -> None:
    """rmtree until `path` is gone: after a failed save an orbax writer thread may still add files to the
    folder while it is being removed (CI once found a partial folder left behind)."""
    for _ in range(attempts):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            return
        time.sleep(0.1)


def _listing_retried(list_steps, attempts: int = 50):
    """list_steps(), again while it raises FileNotFoundError or NotADirectoryError: orbax lists the step
    folders, then reads each one's time, and a training run saving beside us (keep_checkpoints) may delete a
    listed step in between (orbax asks `exists() and not is_dir()` of a step folder: deleted between the two
    calls, it raises NotADirectoryError; a full suite run on a loaded machine met that once)."""
    for attempt in range(attempts):
        try:
            return list_steps()
        except (FileNotFoundError, NotADirectoryError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.02)


def _last_good(step: int | None) -> str:
    return f"the last good checkpoint (step {step})" if step is not None else "no earlier checkpoint exists"


def _warn(message: str) -> None:
    if jax.process_index() == 0:
        print(f"WARNING: {message}", file=sys.stderr, flush=True)
