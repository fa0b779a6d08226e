"""The recurrent LIF layer, forward + backward: spikejax's fused layer against autodiff of a lax.scan and
against snnTorch's RLeaky, in the same run.

x [T, B, D] binary spikes (rate 5%) -> I[t] = x[t] W_in + b + s[t-1] W_rec -> LIF (beta 0.9, threshold 1,
subtract reset, fast sigmoid slope 25) -> loss = sum of spikes; timed: value and gradient w.r.t. W_in, b
and W_rec, median of --reps calls after warm-up, variants interleaved call by call.

  fused      neurons.recurrent_lif (one custom_vjp; keeps the spikes as int8)
  autodiff   neurons.recurrent_lif(implementation="reference"): lax.scan over the step + autodiff
  snntorch   nn.Linear over all T*B rows, then snntorch.RLeaky(all_to_all=True, linear_features=N) stepped
             over T (its recurrent Linear has a bias, one [N] vector more); torch on the same CPU threads

  python -m benchmarks.recurrent                               # SHD-sized: T=100, B=32, D=700, N=256
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

SIZES = ((100, 32, 700, 256), (250, 16, 700, 512))  # (T, B, D, N)


def _data(steps, batch, inputs, neurons):
    import numpy as np

    rng = np.random.default_rng(0)
    x = (rng.random((steps, batch, inputs)) < 0.05).astype(np.float32)
    w_in = rng.normal(0.0, 3.0 / np.sqrt(inputs * 0.05), (inputs, neurons)).astype(np.float32)
    w_rec = rng.normal(0.0, 1.0 / np.sqrt(neurons), (neurons, neurons)).astype(np.float32)
    b = np.zeros(neurons, np.float32)
    return x, w_in, w_rec, b


def _jax_fns(data):
    import jax
    import jax.numpy as jnp

    from spikejax import neurons

    x, *params = (jnp.asarray(a) for a in data)

    def make(implementation):
        def loss(params, x):
            w_in, w_rec, b = params
            spikes = neurons.recurrent_lif(x, w_in, w_rec, b, beta=0.9, implementation=implementation)
            return jnp.sum(spikes)
        fn = jax.jit(jax.value_and_grad(loss))
        return lambda: jax.block_until_ready(fn(params, x))

    return {"fused": make("fused"), "autodiff": make("reference")}


def residual_bytes(data, implementation) -> int:
    """Bytes autodiff keeps for the backward beyond the layer's own arguments (jax's residual printout)."""
    import contextlib
    import io
    import re

    import jax.numpy as jnp
    from jax.ad_checkpoint import print_saved_residuals

    from spikejax import neurons

    x, w_in, w_rec, b = (jnp.asarray(a) for a in data)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_saved_residuals(lambda *a: jnp.sum(neurons.recurrent_lif(*a, beta=0.9, implementation=implementation)),
                              x, w_in, w_rec, b)
    size = {"i8": 1, "bool": 1, "bf16": 2, "f32": 4, "i32": 4}
    total = 0
    for line in out.getvalue().splitlines():
        match = re.match(r"(\w+)\[([\d,]*)\] (.*)", line)
        if match and "argument" not in match.group(3):
            shape = [int(n) for n in match.group(2).split(",") if n]
            count = 1
            for n in shape:
                count *= n
            total += size[match.group(1)] * count
    return total


def _snntorch_fn(data):
    try:
        import snntorch
        import torch
        from snntorch import surrogate
    except ImportError:
        return None
    x, w_in, w_rec, b = (torch.from_numpy(a) for a in data)
    steps, batch, inputs = x.shape
    neurons = w_in.shape[1]
    fc = torch.nn.Linear(inputs, neurons)
    layer = snntorch.RLeaky(beta=0.9, threshold=1.0, linear_features=neurons, all_to_all=True,
                            reset_mechanism="subtract", spike_grad=surrogate.fast_sigmoid(slope=25))
    with torch.no_grad():
        fc.weight.copy_(w_in.T)
        fc.bias.copy_(b)
        layer.recurrent.weight.copy_(w_rec.T)
        layer.recurrent.bias.zero_()

    def run():
        fc.zero_grad()
        layer.zero_grad()
        currents = fc(x.reshape(steps * batch, inputs)).reshape(steps, batch, neurons)
        spk, mem = layer.init_rleaky()
        total = 0.0
        for t in range(steps):
            spk, mem = layer(currents[t], spk, mem)
            total = total + spk.sum()
        total.backward()
        return float(total.detach())

    return run


def measure(steps, batch, inputs, neurons, reps, warmup):
    data = _data(steps, batch, inputs, neurons)
    fns = _jax_fns(data)
    peer = _snntorch_fn(data)
    if peer is not None:
        fns["snntorch"] = peer
    for fn in fns.values():
        for _ in range(warmup + 1):
            fn()
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    neuron_steps = steps * batch * neurons
    row = {"T": steps, "B": batch, "D": inputs, "N": neurons, "ms": ms,
           "autodiff_over_fused": ms["autodiff"] / ms["fused"],
           "kept_bytes_per_neuron_step": {k: residual_bytes(data, impl) / neuron_steps
                                          for k, impl in (("fused", "fused"), ("autodiff", "reference"))}}
    if "snntorch" in ms:
        row["snntorch_over_fused"] = ms["snntorch"] / ms["fused"]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    import jax

    versions = f"jax {jax.__version__}"
    try:
        import snntorch
        import torch

        versions += f", torch {torch.__version__} ({torch.get_num_threads()} threads), snntorch {snntorch.__version__}"
    except ImportError:
        versions += ", snntorch not installed (pip install -e '.[interop]')"
    print(f"# {platform.node()} {jax.devices()[0].device_kind}; {versions}")
    for size in SIZES:
        print(json.dumps(measure(*size, args.reps, args.warmup)))


if __name__ == "__main__":
    main()
