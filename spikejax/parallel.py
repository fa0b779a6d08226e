"""Devices, meshes and multi-host set-up for data parallelism over a 'data' mesh axis.

Batches are time-major [T, B, ...]: the batch axis (1) is split over 'data'; labels and masks [B] on
axis 0. Each process loads only its own B / process_count samples and the global array is assembled
with `jax.make_array_from_process_local_data`.
"""
from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, *, auto: bool = False) -> None:
    """Starts jax.distributed for multi-process runs.

    Explicit arguments (or the JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID environment
    variables) configure it by hand; `auto=True` lets JAX detect TPU pods, Slurm and other clusters.
    Does nothing for a single process. On CPU, cross-process collectives use gloo.
    """
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and "JAX_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and "JAX_PROCESS_ID" in os.environ:
        process_id = int(os.environ["JAX_PROCESS_ID"])
    if coordinator_address is None and not auto:
        return
    if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS", "") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)


def data_mesh(devices=None) -> jax.sharding.Mesh:
    """A 1-D mesh over every device of every process (or `devices`), axis name 'data'."""
    devices = np.asarray(devices if devices is not None else jax.devices())
    return jax.sharding.Mesh(devices, (DATA_AXIS,))


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh, batch_axis: int) -> NamedSharding:
    spec = [None] * batch_axis + [DATA_AXIS]
    return NamedSharding(mesh, P(*spec))


def global_batch(mesh, local: np.ndarray, batch_axis: int) -> jax.Array:
    """This process's slice [.., b_local, ..] -> the global array [.., b_local * process_count, ..]."""
    shape = list(local.shape)
    shape[batch_axis] *= jax.process_count()
    return jax.make_array_from_process_local_data(batch_sharding(mesh, batch_axis), local, tuple(shape))


def global_batch_arrays(mesh, batch) -> tuple[jax.Array, jax.Array, jax.Array]:
    """A host `data.Batch` (inputs [T, b, ...], labels [b], mask [b]; or stacked over data orders, [S, T, b,
    ...], [S, b], [S, b], from `data.SeededTrainIterator`) -> global (inputs, labels, mask)."""
    stacked = int(np.ndim(batch.labels) == 2)
    return (global_batch(mesh, batch.inputs, 1 + stacked), global_batch(mesh, batch.labels, stacked),
            global_batch(mesh, batch.mask, stacked))


def replicate(tree, mesh):
    """Puts a host pytree (identical on every process) on every device of the mesh."""
    sharding = replicated(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def varying(tree, axis_name: str):
    """`tree` (replicated inside shard_map) marked as varying over `axis_name`.

    Under shard_map, the gradient with respect to a replicated (invariant) input is already summed over the
    devices (the transpose of the implicit broadcast is a psum), so `pmean` of it is the *sum* of the
    per-device gradients. Taking the gradient with respect to this varying copy instead gives each device
    its own gradient, which `lax.pmean` then averages. `lax.pcast(to="varying")` in newer jax, `pvary` before.
    """
    if hasattr(jax.lax, "pcast"):
        return jax.lax.pcast(tree, axis_name, to="varying")
    return jax.lax.pvary(tree, axis_name)
