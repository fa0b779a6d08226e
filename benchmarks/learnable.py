"""Learnable against fixed neuron parameters: one dense + LIF layer, forward + backward.

x [T, B, n] ~ N(0, 1) -> Linear(n, n) + bias -> LIF (beta 0.9, threshold 1, subtract reset, fast sigmoid)
-> loss = sum of spikes. Timed: value and gradient, median of --reps calls after warm-up, variants
interleaved call by call so that drift on a shared machine hits them alike.

  fixed      beta, threshold Python floats (compiled in); gradient w.r.t. W, b
  learnable  beta, threshold per neuron [n] arrays; gradient w.r.t. W, b, beta, threshold (the same
             implementation computes their gradients in its adjoint pass)
  autodiff   the learnable layer through implementation="reference" (what array parameters fell back to
             before): lax.scan + autodiff

  python -m benchmarks.learnable                               # CPU: fused (the CPU default)
  python -m benchmarks.learnable --implementation pallas       # on a GPU: the Pallas kernels
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

SIZES = ((100, 16, 1024), (300, 32, 512))  # (T, B, n)


def _loss(kind, implementation):
    import jax.numpy as jnp

    from spikejax import neurons

    def loss(params, x):
        w, b, beta, threshold = params
        steps, batch, n = x.shape
        currents = (x.reshape(steps * batch, n) @ w + b).reshape(steps, batch, -1)
        if kind == "fixed":
            beta, threshold = 0.9, 1.0
        impl = "reference" if kind == "autodiff" else implementation
        return jnp.sum(neurons.lif(currents, beta=beta, threshold=threshold, implementation=impl))

    return loss


def measure(steps, batch, n, implementation, reps, warmup):
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((steps, batch, n), dtype=np.float32))
    bound = 1 / np.sqrt(n)
    params = (jnp.asarray(rng.uniform(-bound, bound, (n, n)), jnp.float32),
              jnp.asarray(rng.uniform(-bound, bound, (n,)), jnp.float32),
              jnp.full((n,), 0.9, jnp.float32), jnp.full((n,), 1.0, jnp.float32))
    kinds = ("fixed", "learnable", "autodiff")
    fns = {k: jax.jit(jax.value_and_grad(_loss(k, implementation))) for k in kinds}
    spikes = {}
    for k, fn in fns.items():
        value, _ = fn(params, x)
        spikes[k] = float(value)
        for _ in range(warmup):
            jax.block_until_ready(fn(params, x))
    times = {k: [] for k in kinds}
    for _ in range(reps):
        for k, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(params, x))
            times[k].append(time.perf_counter() - start)
    assert len(set(spikes.values())) == 1, spikes  # the same function: identical spike counts
    median = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    return {"T": steps, "B": batch, "n": n, "implementation": implementation, "ms": median,
            "learnable_over_fixed": median["learnable"] / median["fixed"],
            "autodiff_over_learnable": median["autodiff"] / median["learnable"], "spikes": spikes["fixed"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--implementation", default="fused", choices=["fused", "pallas"])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    import jax

    print(f"# {platform.node()} {jax.devices()[0].device_kind} jax {jax.__version__}")
    for steps, batch, n in SIZES:
        row = measure(steps, batch, n, args.implementation, args.reps, args.warmup)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
