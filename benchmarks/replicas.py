"""R replicas in one compiled step against the same R models stepped one after another.

  python -m benchmarks.replicas                          # digits_events MLP, R = 12 (4 losses x 3 seeds)
  python -m benchmarks.replicas --replicas=1,8,32,128    # aggregate samples/s against R (a GPU question)
  python -m benchmarks.replicas --dataset=nmnist --replicas=1,8,32 --sequential=no
  python -m benchmarks.replicas --dataset=dvs_gesture --replicas=1,4 --sequential=yes --time_bins=50 --batch_size=16
  python -m benchmarks.replicas --replicas=8,32 --replica_devices=2 --sequential=no   # replicas split over 2
                                                                                      # groups of devices

digits_events uses its real cache; the other datasets (not downloadable here) use random 5%-dense spikes in
a cache of the real layout and shape (as benchmarks.train_step does).

For each R: `replicas.parallel_train_step` over R replicas (mse, softmax, nll, windowed nll, cycling seeds)
against R separate `step.parallel_train_step`s (one program per model, each with its own loss and learning
rate, called in turn), on the same packed batch, median of --reps synchronised calls after one warm-up.
--conv_form=lax builds the conv net with jax.lax.conv_general_dilated (vmapped: one grouped convolution per
conv, the form before `spikejax.models.replica_conv`) instead of the default `replica_conv` (R plain
convolutions under vmap), for the before/after of issue 22, item 11; --conv_form=blockdiag uses
replica_conv's block-diagonal form (one dense convolution over the folded replicas).
--replica_devices=k runs the one program on `parallel.replica_mesh(k)` (the replicas split over k groups
of devices, R padded up to a multiple of k with copies of the last, as the sweep pads); the R single
programs stay on every device.
"""
from __future__ import annotations

import argparse
import statistics
import time


def _median_ms(fn, reps):
    import jax

    jax.block_until_ready(fn())
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def grid(count: int) -> list[dict]:
    losses = [dict(loss="mse"), dict(loss="softmax"), dict(loss="nll"), dict(loss="nll", window=10)]
    return [dict(seed=r // len(losses), **losses[r % len(losses)]) for r in range(count)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits_events")
    parser.add_argument("--replicas", default="12")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--sequential", default="auto", help="also time R single programs: yes | no | auto (R<=16)")
    parser.add_argument("--replica_devices", type=int, default=1,
                        help="split the one program's replicas over this many groups of devices (a 2-D mesh)")
    parser.add_argument("--time_bins", type=int, help="override the dataset config's data.time_bins")
    parser.add_argument("--batch_size", type=int, help="override the dataset config's batch_size")
    parser.add_argument("--conv_form", choices=("replica", "blockdiag", "lax"), default="replica",
                        help="the conv net's convolution: replica_conv (default: R convolutions), its "
                        "block-diagonal form, or lax's (the form before)")
    args = parser.parse_args()
    import jax
    from flax import nnx

    if args.conv_form != "replica":
        import functools

        from spikejax.models import networks, replica_conv

        conv = jax.lax.conv_general_dilated if args.conv_form == "lax" else functools.partial(
            replica_conv.conv_general_dilated, replica_form="blockdiag")
        networks.replica_conv = type(args.conv_form, (), {"conv_general_dilated": staticmethod(conv)})

    from configs import for_dataset
    from spikejax import build, data, parallel
    from spikejax import step as step_lib
    from spikejax.compare import replicas

    config = for_dataset(args.dataset)
    if args.time_bins:
        config.data.time_bins = args.time_bins
    if args.batch_size:
        config.batch_size = args.batch_size
    mesh = parallel.data_mesh()
    if args.dataset == "digits_events":
        split = build.load_split(config, "train")
    else:
        from benchmarks.train_step import synthetic_split

        split = synthetic_split(args.dataset, config, samples=max(4 * config.batch_size, 256))
    host_batch = next(iter(data.TrainIterator(split, config.batch_size, seed=0, packed=split.packed)))
    batch = parallel.global_batch_arrays(mesh, host_batch)
    program_mesh = parallel.replica_mesh(args.replica_devices) if args.replica_devices > 1 else mesh
    program_batch = parallel.global_batch_arrays(program_mesh, host_batch)
    frame = build.packed_frame_shape(split)
    print(f"jax {jax.__version__}, {jax.device_count()} x {jax.devices()[0].device_kind}; {args.dataset}, batch "
          f"{config.batch_size}, T={config.data.time_bins}; one program on a mesh {dict(program_mesh.shape)}; "
          f"conv form {args.conv_form}")
    print("| R | one program: step ms | samples/s (all replicas) | R single programs in turn: ms | ratio |")
    print("|---:|---:|---:|---:|---:|")
    for count in map(int, args.replicas.split(",")):
        overrides = grid(count)
        selection, hyper = replicas.hyperparameters(overrides, config)
        hyper = replicas.pad(hyper, parallel.replica_groups(program_mesh))
        tx = build.optimizer(config, 1000)
        graphdef, state = replicas.init_state(config, hyper, tx, program_mesh)
        step = replicas.parallel_train_step(program_mesh, graphdef=graphdef, tx=tx, frame_shape=frame,
                                            selection=selection)
        hyper_device = parallel.shard_replicas(hyper, program_mesh)
        holder = {"state": state}

        def together():
            holder["state"], metrics = step(holder["state"], *program_batch, hyper_device)
            return metrics

        one_program = _median_ms(together, args.reps)
        sequential = None
        if args.sequential == "yes" or (args.sequential == "auto" and count <= 16):
            singles = []
            for o in overrides:
                single = replicas._seeded(config, o["seed"])
                single.loss.name = o["loss"]
                single.loss[o["loss"]].update({k: v for k, v in o.items() if k not in replicas.BASE_FIELDS})
                graphdef_one, params = nnx.split(build.model(single))
                tx_one = build.optimizer(single, 1000)
                singles.append([step_lib.parallel_train_step(mesh, graphdef=graphdef_one, tx=tx_one,
                                                          loss_fn=build.loss(single),
                                                          readout_fn=build.readout(single), frame_shape=frame),
                                build.init_state(params, tx_one, mesh)])

            def in_turn():
                out = None
                for entry in singles:
                    entry[1], out = entry[0](entry[1], *batch)
                return out

            sequential = _median_ms(in_turn, args.reps)
        ratio = f"{sequential / one_program:.2f}" if sequential else "n/a"
        print(f"| {count} | {one_program:.1f} | {count * config.batch_size / one_program * 1e3:.0f} | "
              f"{f'{sequential:.1f}' if sequential else 'n/a'} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
