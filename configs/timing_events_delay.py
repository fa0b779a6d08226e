"""timing_events with learnable synaptic delays (DCLS scheme): dense in-hidden-C, every connection
delayed per synapse by 0 .. kernel_size-1 steps, delays learned with the weights and rounded to integer
steps for evaluation and export. Neurons reset to zero (model.neuron.reset = "zero"): NIR has no
subtractive reset, and with this reset the export (Delay nodes, see spikejax.nir) is spike-exact.

  python -m experiments.train --config=configs/timing_events_delay.py --workdir=runs/timing_delay
  python -m experiments.export --workdir=runs/timing_delay
"""
from configs import timing_events


def get_config():
    c = timing_events.get_config()
    c.model.name = "delay_mlp"
    c.model.delay.kernel_size = 16
    c.model.delay.per = "synapse"
    c.model.neuron.reset = "zero"  # NIR resets to v_reset: the only reset experiments.export writes exactly
    return c
