"""spikejax <-> NIR <-> snnTorch and Norse, spike for spike, and NeuroBench's energy figures (marker `interop`).

Needs the pinned `interop` extra, which CI does not install (torch is large); without it the module is
skipped, naming the missing packages:

  pip install -e ".[test,interop]"     # torch 2.13.0 from the default index (its CUDA build, runs on CPU)
  python -m pytest -q -m interop tests/test_nir_interop.py

Exported models are trained for a few steps on digits_events with `reset="zero"` and run on 64 test
samples of its test split, with their weights on a grid on which every layer's current is exact in float32
(`GRID_BITS`), so that the frameworks must agree spike for spike. The imported frameworks' Flatten(0) would
flatten the batch too (see spikejax.nir), so the check sets their Flatten modules to start at dimension 1.
"""
import contextlib
import importlib.util
import io
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.interop
MISSING = [name for name in ("torch", "snntorch", "norse", "nir") if importlib.util.find_spec(name) is None]
if MISSING:
    pytest.skip(f"the cross-framework NIR checks need the interop extra ({', '.join(MISSING)} not installed): "
                'pip install -e ".[test,interop]"', allow_module_level=True)

import jax.numpy as jnp  # noqa: E402
import nir  # noqa: E402
import norse.torch as norse  # noqa: E402
import snntorch  # noqa: E402
import torch  # noqa: E402

from spikejax import build, data, evaluate, runs, train  # noqa: E402
from spikejax import nir as snir  # noqa: E402
from tests.test_train import REPO, small_config  # noqa: E402

DT = 1e-4  # snnTorch's importer assumes this step
SAMPLES = 64


def _trained(data_dir, workdir, **overrides):
    from flax import nnx

    config = small_config(data_dir, max_steps=10, **{"model.neuron.reset": "zero", "model.hidden": (64,),
                                                      **overrides})
    with contextlib.redirect_stdout(io.StringIO()):
        train.train_and_evaluate(config, workdir)
    run = runs.restore(config, workdir)
    state, graphdef = run.state, run.graphdef
    return nnx.merge(graphdef, state["params"]), config


# Every weight and bias is rounded to a multiple of 2^-GRID_BITS before export (`_on_grid`). A layer's inputs
# are multiples of 1/4 (0/1 spikes, or the conv net's 2x2 average pool of them), so every product w * x and
# every partial sum of a layer's current is a multiple of 2^-(GRID_BITS + 2); while each partial sum stays
# below 2^(24 - GRID_BITS - 2) in magnitude it fits float32's 24-bit significand exactly, and the current is
# the same in any order of summation (XLA's, oneDNN's, a GEMM's blocking on any vector width). Without the
# grid, torch sums a convolution's taps in another order than XLA, a membrane within rounding of the
# threshold flips and the flip spreads (24 of 2,360 conv-net output spikes, 2026-12-04). The neuron updates
# then see equal currents, and the frameworks' update equations are compared exactly.
GRID_BITS = 12


def _on_grid(model):
    """Rounds every kernel and bias of `model` in place to multiples of 2^-GRID_BITS and checks that no partial
    sum of any layer's current can leave the exact range: for each output unit, the sum over its fan-in of
    |w| * max|x| (max|x| = 1) plus |b| below 2^(24 - GRID_BITS - 2)."""
    from flax import nnx

    limit = 2.0 ** (24 - GRID_BITS - 2)
    for _, layer in nnx.iter_graph(model):
        if not isinstance(layer, (nnx.Linear, nnx.Conv)):
            continue
        kernel = np.round(np.asarray(layer.kernel[...], np.float64) * 2**GRID_BITS) / 2**GRID_BITS
        layer.kernel[...] = jnp.asarray(kernel, jnp.float32)
        bound = np.abs(kernel.reshape(-1, kernel.shape[-1])).sum(axis=0)
        if layer.bias is not None:
            bias = np.round(np.asarray(layer.bias[...], np.float64) * 2**GRID_BITS) / 2**GRID_BITS
            layer.bias[...] = jnp.asarray(bias, jnp.float32)
            bound = bound + np.abs(bias)
        assert bound.max() < limit, f"a partial sum may reach {bound.max():.1f}, past float32's exact {limit:.0f}"
    return model


def _test_inputs(data_dir, flat: bool) -> np.ndarray:
    split = data.load("digits_events", "test", data_dir=data_dir)
    x = np.moveaxis(split.dense(np.arange(SAMPLES)).astype(np.float32), 1, 0)  # [T, B, P, H, W]
    return x.reshape(x.shape[:2] + (-1,)) if flat else x


def _run_torch(module, x, stateful: bool) -> np.ndarray:
    for sub in module.modules():
        if isinstance(sub, torch.nn.Flatten):
            sub.start_dim = 1
    out, state = [], None
    with torch.no_grad():
        for t in range(x.shape[0]):
            if stateful:
                y, state = module(torch.tensor(x[t]), state)
            else:
                y = module(torch.tensor(x[t]))
                y = y[0] if isinstance(y, tuple) else y
            out.append(y.numpy())
    return np.stack(out)


def _in_snntorch(graph, x):
    from snntorch import utils
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # it prints a warning per layer about its w_scale hack
        module = import_from_nir(graph)
    utils.reset(module)
    return _run_torch(module, x, stateful=False)


def _in_norse(graph, x):
    return _run_torch(norse.from_nir(graph, dt=DT), x, stateful=True)


# learned: per-neuron beta and alpha, moved by 10 steps at 100x the rate, exported as arrays (not the
# threshold: snnTorch 1.0's importer takes one threshold per layer)
LEARNED = {"model.neuron.learn_beta": True, "model.neuron.learn_alpha": True, "optimizer.warmup_steps": 0,
           "optimizer.neuron_learning_rate_scale": 100.0}


@pytest.mark.parametrize("model,kind,learned", [("mlp", "lif", False), ("mlp", "cuba_lif", False),
                                                ("conv", "lif", False), ("mlp", "cuba_lif", True)])
def test_exported_models_spike_identically_in_snntorch_and_norse(digits_data_dir, tmp_path, model, kind, learned):
    extra = LEARNED if learned else {}
    trained, _ = _trained(digits_data_dir, str(tmp_path / "run"), **{"model.name": model,
                                                                      "model.neuron.kind": kind, **extra})
    trained = _on_grid(trained)
    path = str(tmp_path / "model.nir")
    nir.write(path, snir.to_nir(trained, dt=DT))
    graph = nir.read(path)
    if learned:
        node = graph.nodes["cubalif0"]
        assert np.ptp(node.tau_mem) > 0 and np.ptp(node.tau_syn) > 0
    x = _test_inputs(digits_data_dir, flat=model == "mlp")
    mine = np.asarray(trained(jnp.asarray(_test_inputs(digits_data_dir, flat=False))))
    assert 0 < mine.sum() < mine.size
    counts = {name: int(np.sum(theirs != mine))
              for name, theirs in (("snnTorch", _in_snntorch(graph, x)), ("Norse", _in_norse(graph, x)))}
    for name, mismatches in counts.items():
        print(f"{model}/{kind}{' learned' if learned else ''} in {name}: {mismatches} of {int(mine.sum())} "
              "output spikes differ")
    assert all(m == 0 for m in counts.values()), counts


def test_a_subtractive_reset_exported_approximately_differs(digits_data_dir, tmp_path):
    """What approximate=True costs: the same trained weights, run with NIR's reset to zero."""
    trained, _ = _trained(digits_data_dir, str(tmp_path / "run"), **{"model.neuron.reset": "subtract"})
    graph = snir.to_nir(trained, dt=DT, approximate=True)
    mine = np.asarray(trained(jnp.asarray(_test_inputs(digits_data_dir, flat=False))))
    theirs = _in_snntorch(graph, _test_inputs(digits_data_dir, flat=True))
    differ = int(np.sum(theirs != mine))
    print(f"subtractive reset exported with approximate=True: {differ} of {int(mine.sum())} output spikes differ")
    assert differ > 0


def _drive(seed=0, steps=25, batch=8, features=20):
    return (np.random.default_rng(seed).random((steps, batch, features)) < 0.3).astype(np.float32)


def test_graphs_exported_by_snntorch_and_norse_run_in_spikejax_with_their_spikes():
    """snnTorch: Linear + Leaky(reset zero, per-neuron beta/threshold), its own export; Norse: Linear +
    LIFBoxCell at dt = 1e-4. Norse 1.1.0 writes tau = dt / tau_mem_inv, which its own importer reads back
    as tau_mem_inv / dt: exporting with dt=1 writes the true tau = 1 / tau_mem_inv. Norse's Input node takes
    the shape of the sample it is given, so it is given one sample ([20]; a batch [1, 20] would declare
    inputs that its Linear node does not take, which spikejax refuses)."""
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    x = _drive()
    leaky = lambda n, beta, threshold: snntorch.Leaky(
        beta=torch.full((n,), beta), threshold=torch.full((n,), threshold), reset_mechanism="zero",
        reset_delay=False, init_hidden=True)
    net = torch.nn.Sequential(torch.nn.Linear(20, 16), leaky(16, 0.9, 1.0), torch.nn.Linear(16, 5),
                              leaky(5, 0.8, 0.7))
    for layer in (net[0], net[2]):
        layer.weight.data *= 3
    with contextlib.redirect_stdout(io.StringIO()):
        graph = export_to_nir(net, torch.zeros(1, 20), ignore_dims=[0])
    utils.reset(net)
    with torch.no_grad():
        reference = np.stack([net(torch.tensor(x[t])).numpy() for t in range(len(x))])
    ours = np.asarray(snir.from_nir(graph, dt=DT)(jnp.asarray(x)))
    assert 0 < reference.sum() and np.array_equal(ours, reference)

    cell = lambda inv, threshold: norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.tensor(inv),
                                                                          v_th=torch.tensor(threshold)), dt=DT)
    model = norse.SequentialState(torch.nn.Linear(20, 16), cell(500.0, 1.0), torch.nn.Linear(16, 5), cell(300.0, 0.7))
    for layer in (model[0], model[2]):
        layer.weight.data *= 80
    graph = norse.to_nir(model, torch.zeros(20), dt=1.0)  # one sample: Norse writes the shape it is given
    reference = _run_torch(model, x, stateful=True)
    ours = np.asarray(snir.from_nir(graph, dt=DT)(jnp.asarray(x)))
    assert 0 < reference.sum() and np.array_equal(ours, reference)


class _Stepper(torch.nn.Module):
    """The imported snnTorch graph in the (spikes, state) form NeuroBench's SNNTorchModel steps through."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def reset(self):
        from snntorch import utils

        utils.reset(self.net)

    def forward(self, x):
        y = self.net(x)
        return (y[0] if isinstance(y, tuple) else y), None


@pytest.mark.parametrize("model", ["mlp", "conv"])
def test_neurobench_through_snntorch_gives_spikejax_energy_figures(digits_data_dir, tmp_path, model):
    """NeuroBench 2.3's SynapticOperations and ActivationSparsity, measured on the exported model run in
    snnTorch, against eval.json's `neurobench` figures computed by spikejax on the same 64 test samples."""
    pytest.importorskip("neurobench", reason='NeuroBench is in the interop extra: pip install -e ".[test,interop]"')
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import SNNTorchModel
    from snntorch.import_nir import import_from_nir

    trained, config = _trained(digits_data_dir, str(tmp_path / "run"), **{"model.name": model})
    trained = _on_grid(trained)  # the same spikes in both frameworks (see GRID_BITS)
    with contextlib.redirect_stdout(io.StringIO()):
        net = import_from_nir(snir.to_nir(trained, dt=DT))
    for sub in net.modules():
        if isinstance(sub, torch.nn.Flatten):
            sub.start_dim = 1
    x = _test_inputs(digits_data_dir, flat=model == "mlp")
    labels = data.load("digits_events", "test", data_dir=digits_data_dir).labels[:SAMPLES]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
        torch.tensor(np.moveaxis(x, 0, 1)), torch.tensor(labels)), batch_size=SAMPLES)
    benchmark = Benchmark(SNNTorchModel(_Stepper(net)), loader, [], [], [[], [SynapticOperations, ActivationSparsity]])
    theirs = benchmark.run(quiet=True)
    from flax import nnx

    graphdef, params = nnx.split(trained)
    sums = evaluate.eval_step(params, jnp.asarray(_test_inputs(digits_data_dir, flat=False)), jnp.asarray(labels),
                              jnp.ones(SAMPLES), graphdef=graphdef, loss_fn=lambda *a, **k: 0.0,
                              readout_fn=build.readout(config), fan_out=trained.fan_out)
    mine = evaluate.neurobench_summary(sums["neurobench"], SAMPLES)
    ops = theirs["SynapticOperations"]
    print(f"{model}: NeuroBench {ops} sparsity {theirs['ActivationSparsity']:.6f}; spikejax {mine}")
    assert mine["effective_acs"] == pytest.approx(ops["Effective_ACs"], rel=1e-6)
    assert mine["effective_macs"] == pytest.approx(ops["Effective_MACs"], rel=1e-6)
    assert mine["dense"] == pytest.approx(ops["Dense"], rel=1e-6)
    assert mine["activation_sparsity"] == pytest.approx(theirs["ActivationSparsity"], abs=1e-9)


def test_the_nir_tutorial_runs_with_the_interop_extra(digits_data_dir):
    """docs/tutorials/nir_interop.py, which the docs build executes only where torch is installed (not in CI):
    run here, its assertions (0 differing spikes both ways) are checked wherever the interop tests run."""
    result = subprocess.run([sys.executable, os.path.join("docs", "tutorials", "nir_interop.py")], cwd=REPO,
                            env={**os.environ, "SPIKEJAX_DATA_DIR": digits_data_dir, "MPLBACKEND": "Agg"},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "snnTorch: 0 of" in result.stdout and "Norse: 0 of" in result.stdout
