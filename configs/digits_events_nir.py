"""digits_events for neuromorphic hardware: the default network with NIR's reset (to zero), so that
`python -m experiments.export` writes it exactly. Add --config.model.bias=False for a chip without biases.

  python -m experiments.train --config=configs/digits_events_nir.py --workdir=runs/digits_events-nir
  python -m experiments.export --workdir=runs/digits_events-nir
"""
from configs import digits_events


def get_config():
    c = digits_events.get_config()
    c.model.neuron.reset = "zero"
    return c
