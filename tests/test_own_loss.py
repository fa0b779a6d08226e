"""Bring your own loss: a module outside spikejax registers a loss, and `--import` makes the training
program and the comparison accept it, with no file of spikejax touched (the comparison run also carries the
energy stage, --sweep.energy_penalties, end to end)."""
import json
import os
import textwrap

import pytest

from tests.test_train import _finish, _start

MODULE = textwrap.dedent('''
    """A multi-class hinge on output rates: max(0, margin - (r_y - max_{i != y} r_i)), r = counts / T."""
    import jax
    import jax.numpy as jnp

    from spikejax import losses


    @losses.register("count_hinge", title="count hinge", params=(
        losses.Param("margin", 0.1, check=losses.positive, grid=(0.05, 0.2)),))
    def count_hinge(spikes, labels, *, margin=0.1, mask=None):
        rates = jnp.mean(spikes.astype(jnp.float32), axis=0)
        true = jnp.take_along_axis(rates, labels[:, None], axis=1)[:, 0]
        other = jnp.max(jnp.where(jax.nn.one_hot(labels, rates.shape[1]) > 0, -jnp.inf, rates), axis=1)
        per_example = jnp.maximum(0.0, margin - (true - other))
        weights = jnp.ones_like(per_example) if mask is None else mask
        return jnp.sum(per_example * weights) / jnp.maximum(jnp.sum(weights), 1.0)
''')


@pytest.mark.slow
def test_an_imported_loss_trains_and_compares(digits_data_dir, tmp_path):
    (tmp_path / "my_losses.py").write_text(MODULE)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    small = [f"--data_dir={digits_data_dir}", "--config.model.hidden=(32,)", "--import=my_losses"]
    run, compare = str(tmp_path / "run"), str(tmp_path / "compare")
    started = [
        _start(["experiments.train", *small, "--loss=count_hinge", "--config.loss.count_hinge.margin=0.3",
                "--max_steps=3", f"--workdir={run}"], env),
        _start(["experiments.compare_losses", *small, "--quick", "--max_steps=4", f"--workdir={compare}",
                "--sweep.losses=('count_hinge','nll')", "--sweep.grid.count_hinge.margin=(0.2,)",
                "--sweep.energy_penalties=(1.0,)", "--sweep.energy_seeds=1"], env),
        _start(["experiments.train", f"--data_dir={digits_data_dir}", "--loss=count_hinge", "--max_steps=1",
                f"--workdir={tmp_path / 'without'}"], env),
    ]
    train, comparison, without = (_finish(s) for s in started)
    assert train.returncode == 0, train.stderr[-3000:]
    result = json.load(open(os.path.join(run, "eval.json")))
    assert result["loss"] == "count_hinge(margin=0.3)" and result["step"] == 3
    assert comparison.returncode == 0, comparison.stderr[-3000:]
    report = json.load(open(os.path.join(compare, "comparison.json")))
    assert set(report["losses"]) == {"count_hinge", "nll"}
    assert report["losses"]["count_hinge"]["selected"]["margin"] == 0.2
    assert "count hinge" in open(os.path.join(compare, "comparison.md")).read()
    # the energy stage: both labels' selected configurations again at penalty weight 1, on the first final seed
    # (--sweep.energy_seeds=1), against the final stage's replicas of that seed (paired)
    points = report["energy"]["losses"]
    assert {label: [p["rate_penalty"] for p in ps] for label, ps in points.items()} == {"count_hinge": [0.0, 1.0],
                                                                                        "nll": [0.0, 1.0]}
    assert all(p["seeds"] == report["seeds"][:1] for ps in points.values() for p in ps)
    lines = [json.loads(line) for line in open(os.path.join(compare, "replicas.jsonl"))]
    energy = [line for line in lines if line["stage"] == "energy"]
    assert len(energy) == 2 and {(line["rate_penalty"], line["seed"]) for line in energy} == {(1.0, report["seeds"][0])}
    assert {line["label"]: line["parameters"] for line in energy} == {
        line["label"]: line["parameters"] for line in lines if line["stage"] == "final"}  # the selected ones
    assert os.path.getsize(os.path.join(compare, "accuracy_synops.png")) > 1000
    assert os.path.isfile(os.path.join(compare, "energy", "0", "result.json"))
    # without --import the name is unknown: a one-line usage error that says how to add it
    assert without.returncode == 2 and "--import=your_module" in without.stderr, without.stderr
    assert len(without.stderr.strip().splitlines()) == 1
