"""The loss-agnostic measures and diagnostics of evaluation (stable-prediction latency, latency at a matched
accuracy, energy up to the decision, input layer apart, per-class recall, dead outputs, firing rates) against
numpy loops on hand-made spike tensors, independent of batch size and device count, and end to end in
eval.json."""
import functools
import json
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from spikejax import build, evaluate, parallel, readout, train
from tests.devices import needs
from tests.test_train import small_config

T, SIZES, FAN_OUT = 6, (3, 2, 4), (5, 7, 0)  # input, hidden, output (C = 4); SynOps per spike of each layer
LABELS = np.array([1, 2, 0, 1, 1, 0, 3, 0])
MASK = np.array([1, 1, 1, 1, 1, 1, 0, 0])  # two padding rows


def _output_spikes():
    s = np.zeros((T, 8, 4), np.float32)
    s[[0, 2, 4], 0, 1] = 1          # class 1 from the start: stable at 0, right
    s[[0, 1], 1, 0] = 1             # class 0 leads, class 2 ties at t=4 and overtakes at t=5: stable at 5, right
    s[[3, 4, 5], 1, 2] = 1
    # sample 2: silent (no prediction: stable at T, wrong)
    s[2, 3, 0] = 1                  # no prediction, then class 0 from t=2: stable at 2, wrong
    s[1, 4, 2] = 1                  # class 2, then a tie at t=2 goes to class 1: stable at 2, right
    s[[2, 3], 4, 1] = 1
    s[0, 5, 0] = 1                  # class 0 at once: stable at 0, right
    s[:, 6:, :] = 1                 # padding fires everywhere, neuron 3 included (which no real sample fires)
    return s


def _layers(seed=0):
    rng = np.random.default_rng(seed)
    hidden = [(rng.random((T, 8, n)) < 0.4).astype(np.float32) for n in SIZES[:2]]
    return hidden + [_output_spikes()]


class HandMade(nnx.Module):
    """A stand-in model: its input is the hand-made spikes of every layer side by side on the last axis."""

    def __call__(self, x, *, return_layers=False):
        layers = jnp.split(x, np.cumsum(SIZES)[:-1].tolist(), axis=-1)
        return (layers[-1], layers) if return_layers else layers[-1]

    def connections(self, spikes):
        return []


def _step_kwargs():
    graphdef, _ = nnx.split(HandMade())
    return dict(graphdef=graphdef, fan_out=FAN_OUT, readout_fn=lambda out: readout.predictions_over_time(out["spikes"]),
                loss_fn=lambda out, labels, mask: jnp.float32(0.0))


def _sums(layers, labels, mask):
    params = nnx.split(HandMade())[1]
    step = jax.jit(functools.partial(evaluate.eval_step, **_step_kwargs()))
    return jax.device_get(step(params, jnp.concatenate(layers, -1), jnp.asarray(labels), jnp.asarray(mask)))


def _numpy_stable(out_b):
    """Earliest t from which the prediction (argmax of counts up to t, -1 while silent) stays the final one."""
    counts = np.cumsum(out_b, axis=0)
    predictions = [int(np.argmax(c)) if c.sum() > 0 else -1 for c in counts]
    if predictions[-1] == -1:
        return len(predictions)
    t = len(predictions) - 1
    while t > 0 and predictions[t - 1] == predictions[-1]:
        t -= 1
    return t


FACTS = {"dataset": "hand", "loss": "none", "time_bins": T, "bin_width_us": 1}


def test_stable_prediction_step_and_steps_to_reach_match_loops():
    s = (np.random.default_rng(3).random((12, 40, 5)) < 0.15).astype(np.float32)
    s[:, 0] = 0.0
    stable = readout.stable_prediction_step(readout.predictions_over_time(s))
    np.testing.assert_array_equal(stable, [_numpy_stable(s[:, b]) for b in range(40)])
    assert stable[0] == 12  # silent: never decided
    np.testing.assert_array_equal(readout.stable_prediction_step(readout.predictions_over_time(_output_spikes())),
                                  [0, 5, 6, 2, 2, 0, 0, 0])
    with pytest.raises(ValueError, match=r"predictions must be \[T, B\]"):
        readout.stable_prediction_step(np.zeros((3,)))
    curve = [0.0, 0.25, 0.5, 0.5, 0.75]
    for level in (0.0, 0.2, 0.5, 0.6, 0.75, 0.8):
        loop = next((t for t, a in enumerate(curve) if a >= level), None)
        assert readout.steps_to_reach(curve, level) == loop
    assert readout.steps_to_reach(np.asarray(curve), 0.8) is None


def test_spikes_and_synops_up_to_a_step_match_loops():
    s = (np.random.default_rng(4).random((7, 5, 3, 2)) < 0.5).astype(np.float32)
    until = np.array([0, 3, 6, 9, 2])
    fan = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_allclose(readout.total_spikes(s, until), [s[: u + 1, b].sum() for b, u in enumerate(until)])
    np.testing.assert_allclose(readout.synops(s, fan, until),
                               [(s[: u + 1, b] * fan).sum() for b, u in enumerate(until)])
    np.testing.assert_allclose(readout.synops(s, fan), [(s[:, b] * fan).sum() for b in range(5)])
    with pytest.raises(ValueError, match="until must have shape"):
        readout.total_spikes(s, until[:2])


def _reference(layers):
    """The eval.json measures of the real rows, by numpy loops."""
    real = [b for b in range(8) if MASK[b]]
    out = layers[-1]
    n = len(real)
    stable = {b: _numpy_stable(out[:, b]) for b in real}
    final = {b: _numpy_stable(out[:, b]) < T and int(np.argmax(out[:, b].sum(0))) == LABELS[b] for b in real}
    right = [b for b in real if final[b]]
    names = ["input", "layer1", "output"]
    recall = []
    for c in range(4):
        members = [b for b in real if LABELS[b] == c]
        recall.append(sum(final[b] for b in members) / len(members) if members else None)
    to_decision = {}
    for name, f, h in zip(names[1:], FAN_OUT[1:], layers[1:]):
        to_decision[name] = (sum(h[: stable[b] + 1, b].sum() for b in real) / n,
                             sum(h[: stable[b] + 1, b].sum() * f for b in real) / n)
    return {
        "accuracy": len(right) / n,
        "stable": (sum(stable.values()) / n, sum(stable[b] for b in right) / len(right)),
        "spikes": {k: sum(h[:, b].sum() for b in real) / n for k, h in zip(names, layers)},
        "synops": {k: sum(h[:, b].sum() * f for b in real) / n for k, h, f in zip(names, layers, FAN_OUT)},
        "rate": {k: sum(h[:, b].sum() for b in real) / (n * T * h.shape[-1]) for k, h in zip(names, layers)},
        "recall": recall,
        "dead": [c for c in range(4) if sum(out[:, b, c].sum() for b in real) == 0],
        "to_decision": to_decision,
    }


def _check_summary(summary, layers):
    ref = _reference(layers)
    assert summary["accuracy"] == pytest.approx(ref["accuracy"]) and summary["num_examples"] == 6
    stable = summary["latency_steps"]["stable_prediction"]
    assert (stable["mean"], stable["mean_correct"]) == pytest.approx(ref["stable"])
    assert ref["stable"] == pytest.approx(((0 + 5 + 6 + 2 + 2 + 0) / 6, (0 + 5 + 2 + 0) / 4))
    for key, values in (("spikes_per_sample", ref["spikes"]), ("synops_per_sample", ref["synops"])):
        assert {k: summary[key][k] for k in values} == pytest.approx(values)
        assert summary[key]["network"] == pytest.approx(values["layer1"] + values["output"])
    assert summary["synops_per_sample"]["total"] == pytest.approx(sum(ref["synops"].values()))
    assert summary["spikes_per_sample"]["total"] == summary["spikes_per_sample"]["network"]
    energy = summary["energy_to_decision"]
    for name, (spikes, synops) in ref["to_decision"].items():
        assert (energy["spikes_per_sample"][name], energy["synops_per_sample"][name]) == pytest.approx((spikes, synops))
    assert energy["synops_per_sample"]["network"] == pytest.approx(sum(v[1] for v in ref["to_decision"].values()))
    assert summary["firing_rate"] == pytest.approx(ref["rate"])
    assert summary["per_class_recall"] == pytest.approx(ref["recall"]) and ref["recall"][3] is None
    assert summary["dead_outputs"] == {"count": 1, "neurons": [3]} and ref["dead"] == [3]


def test_eval_step_measures_match_loops_and_do_not_depend_on_the_batch():
    layers = _layers()
    whole = _sums(layers, LABELS, MASK)
    _check_summary(evaluate.summarize(whole, FACTS), layers)
    # the same real rows in two batches, differently padded: equal sums
    first, second = [0, 1, 6], [2, 3, 4, 5, 7, 6]
    parts = [_sums([h[:, rows] for h in layers], LABELS[rows], MASK[rows]) for rows in (first, second)]
    added = jax.tree.map(np.add, *parts)
    assert jax.tree.map(lambda a, b: bool(np.allclose(a, b, rtol=1e-6)), whole, added) == jax.tree.map(
        lambda _: True, whole)


@needs(4)
def test_parallel_eval_step_sums_equal_on_1_2_and_4_devices():
    layers = _layers(1)
    expected = _sums(layers, LABELS, MASK)
    params = nnx.split(HandMade())[1]
    for count in (1, 2, 4):
        mesh = parallel.data_mesh(jax.devices()[:count])
        fn = evaluate.parallel_eval_step(mesh, **_step_kwargs())
        batch = types.SimpleNamespace(inputs=np.concatenate(layers, -1), labels=LABELS.astype(np.int32),
                                      mask=MASK.astype(np.int32))
        sums = jax.device_get(fn(params, *parallel.global_batch_arrays(mesh, batch)))
        for key, value in expected.items():
            np.testing.assert_allclose(sums[key], value, rtol=1e-6, err_msg=f"{key} on {count} device(s)")
    _check_summary(evaluate.summarize(sums, FACTS), layers)


def test_train_and_evaluate_writes_the_new_measures(digits_data_dir, tmp_path):
    """eval.json of a short digits_events run holds every new field, consistent with the rest; evaluating its
    parameters on 1 and 2 devices gives the same figures as on 4."""
    from spikejax import data, runs

    config = small_config(digits_data_dir)
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(config, workdir)
    result = json.load(open(os.path.join(workdir, "eval.json")))
    latency, time_bins = result["latency_steps"], result["time_bins"]
    assert 0 <= latency["stable_prediction"]["mean"] <= time_bins
    assert "NLL-native" in latency["decision_is"]
    synops = result["synops_per_sample"]
    assert synops["network"] == pytest.approx(synops["total"] - synops["input"])
    energy = result["energy_to_decision"]
    assert 0 <= energy["synops_per_sample"]["network"] <= synops["network"] * (1 + 1e-6)
    assert 0 <= energy["spikes_per_sample"]["network"] <= result["spikes_per_sample"]["network"] * (1 + 1e-6)
    assert len(result["per_class_recall"]) == 10 and all(0 <= r <= 1 for r in result["per_class_recall"])
    assert result["dead_outputs"]["count"] == len(result["dead_outputs"]["neurons"])
    assert list(result["firing_rate"]) == ["input", "layer1", "output"]
    assert all(0 <= r <= 1 for r in result["firing_rate"].values())

    split = data.load("digits_events", "test", data_dir=digits_data_dir)
    params = runs.restore(config, workdir).state["params"]
    model = build.model(config)
    graphdef = nnx.split(model)[0]
    by_devices = {}
    for count in (1, 2):
        mesh = parallel.data_mesh(jax.devices()[:count])
        by_devices[count] = evaluate.evaluate_split(
            parallel.replicate(jax.device_get(params), mesh), split, mesh=mesh, graphdef=graphdef, model=model,
            loss_fn=build.loss(config), readout_fn=build.readout(config), eval_batch_size=config.eval_batch_size,
            facts=build.report_facts(config))
    for summary in by_devices.values():
        for key in ("per_class_recall", "dead_outputs", "firing_rate", "latency_steps", "energy_to_decision"):
            _assert_close(summary[key], result[key], key)


def _assert_close(a, b, where, rel=1e-5):
    """Nested dicts and lists equal, numbers to `rel`."""
    if isinstance(a, dict):
        assert sorted(a) == sorted(b), where
        for k in a:
            _assert_close(a[k], b[k], f"{where}.{k}", rel)
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{where}[{i}]", rel)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=rel), where
    else:
        assert a == b, where
