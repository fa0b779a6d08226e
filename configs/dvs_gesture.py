"""DVS Gesture: 32x32x2 (4x downsampled) -> conv 16c5 -> pool2 -> conv 32c3 -> pool2 -> dense 512 -> 11,
300 steps of 5 ms (1.5 s); bf16 compute on GPU/TPU (model.dtype="auto"), f32 parameters and membrane.

  python -m experiments.train --config=configs/dvs_gesture.py --data_dir=/data
"""
from configs import default


def get_config():
    c = default.get_config()
    c.dataset = "dvs_gesture"
    c.data.time_bins = 300
    c.data.bin_width_us = 5_000
    c.data.downsample = 4
    c.model.name = "conv"
    c.model.hidden = (512,)
    # model.init_scale: the default 6.0 (it was 3.0, at which the output layer stays silent on 25k events/s,
    # half a DVS Gesture sample's rate: tests/test_default_firing.py)
    # augmentation after Neuromorphic Data Augmentation (Li et al., ECCV 2022: roll by ~10% of the frame,
    # CutMix of event frames with labels mixed by area) and EventDrop (Gu et al., IJCAI 2021: p = 0.1)
    c.data.augment.spatial_shift = 3
    c.data.augment.spike_drop = 0.1
    c.data.augment.cutmix = 0.5
    c.data.augment.cutmix_mode = "space"
    c.batch_size = 32
    c.eval_batch_size = 64
    c.epochs = 100
    c.checkpoint_every_steps = 500
    return c
