"""The training step of one dense spiking layer across shapes, against its GEMM floor (issue 26).

The step, as a user writes it: x [T, B, n] ~ N(0, 1) -> one GEMM over all T*B rows, x @ W + b ->
`spikejax.neurons.lif` (beta 0.9, threshold 1, subtract reset, fast sigmoid) -> loss = sum of spikes;
timed: value and gradient w.r.t. W and b (and beta, threshold when they are learnable). Variants, timed
side by side in one process, call by call in turn (A B C A B C ...) so that drift on a shared machine hits
them alike:

  floor       the same GEMMs with no neuron: sum |x @ W + b| (forward GEMM + weight-gradient GEMM)
  fixed       beta, threshold Python floats (compile-time constants)
  learnable   beta, threshold per-neuron [n] arrays, with their gradients
  dense_fixed, dense_learnable   the same step through `spikejax.neurons.dense_lif(x, W, b, ...)`, which
              owns the GEMM and walks time in chunks (--forms user,dense)

Per point: the median ms per step, the median of the per-round ratios to the floor (min-max), the minor
page faults per step (`resource.getrusage`), XLA's temporaries of the compiled step
(`compile().memory_analysis().temp_size_in_bytes`) and its peak (arguments + outputs + temporaries) with
and without `recompute_chunk`. On CPU every (T, n, B) point runs in a fresh process: glibc's malloc adapts
its mmap threshold to what the process has freed before, so a point must not inherit the previous one's
state. On a GPU (no page faults to separate; a process start costs seconds there) the points run in one
process (`--in-process`), each timed sample is `--calls` calls in a row (so that it measures the device,
not Python's dispatch of one small step), and `lif` runs its Pallas kernels.

  python -m benchmarks.shapes                               # the default subset (see DEFAULTS), ~5 min on 2 cores
  python -m benchmarks.shapes --T 50,100,250,500,1000 --n 128,256,1024 --B 16,64     # the full sweep
  python -m benchmarks.shapes --T 100,250 --n 256 --B 64 --forms user,dense --plot /tmp/ratio.png
  python -m benchmarks.shapes --T 50,100,250,500,1000 --n 1024,256,128 --B 16,64 --budget 1 \
      --recompute-chunk 0 --out shapes.json    # on a GPU (in benchmarks/run_gpu.sh)

`--plot` needs matplotlib (the `plots` extra); without it the plot is skipped with a note.
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

BETA, THRESHOLD = 0.9, 1.0
DEFAULTS = {"T": (50, 100, 250, 500, 1000), "n": (128, 256, 1024), "B": (16, 64)}
# the default skips n=1024 at B=64 for T >= 500 (0.5-1.1 s of GEMM per call, ~2 min a point on 2 cores);
# name those points with --T/--n/--B to run them
SKIP_BY_DEFAULT = {(t, 1024, 64) for t in (500, 1000)}


def _ints(text):
    return tuple(int(v) for v in text.split(","))


def _loss(variant, recompute_chunk=None):
    import jax.numpy as jnp

    from spikejax import neurons

    name, _, chunk = variant.partition("@")  # dense_fixed@8: time_chunk=8 (for tuning)

    def loss(params, x):
        w, b, beta, threshold = params
        steps, batch, n = x.shape
        if not name.endswith("learnable"):
            beta, threshold = BETA, THRESHOLD
        if name.startswith("dense_"):
            spikes = neurons.dense_lif(x, w, b, beta=beta, threshold=threshold, recompute_chunk=recompute_chunk,
                                       time_chunk=int(chunk) if chunk and not recompute_chunk else None)
            return jnp.sum(spikes)
        currents = (x.reshape(steps * batch, n) @ w + b).reshape(steps, batch, n)
        if variant == "floor":
            return jnp.sum(jnp.abs(currents))
        return jnp.sum(neurons.lif(currents, beta=beta, threshold=threshold, recompute_chunk=recompute_chunk))

    return loss


def _arguments(variant):
    """Which of (W, b, beta, threshold) the step differentiates."""
    return (0, 1, 2, 3) if variant.partition("@")[0].endswith("learnable") else (0, 1)


def _memory(compiled):
    m = compiled.memory_analysis()
    temp = m.temp_size_in_bytes
    peak = m.argument_size_in_bytes + m.output_size_in_bytes + temp - m.alias_size_in_bytes
    return temp, peak


def point(steps, n, batch, variants, reps, budget_s, recompute_chunk, calls=1):
    """One (T, n, B) point in this process: {variant: figures}; each timed sample is the mean of `calls`
    calls in a row, synchronised after the last."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((steps, batch, n), dtype=np.float32))
    bound = 1 / np.sqrt(n)
    params = (jnp.asarray(rng.uniform(-bound, bound, (n, n)), jnp.float32),
              jnp.asarray(rng.uniform(-bound, bound, (n,)), jnp.float32),
              jnp.full((n,), BETA, jnp.float32), jnp.full((n,), THRESHOLD, jnp.float32))
    out, compiled = {}, {}
    for v in variants:
        grad = jax.value_and_grad(lambda p, x, v=v: _loss(v)(p, x))
        argnums = _arguments(v)

        def step(p, x, grad=grad, argnums=argnums):
            value, grads = grad(p, x)
            return value, tuple(grads[i] for i in argnums)

        start = time.perf_counter()
        try:
            compiled[v] = jax.jit(step).lower(params, x).compile()
        except Exception as error:  # noqa: BLE001  (a variant that fails to compile is reported, the rest run)
            out[v] = {"error": repr(error)[:1000]}
            print(f"T={steps} n={n} B={batch} {v}: {out[v]['error']}", file=sys.stderr)
            continue
        temp, peak = _memory(compiled[v])
        out[v] = {"compile_s": time.perf_counter() - start, "temp_bytes": temp, "peak_bytes": peak}
        if v != "floor" and recompute_chunk:
            grad_r = jax.value_and_grad(lambda p, x, v=v: _loss(v, recompute_chunk)(p, x))
            step_r = lambda p, x, grad_r=grad_r, argnums=argnums: (lambda r: (r[0], tuple(r[1][i] for i in argnums)))(
                grad_r(p, x))
            temp_r, peak_r = _memory(jax.jit(step_r).lower(params, x).compile())
            out[v].update(temp_bytes_recompute=temp_r, peak_bytes_recompute=peak_r)

    variants = [v for v in variants if v in compiled]
    held = {}

    def call(v):
        held.pop(v, None)  # the previous call's outputs are released before this one, as in a training loop
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        for _ in range(calls):
            held[v] = compiled[v](params, x)
        jax.block_until_ready(held[v])
        elapsed = (time.perf_counter() - start) / calls
        return elapsed, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / calls

    for _ in range(2):  # warm-up: the allocator reaches its steady state
        for v in variants:
            call(v)
    times = {v: [] for v in variants}
    faults = {v: [] for v in variants}
    started = time.perf_counter()
    rounds = 0
    while rounds < reps and (rounds < 3 or time.perf_counter() - started < budget_s):
        for v in variants:
            t, f = call(v)
            times[v].append(t)
            faults[v].append(f)
        rounds += 1
    for v in variants:
        out[v].update(times_s=times[v], faults=faults[v], value=float(held[v][0]))
        if "floor" in variants and v != "floor":
            out[v]["ratios"] = [a / b for a, b in zip(times[v], times["floor"])]
    return out


def _row_figures(r):
    ms = statistics.median(r["times_s"]) * 1e3
    ratio = statistics.median(r["ratios"]) if "ratios" in r else 1.0
    spread = (min(r["ratios"]), max(r["ratios"])) if "ratios" in r else (1.0, 1.0)
    return ms, ratio, spread, statistics.median(r["faults"])


def report(rows, variants):
    print("| T | n | B | variant | ms/step (min-max) | x floor, median (min-max) | faults/step | temp MiB | "
          "peak MiB | peak MiB, recompute_chunk | rounds |")
    print("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        for v in variants:
            r = row["results"].get(v)
            if r is None or "error" in r:
                if r is not None:
                    print(f"| {row['T']} | {row['n']} | {row['B']} | {v} | failed: {r['error'][:80]} |")
                continue
            ms, ratio, (lo, hi), faults = _row_figures(r)
            recompute = f"{r['peak_bytes_recompute'] / 2**20:.0f}" if "peak_bytes_recompute" in r else ""
            print(f"| {row['T']} | {row['n']} | {row['B']} | {v} | {ms:.2f} ({min(r['times_s']) * 1e3:.2f}-"
                  f"{max(r['times_s']) * 1e3:.2f}) | {ratio:.2f} ({lo:.2f}-{hi:.2f}) | {faults:.0f} | "
                  f"{r['temp_bytes'] / 2**20:.1f} | {r['peak_bytes'] / 2**20:.0f} | {recompute} | "
                  f"{len(r['times_s'])} |")


def _timed(results: dict, v: str) -> dict | None:
    """Variant v's figures of one point, None when it did not run or failed to compile."""
    r = results.get(v)
    return r if r is not None and "times_s" in r else None


def check_targets(rows, variants, limit=1.5, min_n=256):
    """The issue's targets: on CPU ratio <= 1.5 at n >= 256, on a GPU <= 1.2 at n >= 1024; no rise > 0.2 from
    T to 2T (or the next T)."""
    print(f"\nTargets (n >= {min_n}: x floor <= {limit}; any n: the ratio rises by <= 0.2 from one T to the next):")
    for v in [v for v in variants if v != "floor"]:
        misses = []
        for row in rows:
            r = _timed(row["results"], v)
            if r and row["n"] >= min_n and _row_figures(r)[1] > limit:
                misses.append(f"T={row['T']} n={row['n']} B={row['B']}: {_row_figures(r)[1]:.2f}x")
        groups = {}
        for row in rows:
            if _timed(row["results"], v):
                groups.setdefault((row["n"], row["B"]), []).append((row["T"], _row_figures(row["results"][v])[1]))
        for (n, batch), series in groups.items():
            series.sort()
            for (t0, r0), (t1, r1) in zip(series, series[1:]):
                if r1 - r0 > 0.2:
                    misses.append(f"n={n} B={batch}: {r0:.2f}x at T={t0} -> {r1:.2f}x at T={t1}")
        if not groups:
            print(f"  {v}: no figures")
            continue
        print(f"  {v}: " + ("all met" if not misses else "; ".join(misses)))


def plot(rows, variants, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"note: matplotlib is not installed (pip install -e '.[plots]'); {path} not written")
        return
    sizes = sorted({(row["n"], row["B"]) for row in rows})
    fig, axes = plt.subplots(1, len({n for n, _ in sizes}), figsize=(4.5 * len({n for n, _ in sizes}), 3.6),
                             squeeze=False, sharey=True)
    for ax, n in zip(axes[0], sorted({n for n, _ in sizes})):
        for v in [v for v in variants if v != "floor"]:
            for batch in sorted({b for m, b in sizes if m == n}):
                series = sorted((row["T"], _row_figures(row["results"][v])[1]) for row in rows
                                if row["n"] == n and row["B"] == batch and _timed(row["results"], v))
                if series:
                    ax.plot(*zip(*series), marker="o", label=f"{v}, B={batch}")
        ax.axhline(1.5, color="grey", linestyle="--", linewidth=0.8)
        ax.set(xscale="log", xlabel="T (steps)", title=f"n = {n}")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("step time / GEMM floor")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", type=_ints, help=f"time steps (default {DEFAULTS['T']})")
    parser.add_argument("--n", type=_ints, help=f"neurons = input features (default {DEFAULTS['n']})")
    parser.add_argument("--B", type=_ints, help=f"batch sizes (default {DEFAULTS['B']})")
    parser.add_argument("--params", default="fixed,learnable", help="fixed, learnable or both")
    parser.add_argument("--forms", default="user", help="user (GEMM, then neurons.lif), dense (neurons.dense_lif)"
                        " or both")
    parser.add_argument("--reps", type=int, default=25, help="timed rounds per point, at most (at least 3)")
    parser.add_argument("--budget", type=float, default=6.0, help="seconds of timed rounds per point, after 3")
    parser.add_argument("--recompute-chunk", type=int, default=25, help="K for the peak-memory column (0: skip)")
    parser.add_argument("--out", help="write every figure as JSON here")
    parser.add_argument("--plot", help="write the ratio against T per n here (needs matplotlib)")
    parser.add_argument("--in-process", choices=("auto", "yes", "no"), default="auto",
                        help="run every point in this process (auto: yes off CPU, no on CPU)")
    parser.add_argument("--calls", type=int, help="calls per timed sample (default: 1 on CPU, 10 off CPU)")
    parser.add_argument("--report", nargs="+", metavar="JSON", help="print the tables of earlier --out files "
                        "(their rows together, e.g. a sweep finished in two runs) and exit")
    parser.add_argument("--point", type=_ints, help=argparse.SUPPRESS)  # T,n,B: one point in this process
    parser.add_argument("--variants", help="instead of --params/--forms: e.g. floor,fixed,dense_fixed@8")
    args = parser.parse_args()
    if args.report:
        runs = [json.load(open(path)) for path in args.report]
        rows = [row for run in runs for row in run["rows"]]
        names = list(dict.fromkeys(v for row in rows for v in row["results"]))
        on_cpu = runs[0].get("device", "cpu").lower() == "cpu"
        print(f"{runs[0].get('device', runs[0]['cpu'])}, jax {runs[0]['jax']}: {len(rows)} points\n")
        report(rows, names)
        check_targets(rows, names, *((1.5, 256) if on_cpu else (1.2, 1024)))
        if args.plot:
            plot(rows, names, args.plot)
        return
    if args.point:
        steps, n, batch = args.point
        result = point(steps, n, batch, args.variants.split(","), args.reps, args.budget, args.recompute_chunk,
                       args.calls or 1)
        print("RESULT " + json.dumps(result))
        return
    variants = ["floor"]
    for form in args.forms.split(","):
        for kind in args.params.split(","):
            variants.append(kind if form == "user" else f"dense_{kind}")
    if args.variants:
        variants = args.variants.split(",")
    explicit = args.T or args.n or args.B
    grid = [(t, n, b) for n in (args.n or DEFAULTS["n"]) for b in (args.B or DEFAULTS["B"])
            for t in (args.T or DEFAULTS["T"]) if explicit or (t, n, b) not in SKIP_BY_DEFAULT]
    import jax

    on_cpu = jax.default_backend() == "cpu"
    in_process = args.in_process == "yes" or (args.in_process == "auto" and not on_cpu)
    calls = args.calls or (1 if on_cpu else 10)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{cpu}, {os.cpu_count()} cores, jax {jax.__version__}, {jax.devices()[0].device_kind}; load "
          f"{load:.1f} at start; variants {', '.join(variants)}; up to {args.reps} rounds or {args.budget:.0f} s "
          f"per point; recompute_chunk={args.recompute_chunk}; {calls} call(s) per sample; "
          f"{'one process' if in_process else 'a process per point'}")
    rows = []
    started = time.perf_counter()
    for steps, n, batch in grid:
        if in_process:
            try:
                result = point(steps, n, batch, variants, args.reps, args.budget, args.recompute_chunk, calls)
            except Exception as error:  # noqa: BLE001  (one failing point is a result; the sweep goes on)
                print(f"T={steps} n={n} B={batch}: failed: {error!r}"[:2000], file=sys.stderr)
                continue
        else:
            command = [sys.executable, "-m", "benchmarks.shapes", "--point", f"{steps},{n},{batch}", "--variants",
                       ",".join(variants), "--reps", str(args.reps), "--budget", str(args.budget),
                       "--recompute-chunk", str(args.recompute_chunk), "--calls", str(calls)]
            proc = subprocess.run(command, capture_output=True, text=True)
            line = [r for r in proc.stdout.splitlines() if r.startswith("RESULT ")]
            if not line:
                print(f"T={steps} n={n} B={batch}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            result = json.loads(line[-1][7:])
        rows.append({"T": steps, "n": n, "B": batch, "results": result, "load": os.getloadavg()[0]})
        mine = rows[-1]["results"]
        print(f"  T={steps} n={n} B={batch}: " + ", ".join(
            f"{v} {_row_figures(mine[v])[1]:.2f}x" if _timed(mine, v) else f"{v} failed"
            for v in variants if v != "floor") +
            f" (floor {_row_figures(mine['floor'])[0]:.2f} ms, load {rows[-1]['load']:.1f})", flush=True)
        if args.out:  # after every point, so that a sweep stopped at its time limit keeps what it measured
            json.dump({"args": vars(args), "cpu": cpu, "jax": jax.__version__,
                       "device": jax.devices()[0].device_kind, "rows": rows}, open(args.out, "w"), indent=1)
    print(f"\n{len(rows)} points in {time.perf_counter() - started:.0f} s\n")
    report(rows, variants)
    check_targets(rows, variants, *((1.5, 256) if on_cpu else (1.2, 1024)))
    if args.plot:
        plot(rows, variants, args.plot)


if __name__ == "__main__":
    main()
