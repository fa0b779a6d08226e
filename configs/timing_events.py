"""timing_events (embedded, offline; the class is in spike timing only): dense 32-128-10, 80 steps of 1 ms.

  python -m experiments.train --config=configs/timing_events.py
"""
from configs import default


def get_config():
    c = default.get_config()
    c.dataset = "timing_events"
    c.data.time_bins = 80
    c.data.bin_width_us = 1_000
    c.data.polarity = False
    c.model.name = "mlp"
    c.model.hidden = (128,)
    c.optimizer.learning_rate = 1e-2
    c.batch_size = 64
    c.epochs = 60
    return c
