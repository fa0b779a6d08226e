"""Devices, meshes and multi-host set-up for data parallelism over a 'data' mesh axis, and for the
comparison's replicas split over a 'replica' axis as well.

Batches are time-major [T, B, ...]: the batch axis (1) is split over 'data'; labels and masks [B] on
axis 0. Each process loads only its own B / process_count samples and the global array is assembled
with `jax.make_array_from_process_local_data`.

  data_mesh()                 1-D ('data',): every device; the single run and, by default, the comparison
  replica_mesh(k)             2-D ('replica', 'data'), k x n/k: R replicas split into k groups of R/k, each
                              group data parallel over n/k devices (`spikejax.compare.replicas`)
"""
from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"
REPLICA_AXIS = "replica"


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


def replica_mesh(replica_devices: int, devices=None) -> jax.sharding.Mesh:
    """A 2-D mesh ('replica', 'data') of shape (replica_devices, n / replica_devices) over every device (or
    `devices`, n of them). Replica groups are runs of consecutive devices, mesh[i, j] = devices[j *
    replica_devices + i]: the 'data' axis then spans the processes in their order, as `data_mesh`'s does, so
    each process still loads B / process_count samples of every batch (`global_batch`). ValueError unless
    replica_devices divides n and each group lies within one process."""
    devices = np.asarray(devices if devices is not None else jax.devices()).reshape(-1)
    if not isinstance(replica_devices, (int, np.integer)) or replica_devices < 1 or devices.size % replica_devices:
        raise ValueError(f"replica_devices = {replica_devices!r}: must be a positive divisor of the {devices.size} "
                         "devices")
    grid = devices.reshape(devices.size // replica_devices, replica_devices)  # [data, replica]
    if any(len({d.process_index for d in group}) > 1 for group in grid):
        raise ValueError(f"replica_devices = {replica_devices}: each replica group of consecutive devices must lie "
                         f"within one process; the processes have {jax.local_device_count()} devices each")
    return jax.sharding.Mesh(grid.T, (REPLICA_AXIS, DATA_AXIS))


def replica_groups(mesh) -> int:
    """How many groups the replicas are split into: the mesh's 'replica' size (1 without that axis)."""
    return dict(mesh.shape).get(REPLICA_AXIS, 1)


def data_devices(mesh) -> int:
    """How many devices a batch is split over: the mesh's 'data' size."""
    return dict(mesh.shape)[DATA_AXIS]


def replica_spec(mesh) -> P:
    """P('replica') (the leading, replica axis split over 'replica') on a replica mesh, else P() (replicated)."""
    return P(REPLICA_AXIS) if REPLICA_AXIS in mesh.axis_names else P()


def check_replica_count(count: int, mesh) -> None:
    """ValueError unless `count` replicas split evenly over the mesh's replica groups."""
    groups = replica_groups(mesh)
    if count % groups:
        raise ValueError(f"{count} replicas do not split over the {groups} replica groups of the mesh "
                         f"{dict(mesh.shape)}: R must be a multiple of {groups} (pad the replicas, or use "
                         "another replica_devices)")


def shard_replicas(tree, mesh):
    """Puts a host pytree whose leaves have a leading replica axis [R, ...] (identical on every process) on
    `mesh`: split over 'replica' (replicated over 'data') on a replica mesh, else replicated (`replicate`).
    ValueError unless R splits evenly (`check_replica_count`)."""
    if REPLICA_AXIS not in mesh.axis_names:
        return replicate(tree, mesh)
    sharding = NamedSharding(mesh, replica_spec(mesh))

    def put(x):
        x = np.asarray(x)
        check_replica_count(x.shape[0], mesh)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)


def to_host(tree):
    """The global values of a pytree of jax arrays as numpy, on every process: `jax.device_get`, or an
    all-gather across processes for arrays split over devices of several processes."""
    from jax.experimental import multihost_utils

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(get, tree)


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
