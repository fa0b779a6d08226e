"""Independent numpy references for the tests (float64 loops, no jax)."""
import numpy as np


def lif_numpy(currents, *, beta, threshold=1.0, reset="subtract"):
    """The lif equations as a plain loop. Returns (spikes, membrane), [T, ...] each."""
    currents = np.asarray(currents, np.float64)
    v = np.zeros(currents.shape[1:])
    s = np.zeros(currents.shape[1:])
    spikes, membrane = np.zeros_like(currents), np.zeros_like(currents)
    for t in range(currents.shape[0]):
        if reset == "subtract":
            v = beta * v + currents[t] - threshold * s
        else:
            v = beta * v * (1.0 - s) + currents[t]
        s = (v > threshold).astype(np.float64)
        spikes[t], membrane[t] = s, v
    return spikes, membrane


def lif_adjoint_numpy(currents, grad_spikes, *, beta, threshold, reset, detach_reset, surrogate_derivative):
    """dL/dI for L = sum(grad_spikes * spikes), by an explicit reverse loop over the unrolled equations."""
    _, v = lif_numpy(currents, beta=beta, threshold=threshold, reset=reset)
    s = (v > threshold).astype(np.float64)
    steps = currents.shape[0]
    dv = np.zeros_like(v)
    a_next = np.zeros(v.shape[1:])
    for t in reversed(range(steps)):
        sg = surrogate_derivative(v[t] - threshold)
        ds = grad_spikes[t].astype(np.float64)
        if t + 1 < steps:
            if reset == "subtract":
                direct = beta * a_next
                via_spike = -threshold * a_next
            else:
                direct = beta * (1.0 - s[t]) * a_next
                via_spike = -beta * v[t] * a_next
            if not detach_reset:
                ds = ds + via_spike
        else:
            direct = 0.0
        dv[t] = sg * ds + direct
        a_next = dv[t]
    return dv


def spike_nll_numpy(spikes, labels, *, window=None, min_count=1.0):
    """Spikemax NLL and its gradient dloss/dspikes by explicit loops (float64)."""
    spikes = np.asarray(spikes, np.float64)
    steps, batch, classes = spikes.shape
    if window is None:
        windows = [(steps - 1, 0, steps)]  # (t, start, stop)
    else:
        windows = [(t, max(0, t - window + 1), t + 1) for t in range(steps)]
    loss, grad = 0.0, np.zeros_like(spikes)
    for b in range(batch):
        for _, start, stop in windows:
            n = spikes[start:stop, b].sum(axis=0)
            m = np.maximum(n, min_count)
            p = m / m.sum()
            loss += -np.log(p[labels[b]])
            dn = p / m
            dn[labels[b]] -= 1.0 / m[labels[b]]  # (p_i - y_i) / m_i
            grad[start:stop, b] += dn
    scale = batch * len(windows)
    return loss / scale, grad / scale


def recurrent_lif_numpy(x, w_in, w_rec, bias, *, beta, threshold=1.0, reset="subtract"):
    """The recurrent LIF layer as a plain loop: I[t] = x[t] W_in + b + s[t-1] W_rec, then the lif step.
    Returns spikes [T, B, N] (float64)."""
    x = np.asarray(x, np.float64)
    neurons = w_in.shape[1]
    v = np.zeros(x.shape[1:2] + (neurons,))
    s = np.zeros_like(v)
    out = []
    for t in range(x.shape[0]):
        current = x[t] @ w_in + (0.0 if bias is None else bias) + s @ w_rec
        if reset == "subtract":
            v = beta * v + current - threshold * s
        else:
            v = beta * v * (1.0 - s) + current
        s = (v > threshold).astype(np.float64)
        out.append(s)
    return np.stack(out)


def gaussian_taps_numpy(delays, kernel_size, sigma, epsilon=1e-7):
    """The delays module's taps and their derivative in d, from the formula (float64):
    g[tau] = exp(-(tau - d)^2 / (2 s^2)), m = g[round(d)], k = g / (sum g + eps m);
    dg/dd = g (tau - d) / s^2, dm/dd = m (round(d) - d) / s^2, and the quotient rule
    dk/dd = (g' (S + eps m) - g (S' + eps m')) / (S + eps m)^2 with S = sum g. d inside [0, D-1].
    Returns (k, dk/dd), each [kernel_size, *delays.shape]."""
    d = np.asarray(delays, np.float64)[None]
    tau = np.arange(kernel_size, dtype=np.float64).reshape((kernel_size,) + (1,) * (d.ndim - 1))
    g = np.exp(-((tau - d) ** 2) / (2 * sigma**2))
    nearest = np.round(d)
    m = np.exp(-((nearest - d) ** 2) / (2 * sigma**2))
    dg = g * (tau - d) / sigma**2
    dm = m * (nearest - d) / sigma**2
    denominator = g.sum(0, keepdims=True) + epsilon * m
    d_denominator = dg.sum(0, keepdims=True) + epsilon * dm
    return g / denominator, (dg * denominator - g * d_denominator) / denominator**2


def delayed_dense_numpy(x, weight, taps):
    """y[t, b, j] = sum_i sum_tau W_ij k_ij[tau] x[t - tau, b, i] by explicit loops over t, tau and i
    (float64). taps [D, I, O] per synapse or [D, I] per channel. Also returns sum of |terms| [T, B, O]."""
    x, weight, taps = (np.asarray(a, np.float64) for a in (x, weight, taps))
    if taps.ndim == 2:
        taps = np.repeat(taps[:, :, None], weight.shape[1], axis=2)
    steps, batch, inputs = x.shape
    y = np.zeros((steps, batch, weight.shape[1]))
    magnitude = np.zeros_like(y)
    for t in range(steps):
        for tau in range(min(t + 1, taps.shape[0])):
            for i in range(inputs):
                term = np.outer(x[t - tau, :, i], weight[i] * taps[tau, i])  # [B, O]
                y[t] += term
                magnitude[t] += np.abs(term)
    return y, magnitude


def shifted_dense_numpy(x, weight, delays):
    """y[t, b, j] = sum_i W_ij x[t - d_ij, b, i] (x = 0 before t = 0) by loops; integer delays [I, O] or [I]."""
    x, weight = np.asarray(x, np.float64), np.asarray(weight, np.float64)
    delays = np.broadcast_to(np.asarray(delays)[:, None] if np.ndim(delays) == 1 else delays, weight.shape)
    y = np.zeros((x.shape[0], x.shape[1], weight.shape[1]))
    for t in range(x.shape[0]):
        for i in range(weight.shape[0]):
            for j in range(weight.shape[1]):
                if t - delays[i, j] >= 0:
                    y[t, :, j] += weight[i, j] * x[t - delays[i, j], :, i]
    return y
