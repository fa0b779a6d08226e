"""R convolutions with per-replica kernels, five ways, at the DVS Gesture network's conv layers (issue 22,
item 11): which form of the replica axis makes R conv replicas pay?

Each form computes y[r] = conv(x[r], k[r]) for r < R (NHWC, HWIO, stride 1, SAME) and is timed as the
training step uses it: value and gradient of sum(y * g) with respect to x and k (g a fixed random
cotangent), median of --reps synchronised calls after one warm-up. Forms:

  vmap      jax.vmap(conv) over x [R, N, H, W, C] and k [R, kh, kw, C, O]: what vmapping the model does
            today (jax's batching rule folds R into the channels and calls one grouped convolution, moving
            the replica axis into and out of the channels around it)
  loop      R convolutions in one program, stacked
  grouped   the replicas kept folded in the channels, x [N, H, W, R*C] -> y [N, H, W, R*O], one convolution
            with feature_group_count=R: the grouped convolution alone, without the moves
  blockdiag the same folded layout, one dense convolution with the block-diagonal kernel [kh, kw, R*C, R*O]
            (R times the grouped form's flops, the path every convolution library tunes hardest)
  patches   the patches of each replica's input ([N*H*W, kh*kw*C], `lax.conv_general_dilated_patches`)
            times its kernel, one batched GEMM over the replicas

Layers (the DVS Gesture conv net, 32x32x2 frames): conv1 2->16 5x5 on 32x32, conv2 16->32 3x3 on 16x16,
N = T*B rows (300 * 32 = 9,600 by default; --rows smaller for a CPU run). Every form is checked against
`loop` (relative L2 error of y, printed) before it is timed.

  python -m benchmarks.conv_replicas                                   # on a GPU: bf16, R = 1, 4, 8
  python -m benchmarks.conv_replicas --rows 256 --dtype float32 --replicas 1,4 --reps 5    # CPU, small
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

LAYERS = {"conv1": (32, 2, 16, 5), "conv2": (16, 16, 32, 3)}  # (H = W, C, O, k)
FORMS = ("vmap", "loop", "grouped", "blockdiag", "patches")
DIMS = ("NHWC", "HWIO", "NHWC")


def _conv(x, k, groups=1):
    import jax

    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=DIMS, feature_group_count=groups)


def fold(x):
    """[R, N, H, W, C] -> [N, H, W, R*C] (replica-major channels)."""
    import jax.numpy as jnp

    r, n, h, w, c = x.shape
    return jnp.moveaxis(x, 0, 3).reshape(n, h, w, r * c)


def unfold(y, replicas):
    """[N, H, W, R*O] -> [R, N, H, W, O]."""
    import jax.numpy as jnp

    n, h, w, ro = y.shape
    return jnp.moveaxis(y.reshape(n, h, w, replicas, ro // replicas), 3, 0)


def forms():
    """{name: (prepare(x [R,N,H,W,C], k [R,kh,kw,C,O]) -> operands, f(*operands) -> y in that form's
    layout, to_stacked(y) -> [R, N, H, W, O])}."""
    import jax
    import jax.numpy as jnp

    def grouped(x_f, k):
        r, kh, kw, c, o = k.shape
        return _conv(x_f, jnp.moveaxis(k, 0, 3).reshape(kh, kw, c, r * o), groups=r)

    def blockdiag(x_f, k):
        r, kh, kw, c, o = k.shape
        eye = jnp.eye(r, dtype=k.dtype)
        full = jnp.einsum("rs,rhwco->hwrcso", eye, k).reshape(kh, kw, r * c, r * o)
        return _conv(x_f, full)

    def patches(x, k):
        r, kh, kw, c, o = k.shape
        p = jax.vmap(lambda xr: jax.lax.conv_general_dilated_patches(
            xr, (kh, kw), (1, 1), "SAME", dimension_numbers=DIMS))(x)  # [R, N, H, W, C*kh*kw], C major
        kernel = jnp.moveaxis(k, 3, 1).reshape(r, c * kh * kw, o)
        return jnp.einsum("rnhwp,rpo->rnhwo", p, kernel)

    same = lambda y, r: y
    return {
        "vmap": (lambda x, k: (x, k), jax.vmap(_conv), same),
        "loop": (lambda x, k: (x, k), lambda x, k: jnp.stack([_conv(x[i], k[i]) for i in range(len(k))]), same),
        "grouped": (lambda x, k: (fold(x), k), grouped, unfold),
        "blockdiag": (lambda x, k: (fold(x), k), blockdiag, unfold),
        "patches": (lambda x, k: (x, k), patches, same),
    }


def run(layer, replicas, rows, dtype, reps, names):
    import jax
    import jax.numpy as jnp
    import numpy as np

    size, c, o, kk = LAYERS[layer]
    rng = np.random.default_rng(0)
    x = jnp.asarray((rng.random((replicas, rows, size, size, c)) < 0.1).astype(np.float32), dtype)
    k = jnp.asarray(rng.standard_normal((replicas, kk, kk, c, o)) / np.sqrt(kk * kk * c), dtype)
    g = jnp.asarray(rng.standard_normal((replicas, rows, size, size, o)), dtype)
    table = forms()
    reference = np.asarray(jax.jit(table["loop"][1])(x, k), np.float32)
    out = []
    for name in names:
        prepare, f, stacked = table[name]
        operands = prepare(x, k)
        g_form = fold(g) if name in ("grouped", "blockdiag") else g
        y = np.asarray(stacked(jax.jit(f)(*operands), replicas), np.float32)
        error = float(np.linalg.norm(y - reference) / np.linalg.norm(reference))
        step = jax.jit(jax.value_and_grad(lambda a, b, f=f, g_form=g_form: jnp.sum(
            (f(a, b) * g_form).astype(jnp.float32)), argnums=(0, 1)))
        start = time.perf_counter()
        jax.block_until_ready(step(*operands))
        first = time.perf_counter() - start
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            jax.block_until_ready(step(*operands))
            times.append(time.perf_counter() - start)
        ms = statistics.median(times) * 1e3
        out.append({"layer": layer, "R": replicas, "form": name, "ms": ms, "first_s": first, "rel_err": error})
        print(f"| {layer} | {replicas} | {name} | {ms:.3f} | {first:.1f} | {error:.1e} |", flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", default="1,4,8")
    parser.add_argument("--rows", type=int, default=300 * 32, help="N = T * B")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--layers", default="conv2,conv1")
    parser.add_argument("--forms", default=",".join(FORMS))
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    import jax

    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}; N = {args.rows} rows, {args.dtype}; value and "
          "gradient (x, k) of sum(conv * g), median of synchronised calls")
    print("| layer | R | form | ms | first call s | rel. L2 error of y against loop |")
    print("|---|---:|---|---:|---:|---:|")
    results = []
    for layer in args.layers.split(","):
        for replicas in map(int, args.replicas.split(",")):
            results += run(layer, replicas, args.rows, args.dtype, args.reps, args.forms.split(","))
            if args.out:
                json.dump(results, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
