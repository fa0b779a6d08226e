"""SHD (Spiking Heidelberg Digits) with the recurrent model: 700 cochlea channels -> 256 recurrent LIF -> 20,
100 steps of 10 ms (the recordings last up to ~1.4 s; later spikes fall outside the window).

  python -m experiments.train --dataset=shd --workdir=runs/shd
  python -m experiments.train --config=configs/shd.py --config.model.neuron.learn_beta=True --workdir=runs/shd_learn
"""
from configs import default


def get_config():
    c = default.get_config()
    c.dataset = "shd"
    c.data.time_bins = 100
    c.data.bin_width_us = 10_000
    c.data.polarity = False
    c.model.name = "rnn"
    c.model.hidden = (256,)
    # augmentation after the EventProp SHD recipe (Nowotny, Turner, Knight 2024: random channel shift by up
    # to +-40) and EventSSM's (Schoene et al. 2024: drop_event 0.1, cut_mix 0.5, here as a time window)
    c.data.augment.channel_shift = 40
    c.data.augment.spike_drop = 0.1
    c.data.augment.cutmix = 0.5
    c.batch_size = 64
    c.epochs = 40
    return c
