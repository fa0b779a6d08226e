"""PNG plots of evaluation results (matplotlib, Agg backend, imported on demand: the `plots` extra)."""
from __future__ import annotations

import numpy as np

from spikejax.errors import require
from spikejax.files import atomic_write


def _pyplot():
    """matplotlib.pyplot on the Agg backend; errors.MissingDependencyError when matplotlib is not installed."""
    matplotlib = require("matplotlib", "plots", "spikejax.plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(plt, fig, ax, path: str, xlabel: str, ylabel: str, *, unit_y: bool = False) -> None:
    """Labels, grid and legend, then the PNG at `path`."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if unit_y:
        ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(plt, fig, path)


def _save(plt, fig, path: str) -> None:
    """The PNG written whole (temporary file + rename, `spikejax.files.atomic_write`); a symlink at `path`
    is refused."""
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120), mode="wb")
    finally:
        plt.close(fig)


def accuracy_over_time(results: dict[str, dict], path: str) -> None:
    """Accuracy when deciding at each step, one line per run: {label: eval dict}."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, result in results.items():
        acc = result["accuracy_over_time"]
        ax.plot(np.arange(1, len(acc) + 1), acc, label=f"{label} ({result['accuracy']:.3f})")
    _finish(plt, fig, ax, path, "time step (decision from counts up to t)", "test accuracy", unit_y=True)


def latency_tradeoff(results: dict[str, dict], path: str) -> None:
    """Mean decision time against accuracy over the confidence thresholds, one line per run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, result in results.items():
        decision = result["latency_steps"]["decision"]
        if not decision:  # an output layer without spikes has no confidence decision
            continue
        thresholds = sorted(decision, key=float)
        times = [decision[t]["mean_time"] for t in thresholds]
        accs = [decision[t]["accuracy"] for t in thresholds]
        ax.plot(times, accs, marker="o", label=label)
        for t, x, y in zip(thresholds, times, accs):
            ax.annotate(t, (x, y), fontsize=7, textcoords="offset points", xytext=(3, 3))
    _finish(plt, fig, ax, path, "mean decision time (steps)", "accuracy at decision")


def event_frames(frames: np.ndarray, path: str, title: str, columns: int = 10) -> None:
    """One sample's binned input over time: frames [T, P, H, W] (ON red, OFF blue) or [T, F] (raster)."""
    plt = _pyplot()
    if frames.ndim == 2:
        fig, ax = plt.subplots(figsize=(8, 3))
        t, f = np.nonzero(frames)
        ax.scatter(t, f, s=2, c="k")
        ax.set_xlabel("time step")
        ax.set_ylabel("channel")
        ax.set_title(title)
    else:
        steps = frames.shape[0]
        shown = np.linspace(0, steps - 1, min(columns, steps)).astype(int)
        fig, axes = plt.subplots(1, len(shown), figsize=(1.6 * len(shown), 2.0))
        for ax, t in zip(np.atleast_1d(axes), shown):
            image = np.zeros(frames.shape[2:] + (3,))
            image[..., 0] = frames[t, -1]  # ON
            if frames.shape[1] > 1:
                image[..., 2] = frames[t, 0]  # OFF
            ax.imshow(image, interpolation="nearest")
            ax.set_title(f"t={t}", fontsize=8)
            ax.axis("off")
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(plt, fig, path)


def bands_over_time(curves: dict[str, np.ndarray], path: str) -> None:
    """Accuracy over time per label, mean over seeds with a +-1 std band: {label: [seeds, T]}."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in curves.items():
        steps = np.arange(1, values.shape[1] + 1)
        mean, std = values.mean(axis=0), values.std(axis=0, ddof=1) if len(values) > 1 else 0 * values[0]
        ax.plot(steps, mean, label=f"{label} ({mean[-1]:.3f}, {len(values)} seeds)")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
    _finish(plt, fig, ax, path, "time step (decision from counts up to t)",
            "test accuracy (mean, band +-1 std over seeds)", unit_y=True)


def latency_tradeoff_bands(points: dict[str, np.ndarray], path: str) -> None:
    """Mean decision time against accuracy over the confidence thresholds, mean over seeds with +-1 std
    error bars on both axes: {label: [seeds, thresholds, (time, accuracy)]}."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in points.items():
        mean = values.mean(axis=0)
        std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros_like(mean)
        ax.errorbar(mean[:, 0], mean[:, 1], xerr=std[:, 0], yerr=std[:, 1], marker="o", capsize=2,
                    label=f"{label} ({len(values)} seeds)")
    _finish(plt, fig, ax, path, "mean decision time (steps)", "accuracy at decision (mean +-1 std over seeds)")


def accuracy_against_synops(points: dict[str, dict[float, np.ndarray]], path: str) -> None:
    """Test accuracy against hidden-layer SynOps per sample, one line per label through its spike-rate penalty
    weights (ascending), each point the mean over seeds with +-1 std error bars on both axes and its weight w
    written beside it: {label: {w: [seeds, (synops, accuracy)]}}. SynOps on a log axis (the weights span
    decades) unless a mean is 0; the legend beside the axes (up to 11 labels)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    colors = plt.get_cmap("tab20").colors if len(points) > 10 else [None] * len(points)  # 11 labels: 11 colours
    positive = True
    for k, (label, by_weight) in enumerate(points.items()):
        weights = sorted(by_weight)
        values = [np.asarray(by_weight[w], np.float64) for w in weights]
        mean = np.asarray([v.mean(axis=0) for v in values])
        std = np.asarray([v.std(axis=0, ddof=1) if len(v) > 1 else np.zeros(2) for v in values])
        positive = positive and bool(np.all(mean[:, 0] > 0))
        line = ax.errorbar(mean[:, 0], mean[:, 1], xerr=std[:, 0], yerr=std[:, 1], marker="osD^v<>"[k % 7],
                           capsize=2, color=colors[k % len(colors)], label=f"{label} ({len(values[0])} seeds)")
        for w, (x, y) in zip(weights, mean):
            ax.annotate(f"w={w:g}", (x, y), fontsize=6, textcoords="offset points", xytext=(3, 3),
                        color=line[0].get_color())
    if positive:
        ax.set_xscale("log")
    ax.set_xlabel("hidden-layer SynOps per sample")
    ax.set_ylabel("test accuracy (mean +-1 std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    _save(plt, fig, path)
