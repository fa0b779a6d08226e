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
