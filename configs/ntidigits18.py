"""N-TIDIGITS18 single digits: 64 cochlea channels -> 256 -> 256 -> 11, 250 steps of 5 ms.

  python -m experiments.train --config=configs/ntidigits18.py --data_dir=/data
"""
from configs import default


def get_config():
    c = default.get_config()
    c.dataset = "ntidigits18"
    c.data.time_bins = 250
    c.data.bin_width_us = 5_000
    c.data.polarity = False
    c.model.hidden = (256, 256)
    # augmentation: the SHD recipe (configs/shd.py: EventProp's channel shift, EventSSM's event drop and
    # time-window CutMix) with the shift scaled from 700 to 64 channels (40 -> 4)
    c.data.augment.channel_shift = 4
    c.data.augment.spike_drop = 0.1
    c.data.augment.cutmix = 0.5
    c.batch_size = 64
    c.epochs = 60
    return c
