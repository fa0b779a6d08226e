"""A sweep of 12 replicas (4 losses x 3 seeds) in one program against the same 12 models trained one after
another, end to end, same epochs: wall time of each, side by side in one process.

  python -m benchmarks.sweep                 # digits_events MLP, 5 epochs
  python -m benchmarks.sweep --epochs=2

One program: `sweep.run_program` (one compile, the batches assembled once, validation after every epoch
for all 12, the test split once). One after another: `train.train_and_evaluate` per model (its own compile,
batches, validation at the end, test split, checkpoints, eval.json and plots). Both write checkpoints at the
end only and log every 10 steps; each run gets a fresh folder under a temporary directory.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    import contextlib
    import io

    import jax
    import ml_collections

    from configs import digits_events
    from spikejax import train
    from spikejax.compare import sweep

    config = digits_events.get_config()
    config.epochs = args.epochs
    config.checkpoint_every_steps = 10**6
    labels = {"mse": dict(loss="mse"), "softmax": dict(loss="softmax"), "nll": dict(loss="nll"),
              "nll_window": dict(loss="nll", window=10)}
    rows = [{"label": label, "learning_rate": 3e-3, "seed": seed, **extra} for label, extra in labels.items()
            for seed in range(args.seeds)]
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            sweep.run_program(config, rows, os.path.join(root, "sweep"), test=True)
        one_program = time.perf_counter() - start
        start = time.perf_counter()
        for i, row in enumerate(rows):
            single = ml_collections.ConfigDict(config.to_dict())
            single.seed, single.optimizer.learning_rate = row["seed"], row["learning_rate"]
            single.loss.name = row["loss"]
            single.loss[row["loss"]].update({k: v for k, v in row.items()
                                             if k not in ("label", "loss", "seed", "learning_rate")})
            with contextlib.redirect_stdout(io.StringIO()):
                train.train_and_evaluate(single, os.path.join(root, f"single{i}"))
        sequential = time.perf_counter() - start
    print(f"{len(rows)} replicas, {args.epochs} epochs, {jax.devices()[0].platform} ({os.cpu_count()} cores), "
          f"jax {jax.__version__}")
    print("| | wall s |\n|---|---:|")
    print(f"| one program (spikejax.compare.sweep.run_program) | {one_program:.1f} |")
    print(f"| {len(rows)} runs one after another (train.train_and_evaluate) | {sequential:.1f} |")
    print(f"ratio sequential / one program: {sequential / one_program:.2f}")


if __name__ == "__main__":
    main()
