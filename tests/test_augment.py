"""Augmentation of the training inputs (spikejax.augment): every transform against a numpy loop given the
same drawn parameters, CutMix's label weights and mixed loss, draws keyed by (seed, step, global position)
(other steps and seeds differ; 1 and 2 devices and vmapped replicas agree), evaluation left unaugmented, and
a resumed augmented run bit-identical to an uninterrupted one."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from spikejax import augment as A
from spikejax import build, losses, parallel, runs
from spikejax import step as step_lib
from spikejax.errors import ConfigError
from tests.devices import needs
from tests.test_train import small_config

CAMERA = A.Augment(time_shift=3, time_jitter=2, spatial_shift=2, spike_drop=0.2, cutmix=0.7, cutmix_mode="space")
COCHLEA = A.Augment(time_shift=2, time_jitter=1, channel_shift=3, spike_drop=0.1, channel_drop=0.3, cutmix=0.7)
COUNTS = A.Augment(time_jitter=2, channel_shift=1, cutmix=0.5, binary=False)


def _frames(shape, seed=0, counts=False):
    rng = np.random.default_rng(seed)
    if counts:
        return rng.integers(0, 3, shape).astype(np.uint8) * (rng.random(shape) < 0.5)
    return (rng.random(shape) < 0.3).astype(np.uint8)


def _shift(x, s, axis):
    """out[i] = x[i - s] along axis, zero fill (a loop)."""
    out = np.zeros_like(x)
    for i in range(x.shape[axis]):
        if 0 <= i - s < x.shape[axis]:
            np.moveaxis(out, axis, 0)[i] = np.moveaxis(x, axis, 0)[i - s]
    return out


def _jitter(x, offsets, binary):
    out = np.zeros(x.shape, np.int64)
    for index in zip(*np.nonzero(x)):
        t = index[0] + offsets[index]
        if 0 <= t < x.shape[0]:
            target = (t,) + index[1:]
            out[target] = max(out[target], x[index]) if binary else out[target] + x[index]
    return np.minimum(out, 255).astype(x.dtype)


def _reference(spec, frames, labels, params):
    """The numpy reading of the module docstring: per-sample transforms, then CutMix from the next sample."""
    p = {k: np.asarray(v) for k, v in params.items()}
    out = np.empty_like(frames)
    for b in range(frames.shape[1]):
        x = frames[:, b].copy()
        if spec.time_shift:
            x = _shift(x, int(p["time_shift"][b]), 0)
        if spec.time_jitter:
            x = _jitter(x, p["time_jitter"][b], spec.binary)
        if spec.spatial_shift:
            x = _shift(_shift(x, int(p["spatial_shift"][b][0]), x.ndim - 2), int(p["spatial_shift"][b][1]), x.ndim - 1)
        if spec.channel_shift:
            x = _shift(x, int(p["channel_shift"][b]), x.ndim - 1)
        if spec.spike_drop:
            x = x * p["spike_keep"][b]
        if spec.channel_drop:
            x = x * p["channel_keep"][b]
        out[:, b] = x
    weight = np.ones(frames.shape[1])
    if not spec.cutmix:
        return out, labels, weight
    mixed, partner = out.copy(), np.roll(out, -1, axis=1)
    for b in range(frames.shape[1]):
        if not p["cutmix"][b]:
            continue
        (s0, *s1), (n0, *n1) = p["cut_start"][b], p["cut_size"][b]
        if spec.cutmix_mode == "time":
            mixed[s0:s0 + n0, b] = partner[s0:s0 + n0, b]
            weight[b] = 1 - n0 / frames.shape[0]
        else:
            mixed[:, b, :, s0:s0 + n0, s1[0]:s1[0] + n1[0]] = partner[:, b, :, s0:s0 + n0, s1[0]:s1[0] + n1[0]]
            weight[b] = 1 - n0 * n1[0] / (frames.shape[-2] * frames.shape[-1])
    return mixed, np.roll(labels, -1), weight


_JITTED = {}


def _apply(spec, frames, labels, seed=0, step=0):
    """A.apply, compiled once per spec (and shapes): seed and step are traced, as in the train step."""
    if spec not in _JITTED:
        _JITTED[spec] = jax.jit(lambda x, y, s, n: A.apply(spec, x, y, seed=s, step=n))
    return [np.asarray(a) for a in _JITTED[spec](frames, labels, seed, step)]


def _draws(spec, shape, seed, step):
    return jax.jit(lambda s, n: A.batch_parameters(spec, shape, seed=s, step=n))(seed, step)


@pytest.mark.parametrize("spec,shape,counts", [(CAMERA, (12, 6, 2, 7, 9), False), (COCHLEA, (10, 8, 16), False),
                                               (COUNTS, (10, 5, 12), True)])
def test_each_transform_equals_a_numpy_loop_given_the_same_draws(spec, shape, counts):
    frames, labels = _frames(shape, counts=counts), np.arange(shape[1], dtype=np.int32)
    got, partner_labels, weight = _apply(spec, frames, labels, seed=3, step=5)
    want, want_labels, want_weight = _reference(spec, frames, labels, _draws(spec, shape, 3, 5))
    np.testing.assert_array_equal(got, want)
    assert got.dtype == frames.dtype
    np.testing.assert_array_equal(partner_labels, want_labels)
    np.testing.assert_allclose(weight, want_weight, rtol=1e-6, atol=1e-7)
    assert np.any(weight < 1) and np.any(got != frames)


def test_draws_change_with_step_and_seed_and_repeat_otherwise():
    frames, labels = _frames((12, 6, 2, 7, 9)), np.arange(6, dtype=np.int32)
    a = _apply(CAMERA, frames, labels, seed=0, step=4)[0]
    np.testing.assert_array_equal(a, _apply(CAMERA, frames, labels, seed=0, step=4)[0])
    for seed, step in ((0, 5), (1, 4)):
        other = _apply(CAMERA, frames, labels, seed=seed, step=step)[0]
        assert all(np.any(other[:, b] != a[:, b]) for b in range(6)), (seed, step)
    assert np.any(a != frames)


def test_cutmix_weights_sum_to_one_and_the_mixed_loss_is_the_per_example_mixture():
    spec = A.Augment(cutmix=0.9)
    frames, labels = _frames((10, 16, 8)), np.arange(16, dtype=np.int32) % 5
    _, partner_labels, weight = _apply(spec, frames, labels, seed=1, step=2)
    params = _draws(spec, frames.shape, 1, 2)
    cut = np.where(np.asarray(params["cutmix"]), np.asarray(params["cut_size"])[:, 0] / 10, 0.0)
    np.testing.assert_allclose(weight + cut, 1.0, atol=1e-6)
    assert 0 < np.sum(weight < 1) < 16 and np.all((weight >= 0) & (weight <= 1))
    spikes = jnp.asarray(_frames((10, 16, 5), seed=2), jnp.float32)
    mask = np.ones(16, np.float32)
    mask[-3:] = 0.0
    for name in losses.names():
        fn = losses.get(name).fn
        mixed = float(A.mixed_loss(lambda o, y, m: fn(o, y, mask=m), spikes, labels, partner_labels, weight, mask))
        each = [w * float(fn(spikes[:, b:b + 1], labels[b:b + 1])) + (1 - w) * float(fn(spikes[:, b:b + 1],
                                                                                       partner_labels[b:b + 1]))
                for b, w in enumerate(weight)]
        np.testing.assert_allclose(mixed, np.sum(np.asarray(each) * mask) / mask.sum(), rtol=1e-5, err_msg=name)


@needs(2)
def test_one_and_two_devices_and_vmapped_replicas_draw_the_same():
    """The shard's samples sit at global positions axis_index * b + i, CutMix's partner of a shard's last
    sample comes from the next shard, and replicas (vmap over seeds, as compare.replicas) draw by their seed."""
    spec = A.Augment(time_shift=2, spatial_shift=2, spike_drop=0.2, cutmix=0.7, cutmix_mode="space")
    frames, labels = _frames((8, 8, 2, 6, 6)), np.arange(8, dtype=np.int32)
    seeds = np.asarray([0, 7], np.int32)
    mesh = parallel.data_mesh(jax.devices()[:2])

    def local(x, y, s):
        return jax.vmap(lambda seed: A.apply(spec, x, y, seed=seed, step=3, axis_name="data"))(s)

    sharded = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(None, "data"), P("data"), P()),
                                    out_specs=(P(None, None, "data"), P(None, "data"), P(None, "data"))))
    got = [np.asarray(a) for a in sharded(frames, labels, seeds)]
    for r, seed in enumerate(seeds):
        one = _apply(spec, frames, labels, seed=int(seed), step=3)
        for a, b in zip(got, one):
            np.testing.assert_array_equal(a[r], b)
    assert np.any(got[0][0] != got[0][1])


def test_the_step_trains_on_the_augmented_batch(digits_data_dir):
    """train_step(augment=spec) on a bit-packed batch equals train_step on the batch unpacked and augmented
    outside (no CutMix: the same loss), and a one-replica comparison step with that seed is the same step."""
    from flax import nnx

    from spikejax.compare import replicas

    config = small_config(digits_data_dir)
    split, _ = build.training_splits(config)
    graphdef, params = nnx.split(build.model(config, split.frame_shape, len(split.classes)))
    tx = build.optimizer(config, 10)
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.asarray(4, jnp.int32)}
    packed = np.swapaxes(split.packed_rows(np.arange(8)), 0, 1)
    frames = np.swapaxes(split.dense(np.arange(8)), 0, 1)
    labels, mask = np.asarray(split.labels[:8], np.int32), np.ones(8, np.float32)
    spec = A.Augment(time_shift=2, spatial_shift=2, spike_drop=0.2)
    kwargs = dict(graphdef=graphdef, tx=tx, loss_fn=build.loss(config), readout_fn=build.readout(config))
    augmented = _apply(spec, frames, labels, seed=9, step=4)[0]
    a = jax.jit(lambda s: step_lib.train_step(s, packed, labels, mask, augment=spec, seed=9,
                                              frame_shape=split.frame_shape, **kwargs))(state)
    b = jax.jit(lambda s: step_lib.train_step(s, augmented, labels, mask, **kwargs))(state)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert np.any(augmented != frames)
    selection, hyper = replicas.hyperparameters([{"seed": 9}], config)
    stacked = jax.tree.map(lambda x: jnp.asarray(x)[None], {**state, "frozen_at": jnp.asarray(-1, jnp.int32)})
    c, _ = jax.jit(lambda s, h: replicas.train_step(s, packed, labels, mask, h, graphdef=graphdef, tx=tx,
                                                     selection=selection, frame_shape=split.frame_shape,
                                                     augment=spec))(stacked, hyper)
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(x[0], y), c["params"], a[0]["params"])


def _augmented(data_dir, **overrides):
    config = small_config(data_dir, **overrides)
    a = config.data.augment
    a.time_shift, a.time_jitter, a.spatial_shift, a.spike_drop, a.cutmix, a.cutmix_mode = 2, 1, 2, 0.1, 0.5, "space"
    return config


def test_a_resumed_augmented_run_equals_an_uninterrupted_one_and_evaluation_is_unaugmented(digits_data_dir,
                                                                                        tmp_path):
    """The real loop (loop.Session: checkpoints, restore, the data iterator's saved position) with one
    compiled step: 3 steps straight, and 2 steps then a fresh session resuming to 3, end bit-identical.
    Evaluating the run with augmentation on or off in the config gives the same report."""
    from flax import nnx

    from spikejax import loop

    config = _augmented(digits_data_dir, max_steps=3, checkpoint_every_steps=1)
    mesh = parallel.data_mesh()
    split, _ = build.training_splits(config)
    graphdef, params = nnx.split(build.model(config, split.frame_shape, len(split.classes)))
    tx = build.optimizer(config, 3)
    step_fn = step_lib.parallel_train_step(mesh, graphdef=graphdef, tx=tx, loss_fn=build.loss(config),
                                           readout_fn=build.readout(config),
                                           frame_shape=build.packed_frame_shape(split), augment=build.augment(config),
                                           seed=config.seed)
    report = lambda at, metrics, state, last: (step_lib.checked_metrics(metrics, at, last, ""), "")
    meta = {"data": {"epoch": 0, "position": 0}, "train_seconds": 0.0}

    def run(workdir, stop_at):
        plan = loop.schedule(batch_size=config.batch_size, epochs=1, max_steps=stop_at, log_every=1,
                             checkpoint_every=1, seed=config.seed, train_samples=len(split), devices=mesh.size)
        with loop.Session(workdir, build.init_state(params, tx, mesh), meta, mesh=mesh, keep=2) as session:
            return session.train(step_fn, split, plan, report=report).state

    straight = run(str(tmp_path / "straight"), 3)
    run(str(tmp_path / "resumed"), 2)
    resumed = run(str(tmp_path / "resumed"), 3)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(straight), jax.device_get(resumed))
    on, off = (runs.evaluate(c, str(tmp_path / "straight")) for c in (config, small_config(digits_data_dir)))
    for key in ("accuracy", "accuracy_over_time", "spikes_per_sample", "validation"):
        assert on[key] == off[key], key


@pytest.mark.parametrize("field,value,words", [
    ("spike_drop", 1.5, "data.augment.spike_drop = 1.5: must be a finite number >= 0 and <= 1"),
    ("time_shift", -1, "data.augment.time_shift = -1: must be an integer >= 0"),
    ("channel_shift", 3, "data.augment.channel_shift = 3: needs 1-D frames (C,)"),
    ("time_shift", 30, "data.augment.time_shift = 30: must be < 30"),
    ("cutmix_mode", "box", "data.augment.cutmix_mode = 'box': must be one of ['time', 'space']")])
def test_bad_augmentation_fields_are_one_line_config_errors(field, value, words):
    from configs import default
    from spikejax import config as config_lib

    c = default.get_config()
    c.data.augment[field] = value
    with pytest.raises(ConfigError, match=None) as error:
        config_lib.validate(c)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_the_spec_refuses_bad_values_and_frames_it_does_not_fit():
    with pytest.raises(ValueError, match="Augment.spike_drop must be a probability"):
        A.Augment(spike_drop=1.5)
    with pytest.raises(ValueError, match="Augment.time_shift must be an int >= 0"):
        A.Augment(time_shift=-1)
    with pytest.raises(ValueError, match="spatial_shift needs camera frames"):
        A.apply(A.Augment(spatial_shift=1), jnp.zeros((4, 2, 8), jnp.uint8), jnp.zeros(2, jnp.int32), seed=0, step=0)


def test_spatial_shift_on_one_dimensional_data_is_refused_and_the_recipes_validate():
    from configs import for_dataset
    from spikejax import config as config_lib

    for name in ("nmnist", "dvs_gesture", "shd", "ntidigits18"):
        config_lib.validate(for_dataset(name))
        assert build.augment(for_dataset(name)) is not None, name
    assert build.augment(for_dataset("digits_events")) is None
    c = for_dataset("shd")
    c.data.augment.spatial_shift = 1
    with pytest.raises(ConfigError, match="spatial_shift = 1: needs camera frames"):
        config_lib.validate(c)
