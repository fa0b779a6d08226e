"""The evaluation step's time per batch, per dataset config (what the NeuroBench counts added to it).

  python -m benchmarks.eval_step                           # digits_events MLP and the DVS Gesture conv net
  python -m benchmarks.eval_step --configs=dvs_gesture --reps=5

`evaluate.parallel_eval_step` (forward, decisions, spike/SynOp/NeuroBench sums) on one packed batch of
config.eval_batch_size samples (DVS Gesture: its batch size, 32), median of --reps synchronised calls after
a warm-up. digits_events uses its real cache; dvs_gesture random 5%-dense spikes in its real layout.
"""
from __future__ import annotations

import argparse
import statistics
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="digits_events,dvs_gesture")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--data_dir", default=None)
    args = parser.parse_args()

    import jax
    from flax import nnx

    from benchmarks.train_step import synthetic_split
    from configs import for_dataset
    from spikejax import build, data, evaluate, parallel

    print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}")
    print("| config | batch | eval step ms |\n|---|---:|---:|")
    for name in args.configs.split(","):
        config = for_dataset(name)
        batch_size = config.eval_batch_size if name == "digits_events" else config.batch_size
        split = (data.load(name, "test", data_dir=args.data_dir) if name == "digits_events"
                 else synthetic_split(name, config, samples=batch_size))
        mesh = parallel.data_mesh()
        model = build.model(config, split.frame_shape, len(split.classes))
        graphdef, params = nnx.split(model)
        params = parallel.replicate(params, mesh)
        fn = evaluate.parallel_eval_step(mesh, graphdef=graphdef, loss_fn=build.loss(config),
                                         readout_fn=build.readout(config), fan_out=model.fan_out,
                                         frame_shape=build.packed_frame_shape(split))
        batch = next(iter(data.eval_batches(split, batch_size, packed=split.packed)))
        arrays = parallel.global_batch_arrays(mesh, batch)
        jax.block_until_ready(fn(params, *arrays))
        times = []
        for _ in range(args.reps):
            start = time.perf_counter()
            jax.block_until_ready(fn(params, *arrays))
            times.append(time.perf_counter() - start)
        print(f"| {name} | {batch_size} | {1e3 * statistics.median(times):.1f} |")


if __name__ == "__main__":
    main()
