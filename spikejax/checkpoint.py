"""Orbax checkpoints of everything needed to resume exactly.

A checkpoint at step N holds two items:
  state  the train state pytree (params, optimizer state, step, PRNG key), restored onto the shardings
         of a template state
  meta   JSON: the data-iterator state ({"epoch", "position"}) after step N and the run's config
Orbax writes each step to a temporary directory and renames it when complete, so an interrupted save
never replaces the last good checkpoint; `max_to_keep` bounds disk use.
"""
from __future__ import annotations

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    def __init__(self, directory: str, *, max_to_keep: int = 2):
        self.manager = ocp.CheckpointManager(
            directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                                 enable_async_checkpointing=False),
            item_names=("state", "meta"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state, meta: dict) -> None:
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()

    def restore_meta(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore_state(self, step: int, template):
        """The state saved at `step`, with the structure, dtypes and shardings of `template`."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
        return restored["state"]

    def close(self) -> None:
        self.manager.close()
