"""The plots: each function writes a valid PNG of the figure it returns, whose drawn data are the input's
(spike positions, means and ± 1 std bands computed here with numpy), with titles, units, "±" and accuracy
axes on [0, 1]; the plot command on any finished workdir, and its errors for anything else."""
import json
import os
import struct

import numpy as np
import pytest

from spikejax import errors, figures, plots, replot
from tests.test_train import _finish, _run, _start, small_config

PNG = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    """(width, height) from the PNG's IHDR chunk, which must follow the signature."""
    data = open(path, "rb").read()
    assert data[:8] == PNG and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def _texts(fig):
    """Every title, axis label, legend entry and text of the figure, the milliseconds axes' included."""
    out = [fig.get_suptitle()]
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_title("left"), ax.get_xlabel(), ax.get_ylabel()]
        out += [t.get_text() for t in ax.texts]
        if ax.get_legend():
            out += [t.get_text() for t in ax.get_legend().get_texts()]
        out += [child.get_xlabel() for child in ax.child_axes]
    return " | ".join(out)


def _eval_result(accuracy=0.9, steps=30, width_us=10_000):
    curve = np.minimum(1.0, np.linspace(0.1, 1.1, steps)) * accuracy
    return {"accuracy": accuracy, "accuracy_over_time": curve.tolist(), "time_bins": steps, "bin_width_us": width_us,
            "latency_steps": {"decision": {"0.5": {"mean_time": 5.0, "accuracy": 0.7},
                                           "0.9": {"mean_time": 12.0, "accuracy": 0.85}}}}


def test_spike_raster_draws_every_spike_of_each_layer_where_it_is(tmp_path):
    rng = np.random.default_rng(0)
    layers = [("input", rng.random((30, 2, 4, 4)) < 0.2), ("hidden layer 1", rng.random((30, 12)) < 0.1),
              ("output", rng.random((30, 3)) < 0.3)]
    path = str(tmp_path / "raster.png")
    fig = plots.spike_raster(layers, path, title="a sample", bin_width_us=10_000, output_names=["a", "b", "c"])
    assert _png_size(path) == (8 * 120, int(round((1.2 + 1.3 * 3) * 120)))  # one panel height each: N <= 64
    for ax, (name, spikes) in zip(fig.axes, layers):
        flat = spikes.reshape(30, -1)
        drawn = {tuple(p) for p in ax.collections[0].get_offsets().astype(int).tolist()}
        assert drawn == set(zip(*np.nonzero(flat)))  # (step, neuron) of every spike, nothing else
        assert f"{flat.shape[1]} neurons, {flat.sum()} spikes" in _texts(fig) and name in ax.get_ylabel()
        assert ax.get_ylim() == (-0.5, flat.shape[1] - 0.5)
    assert [t.get_text() for t in fig.axes[2].get_yticklabels()] == ["a", "b", "c"]
    top = fig.axes[0].child_axes[0]  # milliseconds above the steps: 10 ms per step
    assert "ms" in top.get_xlabel() and top.get_xlim() == pytest.approx(np.multiply(fig.axes[0].get_xlim(), 10))
    assert "time step" in fig.axes[-1].get_xlabel() and "a sample" in _texts(fig)


def test_membrane_traces_draw_each_neuron_and_the_threshold(tmp_path):
    rng = np.random.default_rng(1)
    membrane = rng.normal(0.5, 0.6, (20, 4))
    spikes = membrane > 1.0
    path = str(tmp_path / "membrane.png")
    fig = plots.membrane_traces(membrane, path, title="output", threshold=1.0, names=list("wxyz"), highlight=2,
                                spikes=spikes)
    _png_size(path)
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if line.get_label() in ("w", "x", "y (true class)", "z")]
    for c, line in enumerate(lines):
        np.testing.assert_array_equal(line.get_ydata(), membrane[:, c])
    assert lines[2].get_linewidth() > lines[0].get_linewidth()
    threshold = [line for line in ax.get_lines() if line.get_label() == "threshold 1"]
    assert len(threshold) == 1 and set(threshold[0].get_ydata()) == {1.0}
    marked = np.concatenate([c.get_offsets()[:, 0] for c in ax.collections])
    assert sorted(marked.tolist()) == sorted(np.nonzero(spikes)[0].tolist())  # one triangle per spike
    assert "membrane potential" in ax.get_ylabel() and not ax.child_axes  # no bin width: no ms axis
    fig = plots.membrane_traces(membrane, path, title="integrator", threshold=None)
    assert not [line for line in fig.axes[0].get_lines() if "threshold" in line.get_label()]


def test_training_curves_are_means_with_one_std_bands_over_seeds(tmp_path):
    """Two labels: one with three seeds (mean line, ± 1 std band at the steps all three logged), one with a
    single run (a line, no band); accuracy on [0, 1], the bands clipped to it."""
    steps = [10, 20, 30]
    accuracy = np.array([[0.5, 0.8, 0.9], [0.6, 0.9, 1.0], [0.4, 0.7, 1.0]])
    seeds = [[{"step": s, "loss": 2.0 - a, "accuracy": a} for s, a in zip(steps, row)] for row in accuracy]
    seeds[0].append({"step": 40, "loss": 0.5, "accuracy": 1.0})  # one seed logged further: not averaged
    single = [[{"step": s, "validation_accuracy": 0.3 + 0.1 * i} for i, s in enumerate(steps)]]
    path = str(tmp_path / "curves.png")
    fig = plots.training_curves({"nll": seeds, "mse": single}, path, title="curves")
    _png_size(path)
    loss_ax, acc_ax = fig.axes
    line = next(ln for ln in acc_ax.get_lines() if ln.get_label() == "nll: train-batch accuracy (3 seeds)")
    np.testing.assert_array_equal(line.get_xdata(), steps)
    np.testing.assert_allclose(line.get_ydata(), accuracy.mean(axis=0))
    band = acc_ax.collections[0].get_paths()[0].vertices
    std = accuracy.std(axis=0, ddof=1)
    high = np.clip(accuracy.mean(axis=0) + std, 0, 1)
    low = np.clip(accuracy.mean(axis=0) - std, 0, 1)
    assert np.max(band[:, 1]) == pytest.approx(high.max()) and np.min(band[:, 1]) == pytest.approx(low.min())
    assert high[-1] == 1.0 < accuracy[:, -1].mean() + std[-1]  # the third step's band, clipped at 1
    mse = next(ln for ln in acc_ax.get_lines() if ln.get_label() == "mse: validation accuracy")
    np.testing.assert_allclose(mse.get_ydata(), [0.3, 0.4, 0.5])
    assert len(acc_ax.collections) == 1 and acc_ax.get_ylim() == plots.ACCURACY_LIMITS
    text = _texts(fig)
    assert "± 1 std over seeds" in text and "+-" not in text and "training step" in text and "curves" in text
    assert loss_ax.get_ylim()[0] == 0  # losses all positive: the axis starts at 0


def test_accuracy_and_latency_plots_have_titles_units_and_unit_accuracy_axes(tmp_path):
    rng = np.random.default_rng(2)
    result = _eval_result()
    figs = {
        "accuracy": plots.accuracy_over_time({"nll": result}, str(tmp_path / "a.png"), title="accuracy title"),
        "latency": plots.latency_tradeoff({"nll": result}, str(tmp_path / "b.png")),
        "bands": plots.bands_over_time({"nll": rng.uniform(0.8, 1.0, (4, 30))}, str(tmp_path / "c.png"),
                                       bin_width_us=10_000),
        "latency bands": plots.latency_tradeoff_bands({"nll": rng.uniform(0.3, 0.9, (4, 6, 2)) * [30, 1]},
                                                      str(tmp_path / "d.png"), time_bins=30, bin_width_us=10_000)}
    for name in "abcd":
        assert _png_size(str(tmp_path / f"{name}.png")) == (int(6.5 * 120), int(4.2 * 120))
    for name, fig in figs.items():
        ax = fig.axes[0]
        text = _texts(fig)
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), name
        assert ax.get_ylim() == plots.ACCURACY_LIMITS and ax.get_xlim() == (0, 30), name
        assert "+-" not in text and "ms; one step = 10 ms" in text, name
    assert "accuracy title" in _texts(figs["accuracy"]) and "nll (final 0.900)" in _texts(figs["accuracy"])
    assert "mean ± 1 std" in _texts(figs["bands"]) and "mean ± 1 std" in _texts(figs["latency bands"])
    band = figs["bands"].axes[0].collections[0].get_paths()[0].vertices
    assert band[:, 1].max() <= 1.0 and band[:, 1].min() >= 0.0


class _Split:
    """What `figures.sample_activity` reads of a data split: dense samples [n, T, *frame], labels, classes."""
    split = "test"

    def __init__(self, samples, labels, classes):
        self.samples, self.labels, self.classes = samples, labels, classes

    def dense(self, indices):
        return self.samples[np.asarray(indices)]


def test_an_integrator_output_has_no_output_spikes_or_threshold_and_its_membrane_is_the_leaky_sum(tmp_path):
    """output="integrator": the raster shows input and hidden spikes only, the membrane plot has no threshold,
    and the membrane is u[t] = beta u[t-1] + I[t] of the output currents from the hidden spikes (numpy loop)."""
    from flax import nnx

    from configs import default
    from spikejax import build

    config = default.get_config()
    config.update_from_flattened_dict({"model.output": "integrator", "loss.name": "max_membrane",
                                       "model.hidden": (7,), "model.init_scale": 6.0, "data.time_bins": 12})
    rng = np.random.default_rng(3)
    split = _Split((rng.random((4, 12, 6)) < 0.4).astype(np.uint8), np.array([2, 0, 1, 1]), ["a", "b", "c"])
    graphdef, params = nnx.split(build.model(config, (6,), 3))
    activity = figures.sample_activity(config, graphdef, params, split, index=2)
    assert [name for name, _ in activity.layers] == ["input", "hidden layer 1"]
    assert activity.spikes is None and activity.threshold is None and activity.label == 1
    np.testing.assert_array_equal(activity.layers[0][1], split.samples[2])
    hidden = np.asarray(activity.layers[1][1], np.float64)
    assert 0 < hidden.sum() < hidden.size
    layer = nnx.merge(graphdef, params).layers[-1]
    currents = hidden @ np.asarray(layer.kernel[...], np.float64) + np.asarray(layer.bias[...], np.float64)
    beta, u, expected = config.model.neuron.beta, np.zeros(3), []
    for t in range(12):
        u = beta * u + currents[t]
        expected.append(u)
    np.testing.assert_allclose(activity.membrane, expected, rtol=1e-5, atol=1e-5)
    result = {**_eval_result(), "loss": "max_membrane", "dataset": "toy", "num_examples": 4}
    result["latency_steps"] = {"decision": None}
    written = figures.run_figures(str(tmp_path), result, records=[], activity=activity)
    assert [os.path.basename(p) for p in written] == ["accuracy_over_time.png", "spike_raster.png",
                                                      "membrane_traces.png"]  # no decisions, no curves


def test_the_plot_command_refuses_anything_but_a_finished_workdir(tmp_path):
    with pytest.raises(errors.UsageError, match="no such folder"):
        replot.plot_workdir(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.UsageError, match="not a spikejax workdir"):
        replot.plot_workdir(str(tmp_path / "empty"))
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(errors.UsageError, match="a run that has not finished.*experiments.evaluate"):
        replot.plot_workdir(str(tmp_path / "run"))
    (tmp_path / "sweep" / "tune" / "0").mkdir(parents=True)
    with pytest.raises(errors.UsageError, match="a comparison that has not finished.*compare_losses"):
        replot.plot_workdir(str(tmp_path / "sweep"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # nothing is written for a refused workdir


def test_read_jsonl_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    assert figures.read_jsonl(str(path)) == [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]
    assert figures.read_jsonl(str(tmp_path / "absent.jsonl")) == []


@pytest.mark.slow
def test_the_plot_command_draws_a_finished_run(digits_data_dir, tmp_path):
    """A two-step run: the training program writes the five plots itself; `experiments.plot` draws them again
    into --out, says what it wrote, and a missing workdir is one line and exit 2."""
    from spikejax import train

    workdir = str(tmp_path / "run")
    train.train_and_evaluate(small_config(digits_data_dir, max_steps=2, plots=True), workdir)
    names = ["accuracy_over_time.png", "latency_accuracy.png", "training_curves.png", "spike_raster.png",
             "membrane_traces.png"]
    for name in names:
        _png_size(os.path.join(workdir, name))
    out = str(tmp_path / "figures")
    missing = _start(["experiments.plot", f"--workdir={tmp_path / 'nothing'}"])  # beside the other: start-up time
    env = {**os.environ, "SPIKEJAX_DATA_DIR": digits_data_dir}
    done = _run(["experiments.plot", f"--workdir={workdir}", f"--out={out}", "--index=3"], env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("wrote 5 plots: " + ", ".join(os.path.join(out, n) for n in names))
    assert sorted(os.listdir(out)) == sorted(names)
    for name in names:
        _png_size(os.path.join(out, name))
    missing = _finish(missing)
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0 and "no such folder" in missing.stderr
    assert json.load(open(os.path.join(workdir, "eval.json")))["step"] == 2


def test_eleven_losses_get_eleven_colours(tmp_path):
    """The all-loss comparison draws 11 labels: every line and band has its own colour (tab10 would repeat
    its first colour on the eleventh)."""
    rng = np.random.default_rng(0)
    labels = [f"loss{k}" for k in range(11)]
    fig = plots.bands_over_time({label: rng.uniform(size=(3, 20)) for label in labels}, str(tmp_path / "b.png"))
    lines = [line for line in fig.axes[0].get_lines() if line.get_label() in
             {t.get_text() for t in fig.axes[0].get_legend().get_texts()}]
    assert len(lines) == 11 and len({line.get_color() for line in lines}) == 11
    bands = [tuple(np.round(c.get_facecolor()[0][:3], 6)) for c in fig.axes[0].collections]
    assert len(bands) == 11 and len(set(bands)) == 11
    runs = {label: [[{"step": s, "loss": 1.0 / s, "accuracy": 0.1 * k} for s in (1, 2, 3)]]
            for k, label in enumerate(labels)}
    fig = plots.training_curves(runs, str(tmp_path / "c.png"))
    assert len({line.get_color() for line in fig.axes[0].get_lines()}) == 11
