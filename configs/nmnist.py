"""NMNIST: dense 2312-512-10, 100 steps of 3 ms (300 ms, all three saccades).

  python -m experiments.train --config=configs/nmnist.py --data_dir=/data
"""
from configs import default


def get_config():
    c = default.get_config()
    c.dataset = "nmnist"
    c.data.time_bins = 100
    c.data.bin_width_us = 3_000
    c.model.hidden = (512,)
    # augmentation after Neuromorphic Data Augmentation (Li et al., ECCV 2022: random translation of event
    # frames) and EventDrop (Gu et al., IJCAI 2021: drop events with p = 0.1); the saccades already jitter
    c.data.augment.spatial_shift = 2
    c.data.augment.spike_drop = 0.1
    c.batch_size = 128
    c.epochs = 30
    c.checkpoint_every_steps = 500
    return c
