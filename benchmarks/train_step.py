"""Full training-step throughput per dataset config, beside the input pipeline's throughput.

  python -m benchmarks.train_step                                   # every config, this machine
  python -m benchmarks.train_step --configs=dvs_gesture --reps=10
  python -m benchmarks.train_step --configs=dvs_gesture --implementation=fused   # force the XLA-scan LIF

Train step: the jitted, data-parallel `step.parallel_train_step` (forward, loss, backward, optimizer,
donated state) on every local device, at the config's batch size, T and model, median of --reps calls.
Pipeline: `TrainIterator` (memmap read, bit unpacking, time-major transpose) producing the same batches,
single thread, no device. End to end: the training loop's own path, `prefetch(TrainIterator)` ->
`global_batch_arrays` -> step, over --reps steps (the step's outputs are waited for at the end only, as in
training). digits_events uses its real cache; the other datasets (not downloadable here)
use random spikes at 5% density in a cache of the real layout and shape.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time


def synthetic_split(name, config, samples, seed=0):
    import numpy as np

    from spikejax import build, data
    from spikejax.data.cache import CachedSplit

    info = data.get_info(name)
    binning = build.binning(config)
    shape = data.frame_shape(info.sensor_size, binning)
    features = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    dense = (rng.random((samples, binning.time_bins, features)) < 0.05).astype(np.uint8)
    path = tempfile.mkdtemp()
    np.save(os.path.join(path, "spikes.npy"), np.packbits(dense, axis=-1))
    spikes = np.load(os.path.join(path, "spikes.npy"), mmap_mode="r")
    labels = rng.integers(0, info.num_classes, samples).astype(np.int32)
    return CachedSplit(name, "train", spikes, labels, np.zeros(samples, np.int64), np.zeros(samples, np.int64),
                       tuple(shape), binning.time_bins, True, list(info.classes), path)


def measure(name, args):
    import jax
    from flax import nnx

    from configs import for_dataset
    from spikejax import build, data, parallel
    from spikejax import step as step_lib

    config = for_dataset(name)
    if args.batch_size:
        config.batch_size = args.batch_size
    if args.implementation:
        config.model.neuron.implementation = args.implementation
    if name == "digits_events":
        split = data.load(name, "train", data_dir=args.data_dir)
    else:
        split = synthetic_split(config.dataset, config, samples=max(4 * config.batch_size, 256))
    iterator = data.TrainIterator(split, config.batch_size, seed=0, packed=split.packed)
    start = time.perf_counter()
    count = 0
    while time.perf_counter() - start < args.pipeline_seconds:
        next(iterator)
        count += 1
    pipeline = count * config.batch_size / (time.perf_counter() - start)

    mesh = parallel.data_mesh()
    model = build.model(config, split.frame_shape, len(split.classes))
    graphdef, params = nnx.split(model)
    tx = build.optimizer(config, 1000)
    state = build.init_state(params, tx, mesh)
    step = step_lib.parallel_train_step(mesh, graphdef=graphdef, tx=tx, loss_fn=build.loss(config),
                                     readout_fn=build.readout(config), frame_shape=build.packed_frame_shape(split))
    batch = next(iterator)
    arrays = parallel.global_batch_arrays(mesh, batch)
    compile_start = time.perf_counter()
    state, metrics = step(state, *arrays)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - compile_start
    times, faults = [], []
    for _ in range(args.reps):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        state, metrics = step(state, *arrays)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    median = statistics.median(times)
    try:  # XLA's temporaries of the compiled step (the page-fault trap of issue 26 is above ~32 MiB on CPU)
        temp = step.lower(state, *arrays).compile().memory_analysis().temp_size_in_bytes
    except Exception:  # noqa: BLE001  (not every backend or jax version reports it)
        temp = None
    fed = data.prefetch(iterator)
    state, metrics = step(state, *parallel.global_batch_arrays(mesh, next(fed)))  # warm the thread
    jax.block_until_ready(metrics)
    t0 = time.perf_counter()
    for _ in range(args.reps):
        state, metrics = step(state, *parallel.global_batch_arrays(mesh, next(fed)))
    jax.block_until_ready(metrics)
    end_to_end = args.reps * config.batch_size / (time.perf_counter() - t0)
    peak = (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
    return {"config": name, "batch": config.batch_size, "T": config.data.time_bins,
            "frame": "x".join(map(str, split.frame_shape)),
            "model": f"{config.model.name} {tuple(config.model.hidden)}",
            "dtype": build.compute_dtype(config.model.dtype), "step_ms": median * 1e3,
            "train_samples_per_s": config.batch_size / median,
            "pipeline_samples_per_s": pipeline, "first_call_s": compile_s, "end_to_end_samples_per_s": end_to_end,
            "peak_gib": peak / 2**30 if peak else None, "faults_per_step": statistics.median(faults),
            "temp_mib": temp / 2**20 if temp is not None else None,
            "implementation": config.model.neuron.implementation,
            "devices": f"{mesh.size} x {jax.devices()[0].device_kind}"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="digits_events,ntidigits18,nmnist,dvs_gesture")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=0, help="override every config's batch size")
    parser.add_argument("--pipeline_seconds", type=float, default=3.0)
    parser.add_argument("--implementation", default="", help="override model.neuron.implementation")
    parser.add_argument("--data_dir", default=None, help="default: $SPIKEJAX_DATA_DIR, else ~/.cache/spikejax")
    args = parser.parse_args()
    import jax

    print(f"jax {jax.__version__}, {jax.device_count()} x {jax.devices()[0].device_kind}, {os.cpu_count()} cores")
    print("| config | batch | T | frame | model | compute | LIF | step ms | step samples/s | pipeline samples/s | "
          "end-to-end samples/s | peak GiB | first call s | minor faults/step | XLA temp MiB |")
    print("|---|---:|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.configs.split(","):
        r = measure(name, args)
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] else "n/a"
        temp = "n/a" if r["temp_mib"] is None else f"{r['temp_mib']:.1f}"
        print(f"| {r['config']} | {r['batch']} | {r['T']} | {r['frame']} | {r['model']} | {r['dtype']} | "
              f"{r['implementation']} | {r['step_ms']:.1f} | {r['train_samples_per_s']:.0f} | "
              f"{r['pipeline_samples_per_s']:.0f} | {r['end_to_end_samples_per_s']:.0f} | {peak} | "
              f"{r['first_call_s']:.1f} | {r['faults_per_step']:.0f} | {temp} |", flush=True)


if __name__ == "__main__":
    main()
