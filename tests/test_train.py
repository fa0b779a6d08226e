"""Training: device-count equivalence, two processes through jax.distributed, exact resume after
SIGTERM, non-finite loss handling, refusing a conflicting config, and the command lines."""
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from spikejax import build, errors, losses, parallel, runs, train
from spikejax import step as step_lib
from tests import devices

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_config(data_dir, **overrides):
    c = default.get_config()
    c.data_dir = data_dir
    c.model.hidden = (32,)
    c.batch_size = 64
    c.eval_batch_size = 128
    c.epochs = 1
    c.max_steps = 6
    c.log_every = 1
    c.checkpoint_every_steps = 3
    c.plots = False  # the PNGs cost ~2 s a run; the tests of the plots ask for them (plots=True)
    c.update_from_flattened_dict(overrides)  # dotted names, e.g. {"model.delay.kernel_size": 3}
    return c


def _params(config, workdir):
    run = runs.restore(config, workdir)
    state, step = run.state, run.step
    return step, jax.tree.map(np.asarray, jax.device_get(state["params"]))


def _assert_trees_equal(a, b, **tolerance):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        if tolerance:
            np.testing.assert_allclose(x, y, **tolerance)
        else:
            np.testing.assert_array_equal(x, y)


@devices.needs(4)
def test_four_devices_match_one_device(digits_data_dir):
    from flax import nnx

    from spikejax import data

    # One SGD step from the same parameters. Over several steps any two reduction orders diverge in a
    # spiking network: a rounding-size difference flips one spike at the threshold, which moves a count
    # by a whole unit (measured: bit-identical after step 1, 7e-4 apart after step 2). Adam would also
    # turn rounding noise in near-zero gradients into +-lr updates.
    # learnable beta and threshold: their gradients are summed per device and across devices
    config = small_config(digits_data_dir, **{"optimizer.name": "sgd", "optimizer.learning_rate": 0.05,
                                              "model.neuron.learn_beta": True, "model.neuron.learn_threshold": True,
                                              "optimizer.warmup_steps": 0, "optimizer.schedule": "constant"})
    mesh_args = []
    split = data.load("digits_events", "train", data_dir=digits_data_dir)
    batches = [next(iter(data.TrainIterator(split, 64, seed=1, state={"epoch": 0, "position": i})))
               for i in range(1)]
    for chosen in (jax.devices()[:1], jax.devices()[:4]):
        mesh = parallel.data_mesh(chosen)
        model = build.model(config, (2, 34, 34), 10)
        graphdef, params = nnx.split(model)
        tx = build.optimizer(config, 20)
        state = build.init_state(params, tx, mesh)
        step = step_lib.parallel_train_step(mesh, graphdef=graphdef, tx=tx, loss_fn=build.loss(config),
                                         readout_fn=build.readout(config))
        for b in batches:
            state, metrics = step(state, *parallel.global_batch_arrays(mesh, b))
        assert len(state["params"]["layers"][0]["kernel"][...].sharding.device_set) == len(chosen)
        assert np.ptp(np.asarray(state["params"]["spiking"][0]["beta_raw"][...])) > 0  # per neuron, learned
        mesh_args.append((jax.device_get(state["params"]), float(metrics["loss"])))
    (one, loss_one), (four, loss_four) = mesh_args
    assert abs(loss_one - loss_four) < 1e-6
    _assert_trees_equal(one, four, rtol=1e-6, atol=1e-8)


def _start_two_processes(data_dir, workdir, *extra):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": REPO}
    env.pop("XLA_FLAGS", None)
    return [subprocess.Popen([sys.executable, "-m", "tests.multiprocess_worker", str(port), str(i), data_dir,
                              workdir, *extra], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for i in range(2)]


@pytest.mark.slow
def test_two_processes_match_single_process(digits_data_dir, tmp_path):
    shared = str(tmp_path / "multi")
    procs = _start_two_processes(digits_data_dir, shared)
    config = small_config(digits_data_dir)
    single = str(tmp_path / "single")
    result = train.train_and_evaluate(config, single)  # meanwhile, this process: 4 forced host devices
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    assert "on 4 device(s) (2 process(es)" in outputs[0]
    assert result["validation"]["num_examples"] == 143 and 0 <= result["validation"]["accuracy"] <= 1
    step_multi, multi = _params(config, shared)
    step_single, one = _params(config, single)
    assert step_multi == step_single == 6
    _assert_trees_equal(multi, one, rtol=2e-5, atol=1e-6)
    with open(os.path.join(shared, "eval.json")) as f:
        assert json.load(f)["num_examples"] == result["num_examples"] == 360


@pytest.mark.slow
def test_signal_to_one_of_two_processes_stops_both_with_a_checkpoint(digits_data_dir, tmp_path):
    shared = str(tmp_path / "multi")
    procs = _start_two_processes(digits_data_dir, shared, "long")
    metrics = os.path.join(shared, "metrics.jsonl")  # written by process 0
    deadline = time.time() + 240
    while time.time() < deadline and all(p.poll() is None for p in procs):
        if os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 3:
            break
        time.sleep(0.02)
    procs[1].send_signal(signal.SIGTERM)  # only process 1 is signalled
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert "stopped by SIGTERM" in outputs[0]
    config = small_config(digits_data_dir, epochs=2, max_steps=None, checkpoint_every_steps=1000)
    stopped_at, _ = _params(config, shared)
    assert 3 <= stopped_at < 40
    procs = _start_two_processes(digits_data_dir, shared, "long")  # resume to the end
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    assert f"at step {stopped_at}" in outputs[0]
    assert _params(config, shared)[0] == 40


@pytest.mark.slow
def test_sigterm_then_resume_matches_uninterrupted_run(digits_data_dir, tmp_path):
    overrides = ["--config.model.hidden=(32,)", "--config.log_every=1", "--config.checkpoint_every_steps=1000",
                 "--config.epochs=2"]
    workdir = str(tmp_path / "interrupted")
    command = [sys.executable, "-m", "experiments.train", "--config=configs/digits_events.py", "--config.plots=False",
               *overrides, f"--data_dir={digits_data_dir}", f"--workdir={workdir}"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = os.path.join(workdir, "metrics.jsonl")
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert "received SIGTERM" in out and "rerun the same command to resume" in out
    config = small_config(digits_data_dir, epochs=2, max_steps=None, checkpoint_every_steps=1000)
    stopped_at, _ = _params(config, workdir)
    assert 5 <= stopped_at < 40  # mid-run (20 steps per epoch)
    resumed_run = _start(command[2:])
    reference = str(tmp_path / "uninterrupted")
    train.train_and_evaluate(config, reference)  # meanwhile, in this process
    out = _finish(resumed_run)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"resumed from {workdir}/checkpoints at step {stopped_at}" in out.stdout
    step_a, resumed = _params(config, workdir)
    step_b, straight = _params(config, reference)
    assert step_a == step_b == 40
    _assert_trees_equal(resumed, straight)  # bit-identical on CPU


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(digits_data_dir, tmp_path, monkeypatch):
    config = small_config(digits_data_dir, max_steps=3)
    workdir = str(tmp_path / "nan")
    train.train_and_evaluate(config, workdir)
    _, good = _params(config, workdir)
    nll = losses.get("nll")
    nan_nll = lambda spikes, labels, **kw: nll.fn(spikes, labels, **kw) * jnp.nan
    monkeypatch.setitem(losses.registry._LOSSES, "nll", dataclasses.replace(nll, fn=nan_nll))
    # step 4 is a checkpoint step but not a logging step: the save itself must refuse the state
    nan_config = small_config(digits_data_dir, max_steps=6, log_every=100, checkpoint_every_steps=2)
    with pytest.raises(errors.NonFiniteError, match="refusing to save step 4.*step 3"):
        train.train_and_evaluate(nan_config, workdir)
    step, kept = _params(config, workdir)
    assert step == 3
    _assert_trees_equal(kept, good)


def test_learnable_neurons_are_trained_checkpointed_and_reported(digits_data_dir, tmp_path):
    """beta per neuron and threshold per layer: they move in training, the checkpoint holds the raw
    parameters, and eval.json's "neuron" reports the config and the values (sigmoid / softplus of them)."""
    config = small_config(digits_data_dir, max_steps=4, plots=True, **{"model.neuron.learn_beta": True,
                                                          "model.neuron.learn_threshold": True,
                                                          "model.neuron.learn_shape": "layer",
                                                          "optimizer.warmup_steps": 0})
    workdir = str(tmp_path / "learn")
    result = train.train_and_evaluate(config, workdir)
    step, params = _params(config, workdir)
    hidden = params["spiking"][0]
    assert step == 4 and hidden["beta_raw"].shape == () and set(hidden) == {"beta_raw", "threshold_raw"}
    beta, threshold = 1 / (1 + np.exp(-hidden["beta_raw"])), np.log1p(np.exp(hidden["threshold_raw"]))
    assert abs(beta - 0.9) > 1e-6 and abs(threshold - 1.0) > 1e-6  # trained away from the initial values
    report = json.load(open(os.path.join(workdir, "eval.json")))["neuron"]
    assert report == result["neuron"] and report["config"]["learn_shape"] == "layer"
    assert report["learned"]["layer1"]["beta"]["mean"] == pytest.approx(float(beta), rel=1e-6)
    assert report["learned"]["layer1"]["threshold"]["size"] == 1
    # the run's plots: the membrane traces' threshold is the learned output threshold (softplus(raw) + 2^-24),
    # and the output spikes the raster shows are the membrane's crossings of it (H(u - threshold), H(0) = 0)
    for name in ("spike_raster", "membrane_traces", "training_curves", "accuracy_over_time", "latency_accuracy"):
        assert open(os.path.join(workdir, f"{name}.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n", name
    from spikejax import figures

    run = runs.restore(config, workdir)
    test = build.load_split(config, "test")
    activity = figures.sample_activity(config, run.graphdef, jax.device_get(run.state["params"]), test, index=5)
    raw = np.float64(params["spiking"][1]["threshold_raw"])  # layer 1: the output layer
    assert activity.threshold == pytest.approx(np.log1p(np.exp(raw)) + 2.0 ** -24, rel=1e-6)
    assert activity.threshold != pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(activity.spikes, activity.membrane > activity.threshold)
    np.testing.assert_array_equal(activity.layers[0][1].reshape(30, -1), test.dense([5])[0].reshape(30, -1))
    assert [name for name, _ in activity.layers] == ["input", "hidden layer 1", "output"]
    assert activity.label == test.labels[5]
    for field, value, match in [("learn_alpha", True, "needs a model.neuron.kind with a synaptic decay alpha"),
                                ("beta", 1.0, "must start inside")]:
        bad = small_config(digits_data_dir, **{"model.neuron.learn_beta": True, f"model.neuron.{field}": value})
        with pytest.raises(errors.ConfigError, match=match):
            train.train_and_evaluate(bad, str(tmp_path / field))


def test_optimizer_scales_neuron_updates_and_never_decays_them(digits_data_dir):
    from flax import nnx

    def updates(**overrides):
        config = small_config(digits_data_dir, **{"model.neuron.learn_beta": True, "optimizer.name": "sgd",
                                                  "optimizer.momentum": 0.0, "optimizer.schedule": "constant",
                                                  "optimizer.warmup_steps": 0, **overrides})
        params = nnx.state(build.model(config, (2, 34, 34), 10), nnx.Param)
        grads = jax.tree.map(jnp.ones_like, params)
        tx = build.optimizer(config, 10)
        out, _ = tx.update(grads, tx.init(params), params)
        return params, out

    params, plain = updates()
    _, scaled = updates(**{"optimizer.neuron_learning_rate_scale": 30.0})
    np.testing.assert_allclose(scaled["spiking"][0]["beta_raw"][...], 30 * plain["spiking"][0]["beta_raw"][...])
    np.testing.assert_array_equal(scaled["layers"][0]["kernel"][...], plain["layers"][0]["kernel"][...])
    _, decayed = updates(**{"optimizer.weight_decay": 0.5, "optimizer.grad_clip": float("inf")})
    np.testing.assert_allclose(decayed["spiking"][0]["beta_raw"][...], -1e-3)  # the gradient only: -lr * 1
    kernel = params["layers"][0]["kernel"][...]
    np.testing.assert_allclose(decayed["layers"][0]["kernel"][...], -1e-3 * (1 + 0.5 * kernel), rtol=1e-5)


def test_conflicting_config_is_refused(digits_data_dir, tmp_path):
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(small_config(digits_data_dir, max_steps=2), workdir)
    with pytest.raises(errors.ConfigMismatchError, match=r"model.hidden: checkpoint \[32\] != now \[48\]"):
        train.train_and_evaluate(small_config(digits_data_dir, max_steps=4, **{"model.hidden": (48,)}), workdir)
    # fields that may change on resume (here max_steps) are accepted
    train.train_and_evaluate(small_config(digits_data_dir, max_steps=4), workdir)


def _run(args, **kwargs):
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                          **kwargs)


@pytest.mark.slow
def test_command_line_errors_name_the_choices():
    out = _run(["experiments.train", "--dataset=mnist"])
    assert out.returncode == 2 and "digits_events" in out.stderr and "dvs_gesture" in out.stderr
    out = _run(["experiments.train", "--loss=nl"])
    assert out.returncode != 0 and "softmax" in out.stderr
    out = _run(["experiments.train", "--epoch=1"])
    assert out.returncode != 0 and "epoch" in out.stderr
    out = _run(["experiments.train", "--config=configs/digits_events.py", "--config.optimizer.learnin_rate=1"])
    assert out.returncode != 0 and "learnin_rate" in out.stderr


@pytest.mark.slow
def _start(args, env=None, cwd=REPO):
    """A command started in the background (in `cwd`, with the repository importable); `_finish` collects it
    like `_run` (output through files, since a full pipe would stall it)."""
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    process = subprocess.Popen([sys.executable, "-m", *args], cwd=cwd, stdout=out, stderr=err, text=True, env=env)
    return process, out, err


def _finish(started):
    process, out, err = started
    process.wait(timeout=600)
    out.seek(0), err.seek(0)
    return subprocess.CompletedProcess(process.args, process.returncode, out.read(), err.read())


def test_train_evaluate_and_inspect_commands(digits_data_dir, tmp_path):
    """The three commands, finding the data through $SPIKEJAX_DATA_DIR alone (HOME elsewhere, no
    --data_dir): nothing is built or downloaded at the default location."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"SPIKEJAX_DATA_DIR": digits_data_dir, "HOME": str(home)}
    workdir = str(tmp_path / "runs")
    png = str(tmp_path / "sample.png")
    # independent of the training run, so started beside it
    inspect = _start(["experiments.inspect_data", "--dataset=digits_events", f"--out={png}"], env=env)
    refused = _start(["experiments.compare_losses", "--loss=nll", f"--workdir={workdir}"], env=env)
    out = _run(["experiments.train", "--dataset=digits_events", "--loss=softmax", "--epochs=1", "--max_steps=4",
                "--config.plots=False", f"--workdir={os.path.join(workdir, 'softmax')}"], env={**os.environ, **env})
    assert out.returncode == 0, out.stderr[-3000:]
    records = [json.loads(line) for line in open(os.path.join(workdir, "softmax", "metrics.jsonl"))]
    assert [r["step"] for r in records] == [4] and all(np.isfinite(r["loss"]) for r in records)  # log_every=10
    assert json.load(open(os.path.join(workdir, "softmax", "config.json")))["loss"]["name"] == "softmax"
    assert json.load(open(os.path.join(workdir, "softmax", "eval.json")))["train_seconds"] > 0
    events = os.listdir(os.path.join(workdir, "softmax", "tensorboard"))
    assert any(name.startswith("events.out.tfevents") for name in events)
    out = _finish(refused)
    assert out.returncode == 2 and "compare_losses trains every loss" in out.stderr
    out = _run(["experiments.evaluate", f"--workdir={os.path.join(workdir, 'softmax')}"], env={**os.environ, **env})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.load(open(os.path.join(workdir, "softmax", "eval.json")))
    assert result["loss"] == "softmax" and result["dataset"] == "digits_events"
    assert result["num_examples"] == 360 and len(result["accuracy_over_time"]) == 30
    assert set(result["latency_steps"]) >= {"accuracy_95pct_of_final", "accuracy_99pct_of_final", "decision"}
    assert set(result["latency_steps"]["decision"]) >= {"0.5", "0.7", "0.9"}
    assert result["spikes_per_sample"]["total"] > 0 and result["synops_per_sample"]["total"] > 0
    out = _finish(inspect)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "1437 samples, 10 classes" in out.stdout and "events per sample" in out.stdout
    assert f"cache: {digits_data_dir}/cache/" in out.stdout
    assert os.path.getsize(png) > 1000
    assert not (home / ".cache" / "spikejax").exists()  # nothing built or downloaded at the default location


@pytest.mark.slow
@pytest.mark.parametrize("name,bin_width_us,test_samples", [("nmnist", 5_000, 6), ("dvs_gesture", 25_000, 6),
                                                            ("ntidigits18", 40_000, 4)])
def test_real_dataset_configs_train_end_to_end_on_fixtures(name, bin_width_us, test_samples, tmp_path):
    """Each real dataset's own config (model, binning, downsampling) trains and evaluates on byte-exact
    fixture files, with T shortened to 8 steps."""
    from configs import for_dataset
    from tests import fixtures

    root = str(tmp_path / "data")
    if name == "nmnist":
        fixtures.write_nmnist(root, "train")
        fixtures.write_nmnist(root, "test", seed=1)
    elif name == "dvs_gesture":
        fixtures.write_dvs_gesture(root, "train")
        fixtures.write_dvs_gesture(root, "test", seed=1)
    else:
        fixtures.write_ntidigits(root)
    config = for_dataset(name)
    config.data_dir, config.data.time_bins, config.data.bin_width_us = root, 8, bin_width_us
    config.batch_size, config.eval_batch_size, config.max_steps, config.log_every = 4, 4, 2, 1
    config.plots = False
    result = train.train_and_evaluate(config, str(tmp_path / "run"))
    assert result["dataset"] == name and result["num_examples"] == test_samples
    assert len(result["accuracy_over_time"]) == 8
    expected_layers = {"nmnist": 3, "dvs_gesture": 5, "ntidigits18": 4}[name]  # input + spiking layers
    assert len(result["synops_per_sample"]) == expected_layers + 2  # + network, total
    assert list(result["firing_rate"]) == list(result["spikes_per_sample"])[:expected_layers]
    assert len(result["energy_to_decision"]["synops_per_sample"]) == expected_layers  # network layers + network


@pytest.mark.slow
def test_shd_trains_the_recurrent_model_end_to_end_from_the_command_line(tmp_path):
    """`--dataset=shd` selects configs/shd.py (the recurrent model, 700 channels, 20 classes) and trains and
    evaluates on byte-exact SHD fixture files, with T shortened to 10 steps."""
    from tests import fixtures

    root = str(tmp_path / "data")
    fixtures.write_shd(root, "train", samples=24)
    fixtures.write_shd(root, "test", samples=8, seed=1)
    workdir = str(tmp_path / "run")
    out = _run(["experiments.train", "--dataset=shd", f"--data_dir={root}", f"--workdir={workdir}", "--batch_size=8",
                "--max_steps=3", "--config.data.time_bins=10", "--config.data.bin_width_us=90000",
                "--config.eval_batch_size=8", "--config.model.neuron.learn_beta=True", "--config.plots=False"])
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.load(open(os.path.join(workdir, "eval.json")))
    assert result["dataset"] == "shd" and result["num_examples"] == 8 and len(result["accuracy_over_time"]) == 10
    # 700 -> 256 (recurrent) -> 20
    assert list(result["synops_per_sample"]) == ["input", "layer1", "output", "network", "total"]
    assert result["neuron"]["learned"]["layer1"]["beta"]["size"] == 256
    run = runs.restore(runs.saved_config(workdir), workdir)
    state, step = run.state, run.step
    params = state["params"]
    assert step == 3 and params["recurrent"][0]["kernel"][...].shape == (256, 256)
    assert params["layers"][0]["kernel"][...].shape == (700, 256) and params["out"]["kernel"][...].shape == (256, 20)


@pytest.mark.slow
def test_the_shd_delay_recipe_runs_end_to_end_on_shd_files(tmp_path):
    """configs/shd_delay.py (the DCLS recipe: 700 channels pooled by 5, delayed dense layers, no bias) trains
    and evaluates on byte-exact SHD fixture files, shortened (10 steps, 3 taps, narrow layers)."""
    from tests import fixtures

    root = str(tmp_path / "data")
    fixtures.write_shd(root, "train", samples=24)
    fixtures.write_shd(root, "test", samples=8, seed=1)
    workdir = str(tmp_path / "run")
    out = _run(["experiments.train", "--config=configs/shd_delay.py", f"--data_dir={root}", f"--workdir={workdir}",
                "--batch_size=8", "--max_steps=3", "--config.data.time_bins=10", "--config.data.bin_width_us=90000",
                "--config.eval_batch_size=8", "--config.model.delay.kernel_size=3", "--config.model.hidden=(16, 16)",
                "--config.plots=False"])
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.load(open(os.path.join(workdir, "eval.json")))
    assert result["dataset"] == "shd" and result["num_examples"] == 8
    assert [layer["shape"] for layer in result["delays"]["layers"]] == [[140, 16], [16, 16], [16, 20]]
    params = runs.restore(runs.saved_config(workdir), workdir).state["params"]
    assert "bias" not in params["layers"][0] or params["layers"][0]["bias"] is None
    assert params["layers"][0]["delay"][...].shape == (140, 16)
