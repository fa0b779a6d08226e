"""Training-step throughput with and without data augmentation (spikejax.augment), on the embedded
digits_events default config (dense 2312-256-10, T=30, batch 64, bit-packed batches) on this machine.

  python -m benchmarks.augment                      # off, the NMNIST-like recipe, every transform at once
  python -m benchmarks.augment --reps=30

Each row: the jitted, data-parallel `step.parallel_train_step` on every local device, the same batch each
call, median of --reps timed calls after the first (compiling) one, alternating the programs call by call so
that a load change on a shared machine hits them alike. "recipe": configs/nmnist.py's augmentation (spatial
shift 2, spike drop 0.1); "all": time shift 2, per-spike time jitter 1, spatial shift 2, spike drop 0.1,
CutMix 0.5 (space).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

VARIANTS = {
    "off": {},
    "recipe": {"spatial_shift": 2, "spike_drop": 0.1},
    "all": {"time_shift": 2, "time_jitter": 1, "spatial_shift": 2, "spike_drop": 0.1, "cutmix": 0.5,
            "cutmix_mode": "space"},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--data_dir", default=None, help="default: $SPIKEJAX_DATA_DIR, else ~/.cache/spikejax")
    args = parser.parse_args()

    import jax
    from flax import nnx

    from configs import default
    from spikejax import build, data, parallel
    from spikejax import config as config_lib
    from spikejax import step as step_lib

    mesh = parallel.data_mesh()
    programs, first_call = {}, {}
    base = default.get_config()
    split = data.load(base.dataset, "train", data_dir=args.data_dir)
    batch = parallel.global_batch_arrays(mesh, next(iter(data.TrainIterator(split, base.batch_size, seed=0,
                                                                             packed=split.packed))))
    for name, fields in VARIANTS.items():
        config = default.get_config()
        config.data.augment.update(fields)
        config_lib.validate(config)
        graphdef, params = nnx.split(build.model(config, split.frame_shape, len(split.classes)))
        tx = build.optimizer(config, 1000)
        step = step_lib.parallel_train_step(mesh, graphdef=graphdef, tx=tx, loss_fn=build.loss(config),
                                            readout_fn=build.readout(config),
                                            frame_shape=build.packed_frame_shape(split),
                                            augment=build.augment(config), seed=config.seed)
        state = build.init_state(params, tx, mesh)
        t0 = time.perf_counter()
        state, metrics = step(state, *batch)
        jax.block_until_ready(metrics)
        first_call[name] = time.perf_counter() - t0
        programs[name] = [step, state, []]
    for _ in range(args.reps):
        for program in programs.values():
            step, state, times = program
            t0 = time.perf_counter()
            state, metrics = step(state, *batch)
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - t0)
            program[1] = state
    print(f"jax {jax.__version__}, {mesh.size} x {jax.devices()[0].device_kind}, {os.cpu_count()} cores; "
          f"digits_events, batch {base.batch_size}, T {base.data.time_bins}, median of {args.reps}")
    print("| augmentation | step ms | samples/s | vs off | first call s |")
    print("|---|---:|---:|---:|---:|")
    reference = statistics.median(programs["off"][2])
    for name, (_, _, times) in programs.items():
        median = statistics.median(times)
        print(f"| {name} | {median * 1e3:.2f} | {base.batch_size / median:.0f} | {median / reference:.2f}x | "
              f"{first_call[name]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
