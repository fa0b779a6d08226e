"""NIR export and import inside spikejax: the parameter mapping against its closed form, a hand-built
graph against a plain numpy Euler loop, IF read per step (v += r I, dt unused), spikejax models
round-tripped through a .nir file, the NIR paper's Sinabs CNN (tests/data/cnn_sinabs.nir) against a numpy
reference, and the refusals. Malformed files and the export command's faults are in
tests/test_nir_faults.py; cross-framework checks (snnTorch, Norse) in tests/test_nir_interop.py."""
import dataclasses
import os

import numpy as np
import pytest

nir = pytest.importorskip("nir")

import jax.numpy as jnp  # noqa: E402

from spikejax import models  # noqa: E402
from spikejax import nir as snir  # noqa: E402

FRAME = (2, 12, 12)
CNN_SINABS = os.path.join(os.path.dirname(__file__), "data", "cnn_sinabs.nir")


def _spikes(shape, seed=0, rate=0.2):
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.float32)


def _model(name, kind, reset="zero", bias=True, learned=False, beta=0.9):
    """With `learned`, per-neuron beta and threshold (and alpha for cuba_lif) set to random values, as
    training would leave them."""
    learn = dict(learn_beta=True, learn_threshold=True, learn_alpha=kind == "cuba_lif") if learned else {}
    neuron = models.Neuron(kind=kind, beta=beta, alpha=0.7, threshold=1.0, reset=reset, **learn)
    model = models.build(name, FRAME, 5, neuron, seed=0, hidden=(32,), init_scale=6.0, bias=bias)
    rng = np.random.default_rng(5)
    for layer in model.spiking:
        for key in neuron.learned:
            raw = getattr(layer, f"{key}_raw")
            raw[...] = raw[...] + jnp.asarray(rng.normal(0.0, 0.5, raw[...].shape), jnp.float32)
    return model


def test_export_writes_the_euler_mapping():
    dt = 1e-3
    model = _model("mlp", "lif")
    graph = snir.to_nir(model, dt=dt)
    lif = graph.nodes["lif0"]
    np.testing.assert_allclose(lif.tau, dt / (1 - 0.9), rtol=1e-6)  # beta = 1 - dt/tau
    np.testing.assert_array_equal(lif.r, 1.0)
    np.testing.assert_array_equal(lif.v_reset, 0.0)
    kernel = np.asarray(model.layers[0].kernel[...])
    np.testing.assert_allclose(graph.nodes["linear0"].weight, kernel.T / (1 - 0.9), rtol=1e-5)
    assert [e for e in graph.edges] == [("input", "linear0"), ("linear0", "lif0"), ("lif0", "linear1"),
                                        ("linear1", "lif1"), ("lif1", "output")]
    cuba = snir.to_nir(_model("mlp", "cuba_lif"), dt=dt).nodes["cubalif0"]
    np.testing.assert_allclose(cuba.tau_syn, dt / (1 - 0.7), rtol=1e-6)
    np.testing.assert_allclose(cuba.w_in, 1 / (1 - 0.7), rtol=1e-6)
    np.testing.assert_allclose(cuba.r, 1 / (1 - 0.9), rtol=1e-6)


def test_a_hand_built_graph_runs_as_a_numpy_euler_loop():
    """Affine -> LIF with per-neuron tau, r, v_leak and threshold -> Affine -> CubaLIF -> Affine -> IF,
    against forward Euler written out in numpy (IF per step), spike for spike."""
    rng = np.random.default_rng(1)
    dt, steps, batch = 1e-3, 25, 3
    w1, b1 = rng.normal(1.5, 2.0, (6, 4)).astype(np.float32), rng.normal(0, 0.2, 6).astype(np.float32)
    w2 = rng.normal(0.5, 1.0, (5, 6)).astype(np.float32)
    w3 = rng.normal(0.5, 1.0, (3, 5)).astype(np.float32)
    tau = rng.uniform(2e-3, 2e-2, 6).astype(np.float32)
    r, leak = rng.uniform(0.5, 2.0, 6).astype(np.float32), rng.uniform(-0.2, 0.3, 6).astype(np.float32)
    thr = rng.uniform(0.5, 1.5, 6).astype(np.float32)
    tau_syn, tau_mem = np.full(5, 4e-3, np.float32), np.full(5, 1e-2, np.float32)
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type=np.array([4])),
        "a1": nir.Affine(weight=w1, bias=b1),
        "lif": nir.LIF(tau=tau, r=r, v_leak=leak, v_threshold=thr),
        "a2": nir.Linear(weight=w2),
        "cuba": nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=np.full(5, 3.0, np.float32),
                            v_leak=np.zeros(5, np.float32), v_threshold=np.full(5, 0.8, np.float32),
                            w_in=np.full(5, 2.0, np.float32)),
        "a3": nir.Linear(weight=w3),
        "if": nir.IF(r=np.full(3, 0.4, np.float32), v_threshold=np.full(3, 1.0, np.float32)),
        "out": nir.Output(output_type=np.array([3]))},
        edges=[("in", "a1"), ("a1", "lif"), ("lif", "a2"), ("a2", "cuba"), ("cuba", "a3"), ("a3", "if"),
               ("if", "out")])
    x = _spikes((steps, batch, 4), seed=2, rate=0.4)

    def euler(current, decay, gain, bias, threshold):
        v, s, out = np.zeros(current.shape[1:]), np.zeros(current.shape[1:]), []
        for t in range(steps):
            v = decay * v * (1 - s) + gain * current[t] + bias   # reset to 0 after a spike, then integrate
            s = (v > threshold).astype(np.float64)
            out.append(s)
        return np.stack(out)

    s1 = euler(x @ w1.T + b1, 1 - dt / tau, dt * r / tau, dt * leak / tau, thr)
    syn, i = [], np.zeros((batch, 5))
    for t in range(steps):
        i = (1 - dt / tau_syn) * i + dt * 2.0 / tau_syn * (s1[t] @ w2.T)
        syn.append(i)
    s2 = euler(np.stack(syn), 1 - dt / tau_mem, dt * 3.0 / tau_mem, 0.0, 0.8)
    s3 = euler(s2 @ w3.T, 1.0, 0.4, 0.0, 1.0)  # IF: v[t] = v[t-1] + r I[t], no dt
    out, layers = snir.from_nir(graph, dt=dt)(jnp.asarray(x), return_layers=True)
    for mine, theirs in zip(layers[1:], (s1, s2, s3)):
        np.testing.assert_array_equal(np.asarray(mine), theirs)
    assert all(0 < s.sum() < s.size for s in (s1, s2, s3)), [s.sum() for s in (s1, s2, s3)]  # not vacuous
    np.testing.assert_array_equal(np.asarray(out), s3)


def test_if_is_read_per_step_with_dt_unused():
    """NIR IF as Sinabs, Norse and snnTorch read it: v[t] = v[t-1] + r I[t], reset to 0 after a spike,
    per-neuron r and threshold; the same spikes whatever dt (numpy loop as the reference)."""
    rng = np.random.default_rng(3)
    steps, batch = 40, 5
    weight = rng.normal(0.3, 0.5, (6, 4)).astype(np.float32)
    r = rng.uniform(0.2, 1.5, 6).astype(np.float32)
    threshold = rng.uniform(0.8, 2.0, 6).astype(np.float32)
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type=np.array([4])), "w": nir.Linear(weight=weight),
        "if": nir.IF(r=r, v_threshold=threshold), "out": nir.Output(output_type=np.array([6]))},
        edges=[("in", "w"), ("w", "if"), ("if", "out")])
    x = _spikes((steps, batch, 4), seed=4, rate=0.5)
    current = x.astype(np.float64) @ weight.T.astype(np.float64)
    v, s, reference = np.zeros((batch, 6)), np.zeros((batch, 6)), []
    for t in range(steps):
        v = v * (1 - s) + r * current[t]
        s = (v > threshold).astype(np.float64)
        reference.append(s)
    reference = np.stack(reference)
    assert 0.05 < reference.mean() < 0.5, reference.mean()  # not vacuous
    for dt in (1e-4, 1e-3, 1.0):
        np.testing.assert_array_equal(np.asarray(snir.from_nir(graph, dt=dt)(jnp.asarray(x))), reference)


def test_beta_one_exports_as_if_with_r_one():
    """beta = 1 is v[t] = v[t-1] + I[t]: IF with r = 1, the weights unscaled, whatever dt."""
    model = _model("mlp", "lif", beta=1.0)
    for dt in (1e-4, 1e-3):
        graph = snir.to_nir(model, dt=dt)
        assert [type(graph.nodes[f"if{i}"]).__name__ for i in (0, 1)] == ["IF", "IF"]
        for i in (0, 1):
            np.testing.assert_array_equal(graph.nodes[f"if{i}"].r, 1.0)
            np.testing.assert_array_equal(graph.nodes[f"if{i}"].v_threshold, 1.0)
            np.testing.assert_array_equal(graph.nodes[f"linear{i}"].weight, np.asarray(model.layers[i].kernel[...]).T)


def test_a_neuron_kind_without_nir_mapping_is_refused_by_name():
    """A neuron kind the models know but NIR export does not is an error naming it, not a LIF export."""

    @dataclasses.dataclass(frozen=True)
    class NewNeuron(models.Neuron):
        def __post_init__(self):  # a kind added to the models without a NIR mapping
            pass

    neuron = NewNeuron(kind="adaptive_lif", beta=0.9, threshold=1.0, reset="zero")
    model = models.build("mlp", FRAME, 5, neuron, seed=0, hidden=(8,))
    with pytest.raises(snir.NIRError, match="neuron kind 'adaptive_lif' has no NIR mapping.*lif, cuba_lif"):
        snir.to_nir(model)


def _conv_reference(x, weight, stride, padding):
    """x [N, C, H, W] (float64), weight [O, C, kh, kw] -> [N, O, H', W'], a cross-correlation as NIR's Conv2d."""
    kh, kw = weight.shape[2:]
    x = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    height = (x.shape[2] - kh) // stride[0] + 1
    width = (x.shape[3] - kw) // stride[1] + 1
    out = np.zeros((x.shape[0], weight.shape[0], height, width))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i:i + stride[0] * height:stride[0], j:j + stride[1] * width:stride[1]]
            out += np.einsum("nchw,oc->nohw", patch, weight[:, :, i, j].astype(np.float64))
    return out


def test_the_nir_papers_sinabs_cnn_fires_as_a_numpy_if_loop():
    """The NIR paper's N-MNIST CNN as Sinabs exported it (IF, r = 1; the file from neuromorphs/NIR, see
    tests/data/cnn_sinabs.LICENSE), read from its file: its first IF layer spikes as a numpy conv + IF
    loop, every layer fires at a plausible rate, and dt changes nothing (read through dt, as spikejax
    did, it fired no spike at all at dt = 1e-4)."""
    steps, batch = 60, 3
    x = _spikes((steps, batch, 2, 34, 34), seed=7, rate=0.05)  # N-MNIST-like event frames
    graph = nir.read(CNN_SINABS)
    conv = graph.nodes["0"]
    out, layers = snir.from_nir(CNN_SINABS)(jnp.asarray(x), return_layers=True)
    rates = [float(np.asarray(layer).mean()) for layer in layers[1:]]
    assert len(rates) == 5 and all(0 < rate < 0.5 for rate in rates), rates
    assert 0 < np.asarray(out).sum() < 0.5 * np.asarray(out).size

    current, magnitude = (_conv_reference(a.reshape(-1, 2, 34, 34).astype(np.float64), w, (2, 2), (1, 1))
                          for a, w in ((x, conv.weight), (np.abs(x), np.abs(conv.weight))))
    current, magnitude = (a.reshape((steps, batch) + a.shape[1:]) for a in (current, magnitude))
    # float32 rounding: a step's current sums 50 products, |error| <= 49 u sum|w x| (u = eps/2), and adding
    # it to v rounds once more (<= u |v|). Summed over the run, that bounds how far spikejax's membrane can
    # lie from the float64 one; neurons whose reference membrane came closer than this to the threshold
    # may flip (and a flip changes all later steps), so they are left out.
    u = np.finfo(np.float32).eps / 2
    v, s, bound = (np.zeros(current.shape[1:]) for _ in range(3))
    reference, margin = [], np.full(current.shape[1:], np.inf)
    for t in range(steps):
        v = v * (1 - s) + current[t]
        bound = bound + 49 * u * magnitude[t] + u * np.abs(v)
        s = (v > 1.0).astype(np.float64)
        reference.append(s)
        margin = np.minimum(margin, np.abs(v - 1.0) - bound)
    reference = np.stack(reference)
    clear = margin > 0  # [B, O, H, W]
    assert clear.mean() > 0.98, clear.mean()
    mine = np.asarray(layers[1])
    np.testing.assert_array_equal(mine[:, clear], reference[:, clear])
    assert reference[:, clear].sum() > 0
    for dt in (1e-3, 1.0):
        np.testing.assert_array_equal(np.asarray(snir.from_nir(CNN_SINABS, dt=dt)(jnp.asarray(x))),
                                      np.asarray(out))


@pytest.mark.parametrize("name,kind,bias,learned", [
    ("mlp", "lif", True, False), ("mlp", "cuba_lif", True, False), ("conv", "lif", True, False),
    ("conv", "cuba_lif", True, False), ("mlp", "lif", False, False), ("conv", "lif", False, False),
    ("mlp", "cuba_lif", True, True), ("conv", "lif", True, True),  # learned: per-neuron arrays in the file
    ("mlp", "if", True, False), ("conv", "if", True, False)])  # "if": beta = 1, written as IF nodes
def test_spikejax_models_round_trip_through_a_nir_file_spike_for_spike(name, kind, bias, learned, tmp_path):
    model = _model(name, "lif", bias=bias, beta=1.0) if kind == "if" else _model(name, kind, bias=bias,
                                                                                  learned=learned)
    path = str(tmp_path / "model.nir")
    graph = snir.to_nir(model)
    assert (kind == "if") == ("IF" in {type(n).__name__ for n in graph.nodes.values()})
    assert {type(n).__name__ for n in graph.nodes.values()} >= ({"Affine"} if bias else {"Linear"})
    assert bias or "Affine" not in {type(n).__name__ for n in graph.nodes.values()}
    if learned:  # the file holds one value per neuron, varying
        node = graph.nodes["cubalif0" if kind == "cuba_lif" else "lif0"]
        for array in (node.tau_mem if kind == "cuba_lif" else node.tau, node.v_threshold):
            assert np.ptp(array) > 0
    snir.write(graph, path)
    network = snir.from_nir(path)
    x = _spikes((20, 4) + FRAME)
    out, layers = model(jnp.asarray(x), return_layers=True)
    out_nir, layers_nir = network(jnp.asarray(x.reshape(20, 4, -1) if name == "mlp" else x), return_layers=True)
    assert len(layers) == len(layers_nir)
    for mine, theirs in zip(layers[1:], layers_nir[1:]):
        mine, theirs = np.asarray(mine), np.asarray(theirs)
        if mine.ndim == 5:  # spikejax computes convs in NHWC, NIR in NCHW
            mine = np.moveaxis(mine, -1, 2)
        np.testing.assert_array_equal(mine, theirs)
        assert 0 < theirs.sum()
    np.testing.assert_array_equal(np.asarray(out), np.asarray(out_nir))


def test_what_nir_or_spikejax_cannot_express_is_refused_by_name():
    with pytest.raises(snir.NIRError, match="reset='zero'"):
        snir.to_nir(_model("mlp", "lif", reset="subtract"))
    approximate = snir.to_nir(_model("mlp", "lif", reset="subtract"), approximate=True)
    assert np.all(approximate.nodes["lif0"].v_reset == 0)

    def graph(extra_nodes, edges):
        nodes = {"in": nir.Input(input_type=np.array([2])), "a": nir.Linear(weight=np.eye(2, dtype=np.float32)),
                 "lif": nir.LIF(tau=np.full(2, 1e-2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
                 "out": nir.Output(output_type=np.array([2])), **extra_nodes}
        return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)

    chain = [("in", "a"), ("a", "lif"), ("lif", "out")]
    with pytest.raises(snir.NIRError, match="'delay' \\(Delay\\).*1.5 steps of dt = 0.0001 s: spikejax delays by "
                       "whole steps only"):
        snir.from_nir(graph({"delay": nir.Delay(delay=np.full(2, 1.5e-4))}, chain + [("lif", "delay")]))
    with pytest.raises(snir.NIRError, match="recurrent edge"):
        snir.from_nir(graph({"rec": nir.Linear(weight=np.eye(2, dtype=np.float32))},
                            chain + [("lif", "rec"), ("rec", "a")]))
    with pytest.raises(snir.NIRError, match="shorter than dt"):
        snir.from_nir(graph({}, chain), dt=0.1)
    reset = graph({}, chain)
    reset.nodes["lif"].v_reset = np.full(2, -0.5)
    with pytest.raises(snir.NIRError, match="'lif' resets to v_reset = -0.5"):
        snir.from_nir(reset)


@pytest.mark.slow
def test_export_command_writes_the_trained_run_and_refuses_a_subtractive_reset(digits_data_dir, tmp_path):
    import contextlib
    import io
    import subprocess
    import sys

    from flax import nnx

    from spikejax import data, runs, train
    from tests.test_train import REPO, small_config

    workdirs = {}
    for reset in ("zero", "subtract"):
        config = small_config(digits_data_dir, max_steps=3, **{"model.neuron.reset": reset})
        workdirs[reset] = str(tmp_path / reset)
        with contextlib.redirect_stdout(io.StringIO()):
            train.train_and_evaluate(config, workdirs[reset])
    command = [sys.executable, "-m", "experiments.export", f"--workdir={workdirs['zero']}", "--dt=1e-3"]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "checkpoint step 3" in out.stdout
    network = snir.from_nir(f"{workdirs['zero']}/model.nir", dt=1e-3)
    config = runs.saved_config(workdirs["zero"])
    run = runs.restore(config, workdirs["zero"])
    state, graphdef = run.state, run.graphdef
    model = nnx.merge(graphdef, state["params"])
    split = data.load("digits_events", "test", data_dir=digits_data_dir)
    x = np.moveaxis(split.dense(np.arange(32)).astype(np.float32), 1, 0)
    mine = np.asarray(model(jnp.asarray(x)))
    theirs = np.asarray(network(jnp.asarray(x.reshape(x.shape[:2] + (-1,)))))
    assert mine.sum() > 0
    np.testing.assert_array_equal(mine, theirs)
    out = subprocess.run([sys.executable, "-m", "experiments.export", f"--workdir={workdirs['subtract']}"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "NIR has no subtractive reset" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
