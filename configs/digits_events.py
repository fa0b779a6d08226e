"""digits_events (embedded, offline NMNIST stand-in): dense 2312-256-10, 30 steps of 10 ms.

  python -m experiments.train --config=configs/digits_events.py
"""
from configs import default


def get_config():
    c = default.get_config()
    c.dataset = "digits_events"
    return c
