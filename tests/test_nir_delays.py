"""NIR export and import of synaptic delays (model delay_mlp): the exported graph against a numpy simulation
written from NIR's node definitions, spikejax's round trip through a .nir file, the Delay node's reading
(whole steps of dt, zeros, refusals), the size guard of the per-synapse expansion, and the export command
on a trained delay_mlp run."""
import numpy as np
import pytest

nir = pytest.importorskip("nir")

import jax.numpy as jnp  # noqa: E402

from spikejax import delays, models  # noqa: E402
from spikejax import nir as snir  # noqa: E402

DT = 1e-3


def _model(per, *, bias=True, init="uniform", kernel_size=4, sizes=(10, 12, 4), seed=0):
    neuron = models.Neuron(beta=0.8, threshold=1.0, reset="zero")
    return models.build("delay_mlp", (sizes[0],), sizes[-1], neuron, seed=seed, hidden=sizes[1:-1], init_scale=6.0,
                        bias=bias, delay=models.Delay(kernel_size=kernel_size, per=per, init=init))


def _inputs(steps=30, batch=4, features=10, seed=1):
    return (np.random.default_rng(seed).random((steps, batch, features)) < 0.3).astype(np.float32)


def _simulate(graph, x, dt):
    """The graph run from NIR's definitions in float64 numpy, independently of spikejax's importer: a node's
    input is the sum of its incoming edges; Linear y = W x, Affine y = W x + b (W [out, in]); Delay
    y_c[t] = x_c[t - delay_c/dt] (0 before the start); LIF forward Euler at step dt,
    v[t] = (1 - dt/tau) v[t-1] + (dt/tau)(v_leak + r I[t]), s = v > v_threshold, then v = v_reset.
    Returns ({node: value [T, B, F]}, the smallest |v - v_threshold| met, the neuron nodes in order)."""
    values, closest, order, pending = {}, np.inf, [], list(graph.nodes)
    while pending:  # a topological order: a node once all its sources are computed
        name = next(n for n in pending if all(s in values for s, t in graph.edges if t == n))
        pending.remove(name)
        node = graph.nodes[name]
        kind = type(node).__name__
        if kind == "Input":
            values[name] = x.astype(np.float64)
            continue
        value = sum(values[s] for s, t in graph.edges if t == name)
        if kind in ("Linear", "Affine"):
            value = value @ np.asarray(node.weight, np.float64).T
            if kind == "Affine":
                value = value + np.asarray(node.bias, np.float64)
        elif kind == "Delay":
            shifted = np.zeros_like(value)
            for c, seconds in enumerate(np.asarray(node.delay, np.float64)):
                d = int(round(seconds / dt))
                shifted[d:, :, c] = value[:max(value.shape[0] - d, 0), :, c]
            value = shifted
        elif kind == "LIF":
            tau, r, leak, threshold, reset = (np.asarray(getattr(node, f), np.float64)
                                              for f in ("tau", "r", "v_leak", "v_threshold", "v_reset"))
            v, spikes = np.zeros(value.shape[1:]), np.zeros_like(value)
            for t in range(value.shape[0]):
                v = (1 - dt / tau) * v + dt / tau * (leak + r * value[t])
                spikes[t] = v > threshold
                closest = min(closest, float(np.min(np.abs(v - threshold))))
                v = np.where(spikes[t] > 0, reset, v)
            value = spikes
            order.append(name)
        else:
            assert kind == "Output", kind
        values[name] = value
    return values, closest, order


@pytest.mark.parametrize("per", ["synapse", "channel"])
def test_the_exported_graph_simulated_in_numpy_fires_as_the_evaluated_model(per):
    """Every layer's spikes, from a numpy simulation of the graph's nodes, equal the model's evaluated
    (rounded-delay) spikes; the Delay nodes hold steps x dt seconds and dt is in the metadata."""
    model = _model(per)
    graph = snir.to_nir(model, dt=DT)
    assert graph.metadata == {"dt": DT}
    x = _inputs()
    _, layers = model(jnp.asarray(x), return_layers=True)
    values, closest, neurons_in_order = _simulate(graph, x, DT)
    assert neurons_in_order == ["lif0", "lif1"]
    for k, name in enumerate(neurons_in_order):
        np.testing.assert_array_equal(np.asarray(layers[k + 1]), values[name])
        assert 0 < values[name].sum() < values[name].size
    assert closest > 1e-4  # no membrane within float32 rounding of a threshold: equality is meaningful
    np.testing.assert_array_equal(values["output"], values["lif1"])

    for k, layer in enumerate(model.layers):  # the layout, layer by layer
        steps = np.asarray(delays.rounded(layer.delay[...], 4))
        kernel = np.asarray(layer.kernel[...])
        gain = 1 / (1 - 0.8)
        if per == "channel":
            np.testing.assert_allclose(graph.nodes[f"delay{k}"].delay, steps * DT, rtol=1e-12)
            assert (f"delay{k}", f"linear{k}") in graph.edges
            np.testing.assert_allclose(graph.nodes[f"linear{k}"].weight, kernel.T * gain, rtol=1e-6)
            continue
        taus = np.unique(steps)
        assert len(taus) > 1 and taus.max() > 0  # delays of several values: not vacuous
        total = np.zeros_like(kernel.T)
        for tau in taus:
            linear = graph.nodes[f"linear{k}_d{tau}"]
            assert type(linear).__name__ == ("Affine" if tau == taus[0] else "Linear")
            assert (f"linear{k}_d{tau}", f"lif{k}") in graph.edges
            weight = np.asarray(linear.weight)
            assert np.all(weight[steps.T != tau] == 0)  # each synapse in the branch of its own delay only
            total += weight
            if tau == 0:
                assert f"delay{k}_d0" not in graph.nodes  # the 0-step branch has no Delay node
            else:
                np.testing.assert_allclose(graph.nodes[f"delay{k}_d{tau}"].delay, tau * DT, rtol=1e-12)
        np.testing.assert_allclose(total, kernel.T * gain, rtol=1e-6)


@pytest.mark.parametrize("per,bias,init", [("synapse", True, "uniform"), ("channel", True, "uniform"),
                                           ("synapse", False, "uniform"), ("synapse", True, "zero"),
                                           ("channel", True, "zero")])
def test_delayed_models_round_trip_through_a_nir_file_spike_for_spike(per, bias, init, tmp_path):
    """from_nir reads the file's dt from its metadata and its Delay nodes as exact shifts: every layer's
    spikes equal the evaluated model's. Delays all 0 write no Delay node: the SpikingMLP's graph."""
    model = _model(per, bias=bias, init=init)
    path = str(tmp_path / "model.nir")
    graph = snir.to_nir(model, dt=DT)
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert ("Delay" in kinds) == (init == "uniform")
    assert ("Affine" in kinds) == bias
    if init == "zero":
        assert list(graph.nodes) == ["input", "linear0" if per == "channel" else "linear0_d0", "lif0",
                                     "linear1" if per == "channel" else "linear1_d0", "lif1", "output"]
    snir.write(graph, path)
    network = snir.from_nir(path)
    assert network.dt == DT
    x = _inputs(seed=3)
    out, layers = model(jnp.asarray(x), return_layers=True)
    out_nir, layers_nir = network(jnp.asarray(x), return_layers=True)
    assert len(layers) == len(layers_nir) == 3
    for mine, theirs in zip(layers[1:], layers_nir[1:]):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))
        assert 0 < np.asarray(theirs).sum()
    np.testing.assert_array_equal(np.asarray(out), np.asarray(out_nir))


def _delay_graph(delay, dt=None):
    nodes = {"in": nir.Input(input_type=np.array([3])), "delay": nir.Delay(delay=delay),
             "out": nir.Output(output_type=np.array([3]))}
    return nir.NIRGraph(nodes=nodes, edges=[("in", "delay"), ("delay", "out")],
                        metadata={} if dt is None else {"dt": dt})


def test_a_delay_node_shifts_by_whole_steps_and_refuses_what_is_not_one():
    x = _inputs(steps=12, batch=2, features=3, seed=5)
    for delay, dt, steps in [
            (np.array([0.0, 2e-3, 5e-3]), 1e-3, [0, 2, 5]),
            (np.array([0.0, 2e-3, 5e-3], np.float32), 1e-3, [0, 2, 5]),  # float32 seconds: within rounding
            (np.zeros(3), 1e-3, [0, 0, 0]),  # a Delay node of zeros is the identity
            (np.array([3e-4, 1e-4, 0.0]), None, [3, 1, 0]),  # no dt anywhere: DEFAULT_DT = 1e-4
            (np.array([0.0, 4e-3, 20e-3]), 1e-3, [0, 4, 20])]:  # longer than the input: all zeros
        network = snir.from_nir(_delay_graph(delay, dt))
        expected = np.zeros_like(x)
        for c, d in enumerate(steps):
            expected[d:, :, c] = x[:max(x.shape[0] - d, 0), :, c]
        np.testing.assert_array_equal(np.asarray(network(jnp.asarray(x))), expected)
    assert snir.from_nir(_delay_graph(np.full(3, 2e-3), 1e-3), dt=5e-4).dt == 5e-4  # an explicit dt wins
    with pytest.raises(snir.NIRError, match="node 'delay' \\(Delay\\) field 'delay' holds 0.0025 s at index \\(1,\\), "
                                            "2.5 steps of dt = 0.001 s: spikejax delays by whole steps only"):
        snir.from_nir(_delay_graph(np.array([1e-3, 2.5e-3, 0.0]), 1e-3))
    with pytest.raises(snir.NIRError, match="node 'delay' \\(Delay\\) field 'delay' = -0.001 s: a delay must be >= 0"):
        snir.from_nir(_delay_graph(np.array([-1e-3, 0.0, 0.0]), 1e-3))
    with pytest.raises(snir.NIRError, match="node 'delay' \\(Delay\\) field 'delay' holds 1 non-finite"):
        snir.from_nir(_delay_graph(np.array([np.nan, 0.0, 0.0]), 1e-3))
    with pytest.raises(snir.NIRError, match="more than 1,073,741,824"):
        snir.from_nir(_delay_graph(np.array([1e9, 0.0, 0.0]), 1e-3))
    with pytest.raises(snir.NIRError, match="the graph's metadata 'dt' must be finite and > 0, got -0.001"):
        snir.from_nir(_delay_graph(np.zeros(3), -1e-3))


def test_what_the_delayed_export_cannot_write_is_refused_naming_the_numbers():
    model = _model("synapse", sizes=(10, 12, 4))
    values = len(np.unique(np.asarray(delays.rounded(model.layers[0].delay[...], 4))))
    with pytest.raises(snir.NIRError, match=f"layer 0: its per-synapse delays take {values} distinct values, written "
                       f"as {values} branches of Delay \\[10\\] \\+ Linear \\[12, 10\\] \\({values * 130:,} numbers\\);"
                       ".*more than max_parameters = 100.*model.delay.per='channel'"):
        snir.to_nir(model, max_parameters=100)
    neuron = models.Neuron(beta=0.8, threshold=1.0, reset="subtract")
    subtract = models.build("delay_mlp", (10,), 4, neuron, seed=0, hidden=(12,), delay=models.Delay(kernel_size=4))
    with pytest.raises(snir.NIRError, match="NIR has no subtractive reset"):
        snir.to_nir(subtract)


@pytest.mark.slow
def test_export_command_writes_a_trained_delay_mlp_run(digits_data_dir, tmp_path):
    """A delay_mlp run trained for 2 steps on digits_events, exported by `python -m experiments.export`:
    the file, read with the dt in its metadata, gives the run's evaluated output spikes."""
    import contextlib
    import io
    import subprocess
    import sys

    from flax import nnx

    from spikejax import data, runs, train
    from tests.test_train import REPO, small_config

    workdir = str(tmp_path / "delayed")
    config = small_config(digits_data_dir, max_steps=2, **{
        "model.name": "delay_mlp", "model.hidden": (8,), "model.delay.kernel_size": 3,
        "model.neuron.reset": "zero"})
    with contextlib.redirect_stdout(io.StringIO()):
        train.train_and_evaluate(config, workdir)
    out = subprocess.run([sys.executable, "-m", "experiments.export", f"--workdir={workdir}", "--dt=1e-3"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "checkpoint step 2" in out.stdout
    network = snir.from_nir(f"{workdir}/model.nir")
    assert network.dt == 1e-3
    assert {type(n).__name__ for n in network.nodes.values()} >= {"Delay", "Affine", "LIF"}
    run = runs.restore(runs.saved_config(workdir), workdir)
    model = nnx.merge(run.graphdef, run.state["params"])
    split = data.load("digits_events", "test", data_dir=digits_data_dir)
    x = np.moveaxis(split.dense(np.arange(8)).astype(np.float32), 1, 0)
    mine, mine_layers = model(jnp.asarray(x), return_layers=True)
    theirs, theirs_layers = network(jnp.asarray(x.reshape(x.shape[:2] + (-1,))), return_layers=True)
    assert np.asarray(mine_layers[1]).sum() > 0
    np.testing.assert_array_equal(np.asarray(mine_layers[1]), np.asarray(theirs_layers[1]))
    np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))
