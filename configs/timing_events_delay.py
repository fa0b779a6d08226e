"""timing_events with learnable synaptic delays (the DCLS scheme, spikejax.delays): dense 32-128-10, every
connection delayed per synapse by 0-24 steps of 2 ms (the task's volleys are 4-20 ms apart, a whole
sequence at most 52 ms), delays learned with the weights and rounded to integer steps for evaluation and
export. 2 ms bins (40 steps) so that one kernel spans a whole class sequence. Neurons reset to zero
(model.neuron.reset = "zero"): NIR has no subtractive reset, and with this reset the export (Delay nodes,
see spikejax.nir) is spike-exact.

  python -m experiments.train --config=configs/timing_events_delay.py --workdir=runs/timing_delay
  python -m experiments.export --workdir=runs/timing_delay

Baselines of the same network (BENCHMARKS.md, "Delays pay off"): no delays
`--config.model.delay.kernel_size=1`, fixed random delays `--config.model.delay.learn=False`.
"""
from configs import timing_events


def get_config():
    c = timing_events.get_config()
    c.data.time_bins = 40
    c.data.bin_width_us = 2_000
    c.model.name = "delay_mlp"
    c.model.delay.kernel_size = 25
    c.model.delay.per = "synapse"
    c.model.neuron.reset = "zero"  # NIR resets to v_reset: the only reset experiments.export writes exactly
    # positions move about learning_rate x this many steps per update: 0.15, as DCLS (1e-3 x 150)
    c.optimizer.delay_learning_rate_scale = 15.0
    return c
