"""The loss registry: names and aliases, parameters with their rules, comparison labels (variants), and a
loss registered by a user, checked against a numpy transcription of it."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax import losses, readout


def test_the_papers_losses_are_registered_with_their_parameters():
    assert losses.names()[:3] == ["mse", "softmax", "nll"]
    assert losses.get("spikemax") is losses.get("nll") and losses.get("nll").fn is losses.spike_nll
    assert losses.get("count_mse").fn is losses.count_mse and losses.get("count_softmax").fn is losses.count_softmax
    assert losses.get("nll").defaults() == {"window": None, "min_count": 1.0}
    assert all(losses.get(n).reads == "spikes" for n in ("mse", "softmax", "nll"))
    assert losses.labels()[:4] == ["mse", "softmax", "nll", "nll_window"]
    window = losses.entry("nll_window")
    assert window.loss == "nll" and dict(window.grid) == {"window": (10, 20, 30)}
    assert dict(losses.entry("nll").grid) == {"min_count": (0.25, 0.5, 1.0)}  # window: not tuned, whole sample


def test_parameter_rules_name_the_parameter_and_what_is_allowed():
    nll, mse = losses.get("nll"), losses.get("mse")
    assert nll.problems({"window": None, "min_count": 1.0}) == []
    assert nll.problems({"window": 0, "min_count": 1.0}) == ["loss 'nll': window = 0 must be None or an integer >= 1"]
    assert nll.problems({"window": 3, "min_count": float("nan")})[0].startswith("loss 'nll': min_count = nan")
    assert "has no parameter 'temperature'" in nll.problems({"window": None, "min_count": 1.0, "temperature": 1.0})[0]
    assert mse.problems({"true_rate": 0.1, "false_rate": 0.2}) == [
        "loss 'mse': false_rate 0.2 must be < true_rate 0.1"]
    assert nll.label({"window": 10, "min_count": 1.0}) == "nll(window=10)"
    assert nll.label({"window": None, "min_count": 0.5}) == "nll(min_count=0.5)"


def test_registration_refuses_clashes_and_bad_declarations():
    with pytest.raises(ValueError, match="already registered"):
        losses.register("spikemax")(lambda s, y, mask=None: 0.0)
    with pytest.raises(ValueError, match="taken by the config field loss.rate_penalty"):
        losses.register("rate_penalty")(lambda s, y, mask=None: 0.0)
    with pytest.raises(ValueError, match="value -1.0 .* must be a finite number > 0"):
        losses.register("bad_default", params=(losses.Param("scale", -1.0, losses.positive),))
    with pytest.raises(ValueError, match="reads must be one of"):
        losses.register("bad_reads", reads="voltage")
    with pytest.raises(ValueError, match="window = 0 must be None or an integer >= 1"):
        losses.register_variant("nll_zero", of="nll", fixed={"window": 0})
    assert "bad_default" not in losses.names()


@pytest.fixture
def hinge():
    """A user's loss: a multi-class hinge on counts per step, max(0, margin - (r_y - max_{i!=y} r_i))."""
    @losses.register("count_hinge", title="count hinge", params=(
        losses.Param("margin", 0.1, losses.positive, grid=(0.05, 0.1)),))
    def count_hinge(spikes, labels, *, margin=0.1, mask=None):
        rates = jnp.mean(spikes.astype(jnp.float32), axis=0)
        true = jnp.take_along_axis(rates, labels[:, None], axis=1)[:, 0]
        other = jnp.max(jnp.where(jax.nn.one_hot(labels, rates.shape[1]) > 0, -jnp.inf, rates), axis=1)
        per_example = jnp.maximum(0.0, margin - (true - other))
        weights = jnp.ones_like(per_example) if mask is None else mask
        return jnp.sum(per_example * weights) / jnp.sum(weights)

    yield count_hinge
    losses.unregister("count_hinge")


def test_a_registered_loss_selects_like_the_built_in_ones(hinge):
    spec = losses.get("count_hinge")
    assert spec.readout is readout.predictions_over_time and losses.entry("count_hinge").title == "count hinge"
    rng = np.random.default_rng(0)
    spikes = (rng.random((8, 5, 3)) < 0.3).astype(np.float32)
    labels = np.array([0, 2, 1, 1, 0])
    rates = spikes.mean(0)
    margins = rates[np.arange(5), labels] - np.array([np.max(np.delete(r, y)) for r, y in zip(rates, labels)])
    selection, arrays = losses.selection([("count_hinge", {"margin": 0.05}), ("count_hinge", {"margin": 0.3}),
                                          ("nll", {"window": None, "min_count": 1.0})])
    for r, margin in enumerate((0.05, 0.3)):
        values = jax.tree.map(lambda a, r=r: jnp.asarray(a[r]), arrays)
        got = losses.selected_loss(selection, values, {"spikes": jnp.asarray(spikes)}, jnp.asarray(labels))
        np.testing.assert_allclose(got, np.maximum(0.0, margin - margins).mean(), rtol=1e-6)
    losses.unregister("count_hinge")
    with pytest.raises(ValueError, match="unknown loss 'count_hinge'"):
        losses.get("count_hinge")
    assert "count_hinge" not in losses.labels()
    losses.register("count_hinge", params=(losses.Param("margin", 0.1, losses.positive),))(hinge)
