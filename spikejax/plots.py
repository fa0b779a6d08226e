"""PNG plots of runs and comparisons (matplotlib on the Agg backend, imported on demand: the `plots` extra).

  spike_raster(layers, path, ...)           one sample's spikes, a panel per layer (input, hidden, output)
  membrane_traces(membrane, path, ...)      the output neurons' membrane over time, with the threshold
  training_curves(runs, path, ...)          loss and accuracy against the training step; bands over seeds
  accuracy_over_time(results, path)         test accuracy when deciding at each time step
  latency_tradeoff(results, path)           mean decision time against accuracy (confidence thresholds)
  bands_over_time(curves, path, ...)        accuracy over time over seeds: mean ± 1 std
  latency_tradeoff_bands(points, path, ...) the trade-off over seeds: mean ± 1 std on both axes
  event_frames(frames, path, title)         one sample's binned input (`experiments.inspect_data`)

Every function writes the PNG at `path` (whole or not at all, `spikejax.files.atomic_write`) and returns the
(closed) matplotlib Figure, whose axes keep their titles, labels and limits. Time axes count steps; with the
bin width (`bin_width_us`, microseconds per step) known, a second axis above gives milliseconds. Accuracy
axes span [0, 1]; bands of ± 1 standard deviation (ddof = 1) over seeds are clipped to it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spikejax.errors import require
from spikejax.files import atomic_write

ACCURACY_LIMITS = (0.0, 1.02)  # the whole range, a little room above 1 so that a line at 1 stays visible


def _pyplot():
    """matplotlib.pyplot on the Agg backend; errors.MissingDependencyError when matplotlib is not installed."""
    matplotlib = require("matplotlib", "plots", "spikejax.plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def require_matplotlib() -> None:
    """errors.MissingDependencyError, naming the `plots` extra, unless matplotlib can be imported."""
    _pyplot()


def _save(plt, fig, path: str, margins: dict | None = None):
    """The PNG written whole (temporary file + rename, `spikejax.files.atomic_write`); a symlink at `path`
    is refused. `margins`: {left, right, bottom, top} in inches around the axes (fixed margins draw the
    figure once; matplotlib's tight_layout, used without them, draws it twice). Returns the closed figure."""
    try:
        if margins is None:
            fig.tight_layout()
        else:
            width, height = fig.get_size_inches()
            fig.subplots_adjust(left=margins["left"] / width, right=1 - margins["right"] / width,
                                bottom=margins["bottom"] / height, top=1 - margins["top"] / height)
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120), mode="wb")
    finally:
        plt.close(fig)
    return fig


def _margins(*, timed: bool, left: float = 0.75, right: float = 0.2, bottom: float = 0.55, top: float = 0.4,
             **extra) -> dict:
    """Margins in inches; `timed`: a milliseconds axis above needs room for its ticks and label."""
    return {"left": left, "right": right, "bottom": bottom, "top": top + (0.5 if timed else 0.0), **extra}


def _milliseconds_axis(ax, bin_width_us: float | None, offset: float = 0.0) -> bool:
    """A second x axis above `ax` (x in steps) in milliseconds: ms = (x + offset) * bin width. `offset` 1
    turns a 0-based step index into the time elapsed at the end of that step. False (nothing drawn) when
    the bin width is not known."""
    if not bin_width_us:
        return False
    ms = float(bin_width_us) / 1000.0
    top = ax.secondary_xaxis("top", functions=(lambda x: (x + offset) * ms, lambda m: m / ms - offset))
    what = "time at the end of that step" if offset == 1 else "time"
    top.set_xlabel(f"{what} (ms; one step = {ms:g} ms)")
    return True


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _palette(count: int) -> list:
    """`count` distinct colours: matplotlib's tab10 up to 10 lines, tab20 above (the all-loss comparison
    draws 11, a membrane plot one line per class), repeating only past 20."""
    plt = _pyplot()
    colors = plt.get_cmap("tab10" if count <= 10 else "tab20").colors
    return [colors[k % len(colors)] for k in range(max(count, 1))]


def _mean_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof = 1; 0 for one seed) over axis 0."""
    values = np.asarray(values, np.float64)
    std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros_like(values[0])
    return values.mean(axis=0), std


def _title(default: str, title: str | None) -> str:
    return default if title is None else title


def spike_raster(layers: Sequence[tuple[str, np.ndarray]], path: str, *, title: str,
                 bin_width_us: float | None = None, output_names: Sequence[str] | None = None):
    """One sample's spikes, one panel per layer, top to bottom: `layers` [(name, spikes [T, N])], e.g.
    input, hidden layers, output. A dot at (t, n): neuron n spiked in step t (0-based; any non-zero count of
    a binned input). `output_names`: the last panel's neuron names (class labels). Each panel's y label
    names its layer; a note in its corner gives N and the spike count."""
    plt = _pyplot()
    heights = [max(1.0, min(3.0, np.asarray(s).reshape(len(s), -1).shape[1] / 64)) for _, s in layers]
    fig, axes = plt.subplots(len(layers), 1, sharex=True, figsize=(8, 1.2 + 1.3 * sum(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    steps = None
    for ax, (name, spikes) in zip(axes[:, 0], layers):
        spikes = np.asarray(spikes).reshape(len(spikes), -1)
        steps, neurons = spikes.shape
        t, n = np.nonzero(spikes)
        ax.scatter(t, n, s=4 if neurons > 64 else 12, marker="|", c="k", linewidths=0.8)
        ax.set_ylim(-0.5, neurons - 0.5)
        ax.set_ylabel(f"{name}\nneuron", fontsize=9)
        ax.text(0.995, 0.97, f"{neurons} neurons, {int(np.count_nonzero(spikes))} spikes", transform=ax.transAxes,
                ha="right", va="top", fontsize=8, bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
        ax.grid(alpha=0.2)
    if output_names is not None and len(output_names) <= 20:
        last = axes[-1, 0]
        last.set_yticks(range(len(output_names)), [str(c) for c in output_names], fontsize=7)
        last.set_ylabel(f"{layers[-1][0]}\nclass", fontsize=9)
    bottom = axes[-1, 0]
    bottom.set_xlim(-0.5, (steps or 1) - 0.5)
    bottom.set_xlabel("time step (0-based)")
    timed = _milliseconds_axis(axes[0, 0], bin_width_us)
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / fig.get_size_inches()[1], va="top")
    return _save(plt, fig, path, _margins(timed=timed, left=0.9, top=0.45))


def membrane_traces(membrane: np.ndarray, path: str, *, title: str, threshold=None,
                    bin_width_us: float | None = None, names: Sequence[str] | None = None,
                    highlight: int | None = None, spikes: np.ndarray | None = None):
    """The output neurons' membrane u[t] (before reset) over time: `membrane` [T, C]. `threshold`: a number,
    one per neuron [C], or None (a non-spiking integrator output has none); drawn dashed. `highlight`: the
    neuron drawn thick (the sample's true class). `spikes` [T, C]: marks each spike on its trace."""
    plt = _pyplot()
    membrane = np.asarray(membrane, np.float64)
    steps, count = membrane.shape
    names = [str(i) for i in range(count)] if names is None else [str(n) for n in names]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    colors = _palette(count)
    t = np.arange(steps)
    for c in range(count):
        main = c == highlight
        ax.plot(t, membrane[:, c], color=colors[c], lw=2.2 if main else 0.9, alpha=1.0 if main else 0.7,
                label=f"{names[c]} (true class)" if main else names[c])
        if spikes is not None:
            fired = np.flatnonzero(np.asarray(spikes)[:, c])
            ax.scatter(fired, membrane[fired, c], color=colors[c], s=14, marker="^", zorder=3)
    if threshold is not None:
        values = np.unique(np.asarray(threshold, np.float64).ravel())
        if values.size == 1:
            ax.axhline(values[0], color="k", ls="--", lw=1.2, label=f"threshold {values[0]:g}")
        else:
            for c, value in enumerate(np.broadcast_to(np.asarray(threshold, np.float64), (count,))):
                ax.hlines(value, 0, steps - 1, color=colors[c], ls="--", lw=0.8)
            ax.plot([], [], color="k", ls="--", label=f"thresholds (learned, {values.min():.3g} to {values.max():.3g})")
    ax.set_xlim(0, max(steps - 1, 1))
    ax.set_xlabel("time step (0-based)")
    ax.set_ylabel("membrane potential u (before reset)" if threshold is not None else "membrane potential u")
    ax.set_title(title, fontsize=10)
    timed = _milliseconds_axis(ax, bin_width_us)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if count > 12 else 1, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              title="output neuron" + ("\n(triangles: spikes)" if spikes is not None else ""), title_fontsize=7)
    return _save(plt, fig, path, _margins(timed=timed, right=1.5 if count <= 12 else 2.6))


# metrics.jsonl-style record keys -> (panel, what the line is, line style)
CURVES = {"loss": ("loss", "training loss (last batch)", "-"),
          "validation_loss": ("loss", "validation loss", "--"),
          "accuracy": ("accuracy", "train-batch accuracy", "-"),
          "validation_accuracy": ("accuracy", "validation accuracy", "--")}


def _series(records: Sequence[dict], key: str) -> dict[int, float]:
    return {int(r["step"]): float(r[key]) for r in records if r.get(key) is not None}


def training_curves(runs: dict[str, Sequence[Sequence[dict]]], path: str, *, title: str | None = None):
    """Loss (left) and accuracy (right) against the training step: `runs` {label: [one run's records,
    ...]}, records as metrics.jsonl's lines ({"step", "loss", "accuracy" (the last train batch's),
    "validation_accuracy", "validation_loss"}; any may be absent). With several runs (seeds) of a label, the
    line is the mean at the steps every run logged and the band ± 1 std (ddof = 1)."""
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = {"loss": loss_ax, "accuracy": acc_ax}
    colors, base = _palette(len(runs)), _palette(2)
    several = False
    for i, (label, label_runs) in enumerate(runs.items()):
        for key, (panel, what, style) in CURVES.items():
            series = [_series(records, key) for records in label_runs]
            series = [s for s in series if s]
            if not series:
                continue
            steps = sorted(set.intersection(*(set(s) for s in series)))
            if not steps:
                continue
            values = np.array([[s[k] for k in steps] for s in series])
            mean, std = _mean_std(values)
            ax = panels[panel]
            text = f"{label}: {what}" if len(runs) > 1 else what
            validation = key.startswith("validation")
            color = colors[i] if len(runs) > 1 else base[1 if validation else 0]
            if len(series) > 1:
                several = True
                text += f" ({len(series)} seeds)"
                low, high = mean - std, mean + std
                if panel == "accuracy":
                    low, high = np.clip(low, 0, 1), np.clip(high, 0, 1)
                ax.fill_between(steps, low, high, color=color, alpha=0.2, lw=0)
            marker = "s" if validation else "o" if len(steps) <= 3 else None
            ax.plot(steps, mean, style, color=color, marker=marker, ms=5 if validation else 4, label=text)
    spread = " (mean ± 1 std over seeds)" if several else ""
    loss_ax.set_ylabel("loss")
    acc_ax.set_ylabel("accuracy (fraction correct)")
    acc_ax.set_ylim(*ACCURACY_LIMITS)
    low = min((line.get_ydata().min() for line in loss_ax.get_lines() if len(line.get_ydata())), default=0.0)
    if low >= 0:
        loss_ax.set_ylim(bottom=0)
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("training step")
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
        _legend(ax)
    loss_ax.set_title(("loss, each loss's own objective" if len(runs) > 1 else "loss") + spread, fontsize=10)
    acc_ax.set_title("accuracy" + spread, fontsize=10)
    fig.suptitle(_title("Training curves", title), fontsize=11, y=1 - 0.1 / fig.get_size_inches()[1], va="top")
    fig.subplots_adjust(wspace=0.25)
    return _save(plt, fig, path, _margins(timed=False, top=0.7))


def accuracy_over_time(results: dict[str, dict], path: str, *, title: str | None = None):
    """Test accuracy when deciding at each step, one line per run: {label: eval dict} (its
    "accuracy_over_time" [T], "accuracy" and, when present, "bin_width_us"). x = steps seen: the decision
    at x reads the outputs of steps 1..x."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    steps, width = 1, None
    for color, (label, result) in zip(_palette(len(results)), results.items()):
        acc = result["accuracy_over_time"]
        steps, width = max(steps, len(acc)), width or result.get("bin_width_us")
        ax.plot(np.arange(1, len(acc) + 1), acc, color=color, label=f"{label} (final {result['accuracy']:.3f})")
    timed = _over_time_axes(ax, steps, width, _title("Accuracy when deciding after t steps", title),
                            "test accuracy (fraction correct)")
    return _save(plt, fig, path, _margins(timed=timed))


def _over_time_axes(ax, steps: int, width, title: str, ylabel: str) -> bool:
    """The accuracy-over-time axes: steps seen on x (and ms above when the bin width is known), accuracy on
    ACCURACY_LIMITS; True when the milliseconds axis was drawn."""
    ax.set_xlim(0, steps)
    ax.set_ylim(*ACCURACY_LIMITS)
    ax.set_xlabel("steps seen (decision from the outputs up to this step)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    timed = _milliseconds_axis(ax, width)
    ax.grid(alpha=0.3)
    _legend(ax)
    return timed


def latency_tradeoff(results: dict[str, dict], path: str, *, title: str | None = None):
    """Mean decision time against accuracy over the confidence thresholds (each point annotated with its
    threshold), one line per run: {label: eval dict}; runs without output spikes (no decisions) are left
    out. Decision times are 0-based step indices (T: never decided)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    steps, width = 0, None
    for label, result in results.items():
        steps, width = max(steps, result.get("time_bins") or 0), width or result.get("bin_width_us")
        decision = result["latency_steps"]["decision"]
        if not decision:  # an output layer without spikes has no confidence decision
            continue
        thresholds = sorted(decision, key=float)
        times = [decision[t]["mean_time"] for t in thresholds]
        accs = [decision[t]["accuracy"] for t in thresholds]
        ax.plot(times, accs, marker="o", label=label)
        for t, x, y in zip(thresholds, times, accs):
            ax.annotate(t, (x, y), fontsize=7, textcoords="offset points", xytext=(3, 3))
    timed = _tradeoff_axes(ax, steps, width, _title("Latency-accuracy trade-off (points: spikemax confidence "
                                                    "threshold)", title), "")
    return _save(plt, fig, path, _margins(timed=timed))


def _tradeoff_axes(ax, steps: int, width, title: str, spread: str) -> bool:
    if steps:
        ax.set_xlim(0, steps)
    ax.set_ylim(*ACCURACY_LIMITS)
    ax.set_xlabel("mean decision time (step index, 0-based)" + spread)
    ax.set_ylabel("accuracy of the decisions" + spread)
    ax.set_title(title, fontsize=10)
    timed = _milliseconds_axis(ax, width, offset=1.0)
    ax.grid(alpha=0.3)
    _legend(ax)
    return timed


def bands_over_time(curves: dict[str, np.ndarray], path: str, *, title: str | None = None,
                    bin_width_us: float | None = None):
    """Accuracy over time per label over seeds: {label: [seeds, T]}; the line is the mean, the band ± 1 std
    (ddof = 1), clipped to [0, 1]."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    steps = 1
    for color, (label, values) in zip(_palette(len(curves)), curves.items()):
        values = np.asarray(values, np.float64)
        x = np.arange(1, values.shape[1] + 1)
        steps = max(steps, values.shape[1])
        mean, std = _mean_std(values)
        ax.plot(x, mean, color=color, label=f"{label} (final {mean[-1]:.3f} ± {std[-1]:.3f}, {len(values)} seeds)")
        ax.fill_between(x, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), color=color, alpha=0.25, lw=0)
    timed = _over_time_axes(ax, steps, bin_width_us,
                            _title("Accuracy when deciding after t steps, over seeds", title),
                            "test accuracy (mean ± 1 std over seeds)")
    return _save(plt, fig, path, _margins(timed=timed))


def latency_tradeoff_bands(points: dict[str, np.ndarray], path: str, *, title: str | None = None,
                           time_bins: int | None = None, bin_width_us: float | None = None):
    """Mean decision time against accuracy over the confidence thresholds, mean over seeds with ± 1 std
    (ddof = 1) error bars on both axes: {label: [seeds, thresholds, (time, accuracy)]}."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for color, (label, values) in zip(_palette(len(points)), points.items()):
        mean, std = _mean_std(values)
        ax.errorbar(mean[:, 0], mean[:, 1], xerr=std[:, 0], yerr=std[:, 1], marker="o", capsize=2, color=color,
                    label=f"{label} ({len(values)} seeds)")
    timed = _tradeoff_axes(ax, time_bins or 0, bin_width_us,
                           _title("Latency-accuracy trade-off over seeds (points: confidence threshold)", title),
                           " (mean ± 1 std)")
    return _save(plt, fig, path, _margins(timed=timed))


def event_frames(frames: np.ndarray, path: str, title: str, columns: int = 10, bin_width_us: float | None = None):
    """One sample's binned input over time: frames [T, P, H, W] (ON red, OFF blue) or [T, F] (raster)."""
    plt = _pyplot()
    if frames.ndim == 2:
        fig, ax = plt.subplots(figsize=(8, 3))
        t, f = np.nonzero(frames)
        ax.scatter(t, f, s=2, c="k")
        ax.set_xlim(-0.5, frames.shape[0] - 0.5)
        ax.set_ylim(-0.5, frames.shape[1] - 0.5)
        ax.set_xlabel("time step (0-based)")
        ax.set_ylabel("input channel")
        ax.set_title(title, fontsize=10)
        _milliseconds_axis(ax, bin_width_us)
    else:
        steps = frames.shape[0]
        shown = np.linspace(0, steps - 1, min(columns, steps)).astype(int)
        fig, axes = plt.subplots(1, len(shown), figsize=(1.6 * len(shown), 2.2))
        ms = float(bin_width_us) / 1000.0 if bin_width_us else None
        for ax, t in zip(np.atleast_1d(axes), shown):
            image = np.zeros(frames.shape[2:] + (3,))
            image[..., 0] = frames[t, -1]  # ON
            if frames.shape[1] > 1:
                image[..., 2] = frames[t, 0]  # OFF
            ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
            ax.set_title(f"step {t}" + (f"\n{t * ms:g} ms" if ms else ""), fontsize=8)
            ax.axis("off")
        fig.suptitle(title + " (ON red, OFF blue)", fontsize=9)
    return _save(plt, fig, path)



def accuracy_against_synops(points: dict[str, dict[float, np.ndarray]], path: str, *, title: str | None = None):
    """Test accuracy against hidden-layer SynOps per sample, one line per label through its spike-rate penalty
    weights w (ascending), each point the mean over seeds with ± 1 std (ddof = 1) error bars on both axes and
    its w written beside it: {label: {w: [seeds, (synops, accuracy)]}}. SynOps on a log axis (the weights span
    decades) unless a mean is 0; the legend beside the axes (tab20 colours past 10 labels)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    colors = _palette(len(points))
    positive = True
    for k, (label, by_weight) in enumerate(points.items()):
        weights = sorted(by_weight)
        stats = [_mean_std(np.asarray(by_weight[w], np.float64)) for w in weights]
        mean, std = np.asarray([m for m, _ in stats]), np.asarray([s for _, s in stats])
        positive = positive and bool(np.all(mean[:, 0] > 0))
        line = ax.errorbar(mean[:, 0], mean[:, 1], xerr=std[:, 0], yerr=std[:, 1], marker="osD^v<>"[k % 7],
                           capsize=2, color=colors[k],
                           label=f"{label} ({len(by_weight[weights[0]])} seeds)")
        for w, (x, y) in zip(weights, mean):
            ax.annotate(f"w={w:g}", (x, y), fontsize=6, textcoords="offset points", xytext=(3, 3),
                        color=line[0].get_color())
    if positive and points:
        ax.set_xscale("log")
    ax.set_ylim(*ACCURACY_LIMITS)
    ax.set_xlabel("hidden-layer SynOps per sample")
    ax.set_ylabel("test accuracy (mean ± 1 std over seeds)")
    ax.set_title(_title("Accuracy at matched energy (points: spike-rate penalty weight w)", title), fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return _save(plt, fig, path, _margins(timed=False, right=2.6))
