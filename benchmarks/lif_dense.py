"""The Open Neuromorphic "SNN library benchmark" network, forward + backward.

x [T, B, n] ~ N(0, 1) -> Linear(n, n) + bias -> one LIF layer (beta 0.9, threshold 1, subtract reset,
fast-sigmoid surrogate slope 25) -> loss = sum of output spikes; timed: value and gradient w.r.t. W and
b, median of --reps calls after warm-up, synchronised. Every variant runs in its own subprocess with the
same seeded x, W, b.

  python -m benchmarks.lif_dense                       # CPU size: n=1024, B=16, T=100
  python -m benchmarks.lif_dense --n 16384 --batch 16 --steps 500 --variants floor_bf16,fused_bf16,floor_f32,fused_f32
  python -m benchmarks.lif_dense --memory-vs-T --variants floor_f32,fused_f32,fused_ckpt_f32,reference_f32
                                                       # XLA buffer sizes for T = 100 ... 2000

Variants: floor_* (the same matmuls, |I| instead of the LIF: the GEMM floor), reference_f32 (spikejax
lax.scan + autodiff), fused_* (one custom_vjp over the sequence, XLA scans; the CPU default), fused_ckpt_f32
(recompute_chunk=25), pallas_* (the Pallas kernels; the GPU default; interpret mode off GPU), snntorch
(snnTorch Leaky, Linear over all T*B rows), spyx (spyx.nn.LIF via
spyx.nn.run). Peers are skipped when not installed (`pip install -e ".[bench]"`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

BETA, THRESHOLD, SLOPE = 0.9, 1.0, 25.0
VARIANTS = ["floor_f32", "reference_f32", "fused_f32", "fused_ckpt_f32", "floor_bf16", "fused_bf16", "snntorch",
            "spyx"]


def _data(args):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.steps, args.batch, args.n), dtype=np.float32)
    bound = 1 / np.sqrt(args.n)
    w = rng.uniform(-bound, bound, (args.n, args.n)).astype(np.float32)  # [in, out]
    b = rng.uniform(-bound, bound, (args.n,)).astype(np.float32)
    return x, w, b


def _jax_loss(variant):
    import jax.numpy as jnp

    from spikejax import neurons

    dtype = jnp.bfloat16 if variant.endswith("bf16") else jnp.float32

    def loss(params, x):
        w, b = params
        steps, batch, n = x.shape
        currents = (x.reshape(steps * batch, n).astype(dtype) @ w.astype(dtype) + b.astype(dtype))
        currents = currents.reshape(steps, batch, -1)
        if variant.startswith("floor"):
            return jnp.sum(jnp.abs(currents), dtype=jnp.float32)
        implementation = variant.split("_")[0]  # reference | fused | pallas
        every = {"fused_ckpt_f32": 25, "fused_ckpt8_f32": 8, "fused_ckpt16_f32": 16, "fused_ckpt50_f32": 50,
                 "fused_ckpt16_bf16": 16}.get(variant)
        spikes = neurons.lif(currents, beta=BETA, threshold=THRESHOLD, implementation=implementation,
                             recompute_chunk=every)
        return jnp.sum(spikes, dtype=jnp.float32)

    return loss


def _time(fn, reps, warmup):
    first_start = time.perf_counter()
    fn()
    first = time.perf_counter() - first_start
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, times


def run_jax(variant, args):
    import jax
    import jax.numpy as jnp

    if args.precision == "highest":
        jax.config.update("jax_default_matmul_precision", "highest")
    x, w, b = _data(args)
    x, params = jnp.asarray(x), (jnp.asarray(w), jnp.asarray(b))
    step = jax.jit(jax.value_and_grad(_jax_loss(variant)))
    compile_start = time.perf_counter()
    compiled = step.lower(params, x).compile()
    compile_s = time.perf_counter() - compile_start
    memory = compiled.memory_analysis()
    out = {}

    def call():
        out.pop("value", None)  # the previous call's gradients are not kept alive through this one
        out["value"] = jax.block_until_ready(compiled(params, x))

    _, times = _time(call, args.reps, args.warmup)
    value, (grad_w, _) = out["value"]
    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    return {"compile_s": compile_s, "times_s": times, "loss": float(value),
            "grad_w_norm": float(jnp.linalg.norm(grad_w.astype(jnp.float32))),
            "xla_temp_bytes": getattr(memory, "temp_size_in_bytes", None),
            "peak_device_bytes": stats.get("peak_bytes_in_use"), "device": device.device_kind,
            "library": f"jax {jax.__version__}"}


def run_snntorch(args):
    try:
        import snntorch
        import torch
        from snntorch import surrogate
    except ImportError as error:
        return {"status": f"skipped ({error})"}
    torch.manual_seed(0)
    x, w, b = _data(args)
    x = torch.from_numpy(x)
    linear = torch.nn.Linear(args.n, args.n)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(w.T.copy()))
        linear.bias.copy_(torch.from_numpy(b))
    leaky = snntorch.Leaky(beta=BETA, threshold=THRESHOLD, spike_grad=surrogate.fast_sigmoid(slope=SLOPE))
    out = {}

    def call():
        linear.zero_grad()
        steps, batch, n = x.shape
        currents = linear(x.reshape(steps * batch, n)).reshape(steps, batch, n)
        membrane = leaky.init_leaky()
        total = 0.0
        for t in range(steps):
            spikes, membrane = leaky(currents[t], membrane)
            total = total + spikes.sum()
        total.backward()
        out["loss"] = float(total)

    first, times = _time(call, args.reps, args.warmup)
    return {"compile_s": first, "times_s": times, "loss": out["loss"],
            "grad_w_norm": float(linear.weight.grad.norm()), "library": f"snntorch {snntorch.__version__}, "
            f"torch {torch.__version__}", "device": "cpu"}


def run_spyx(args):
    try:
        import jax
        import jax.numpy as jnp
        import spyx
        import spyx.nn as snn
        from flax import nnx
    except ImportError as error:
        return {"status": f"skipped ({error})"}
    x, w, b = _data(args)
    rngs = nnx.Rngs(0)

    class Net(nnx.Module):
        def __init__(self):
            self.fc = nnx.Linear(args.n, args.n, rngs=rngs)
            self.fc.kernel = nnx.Param(jnp.asarray(w))
            self.fc.bias = nnx.Param(jnp.asarray(b))
            self.lif = snn.LIF((args.n,), beta=BETA, threshold=THRESHOLD, rngs=rngs)

    graphdef, state = nnx.split(Net())

    def loss(st, xs):
        model = nnx.merge(graphdef, st)
        spikes, _ = snn.run(model.lif, model.fc(xs))
        return jnp.sum(spikes, dtype=jnp.float32)

    xs = jnp.asarray(x)
    step = jax.jit(jax.value_and_grad(loss))
    compile_start = time.perf_counter()
    compiled = step.lower(state, xs).compile()
    compile_s = time.perf_counter() - compile_start
    out = {}

    def call():
        out["value"] = jax.block_until_ready(compiled(state, xs))

    _, times = _time(call, args.reps, args.warmup)
    value, grads = out["value"]
    return {"compile_s": compile_s, "times_s": times, "loss": float(value),
            "grad_w_norm": float(jnp.linalg.norm(grads["fc"]["kernel"][...])),
            "xla_temp_bytes": getattr(compiled.memory_analysis(), "temp_size_in_bytes", None),
            "library": f"spyx {getattr(spyx, '__version__', '?')}", "device": jax.devices()[0].device_kind}


def worker(args):
    if args.variant == "snntorch":
        result = run_snntorch(args)
    elif args.variant == "spyx":
        result = run_spyx(args)
    else:
        result = run_jax(args.variant, args)
    result["host_max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RESULT " + json.dumps(result))


def memory_vs_steps(args):
    """XLA's buffer assignment (temp bytes) of the compiled step for growing T, n and B fixed."""
    import jax
    import jax.numpy as jnp

    rows = []
    for variant in [v for v in args.variants.split(",") if v not in ("snntorch", "spyx")]:
        for steps in args.memory_steps:
            shapes = (jax.ShapeDtypeStruct((args.n, args.n), jnp.float32), jax.ShapeDtypeStruct((args.n,), jnp.float32))
            x = jax.ShapeDtypeStruct((steps, args.batch, args.n), jnp.float32)
            compiled = jax.jit(jax.value_and_grad(_jax_loss(variant))).lower(shapes, x).compile()
            rows.append({"variant": variant, "T": steps, "temp_bytes": compiled.memory_analysis().temp_size_in_bytes})
    print(f"XLA temp buffers of value_and_grad, n={args.n}, B={args.batch} ({jax.devices()[0].device_kind}):")
    print("| variant | " + " | ".join(f"T={t}" for t in args.memory_steps) + " | bytes per neuron-step (slope) |")
    print("|---|" + "---:|" * (len(args.memory_steps) + 1))
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        neuron_steps = (mine[-1]["T"] - mine[0]["T"]) * args.batch * args.n
        slope = (mine[-1]["temp_bytes"] - mine[0]["temp_bytes"]) / neuron_steps
        print(f"| {variant} | " + " | ".join(f"{r['temp_bytes'] / 2**20:.1f} MiB" for r in mine) + f" | {slope:.2f} |")
    return rows


def residuals(args):
    """Bytes the LIF layer keeps between forward and backward beyond its input currents: the arrays
    held by `jax.vjp`'s closure, except the input itself."""
    import jax
    import jax.numpy as jnp

    from spikejax import neurons

    steps, batch, n = args.steps, args.batch, args.n
    print(f"LIF residuals beyond the input currents, T={steps} B={batch} n={n}:")
    print("| implementation | input dtype | residual arrays | bytes per neuron-step |")
    print("|---|---|---|---:|")
    rows = []
    for dtype in (jnp.float32, jnp.bfloat16):
        currents = jax.random.normal(jax.random.key(0), (steps, batch, n)).astype(dtype)
        for label, kwargs in [("reference (autodiff)", dict(implementation="reference")),
                              ("fused", dict(implementation="fused")), ("pallas", dict(implementation="pallas")),
                              *[(f"fused, recompute_chunk={k}", dict(recompute_chunk=k)) for k in (8, 16, 32)]]:
            _, vjp_fn = jax.vjp(lambda c: neurons.lif(c, beta=BETA, threshold=THRESHOLD, **kwargs), currents)
            own = [leaf for leaf in jax.tree.leaves(vjp_fn) if hasattr(leaf, "nbytes") and leaf is not currents
                   and not (leaf.size == currents.size and leaf.dtype == currents.dtype
                            and bool(jnp.all(leaf.reshape(currents.shape) == currents)))]
            per_step = sum(leaf.nbytes for leaf in own) / (steps * batch * n)
            shapes = ", ".join(f"{leaf.dtype}{list(leaf.shape)}" for leaf in own if leaf.ndim)
            rows.append({"implementation": label, "dtype": jnp.dtype(dtype).name, "bytes_per_neuron_step": per_step})
            print(f"| {label} | {jnp.dtype(dtype).name} | {shapes} | {per_step:.3f} |")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", choices=["default", "highest"], default="highest",
                        help="f32 matmul precision for JAX ('highest' = true fp32 on GPU; no effect on CPU)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--memory-vs-T", action="store_true")
    parser.add_argument("--residuals", action="store_true", help="bytes kept for the backward, per neuron-step")
    parser.add_argument("--memory-steps", type=lambda s: [int(v) for v in s.split(",")],
                        default=[100, 250, 500, 1000, 2000])
    parser.add_argument("--out", help="write every figure as JSON here")
    args = parser.parse_args()
    if args.variant:
        return worker(args)
    if args.residuals:
        rows = residuals(args)
        if args.out:
            json.dump(rows, open(args.out, "w"), indent=1)
        return
    if args.memory_vs_T:
        rows = memory_vs_steps(args)
        if args.out:
            json.dump(rows, open(args.out, "w"), indent=1)
        return
    import jax

    flops = 2 * 2 * args.steps * args.batch * args.n * args.n  # forward + weight-gradient matmuls
    print(f"n={args.n} B={args.batch} T={args.steps}, median of {args.reps} after {args.warmup} warm-up; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, "
          f"{jax.devices()[0].device_kind}; GEMM fwd+dW = {flops / 1e9:.1f} GFLOP")
    results = {}
    for variant in [v for v in args.variants.split(",") if v not in ("snntorch", "spyx")]:
        command = [sys.executable, "-m", "benchmarks.lif_dense", "--variant", variant, *sys.argv[1:]]
        proc = subprocess.run(command, capture_output=True, text=True)
        line = [row for row in proc.stdout.splitlines() if row.startswith("RESULT ")]
        results[variant] = json.loads(line[-1][7:]) if line else {"status": f"failed: {proc.stderr[-500:]}"}
    print("| variant | median ms | x floor | compile / first call s | XLA temp MiB | device peak GiB | "
          "host max RSS MiB | loss (spikes) | library |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    floors = {dtype: statistics.median(results[f"floor_{dtype}"]["times_s"]) for dtype in ("f32", "bf16")
              if "times_s" in results.get(f"floor_{dtype}", {})}
    for variant, r in results.items():
        if "times_s" not in r:
            print(f"| {variant} | {r.get('status')} ||||||||")
            continue
        median = statistics.median(r["times_s"])
        r["median_s"] = median
        floor = floors.get("bf16" if variant.endswith("bf16") else "f32")
        ratio = f"{median / floor:.2f}" if floor else ""
        temp = f"{r['xla_temp_bytes'] / 2**20:.0f}" if r.get("xla_temp_bytes") is not None else ""
        peak = f"{r['peak_device_bytes'] / 2**30:.2f}" if r.get("peak_device_bytes") else "n/a"
        print(f"| {variant} | {median * 1e3:.1f} | {ratio} | {r['compile_s']:.2f} | {temp} | {peak} | "
              f"{r['host_max_rss_bytes'] / 2**20:.0f} | {r['loss']:.0f} | {r['library']} |")
    if args.out:
        json.dump({"args": vars(args), "results": results}, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
