"""Shared defaults; the dataset configs import and override these.

  python -m experiments.train --config=configs/default.py
"""
import ml_collections
from ml_collections.config_dict import placeholder

from spikejax import losses, models


def loss_parameters() -> dict:
    """{loss: {parameter: default}} for every registered loss (None defaults as typed placeholders, so
    `--config.loss.nll.window=10` parses)."""
    blocks = {}
    for name in losses.names():
        block = ml_collections.ConfigDict()
        for p in losses.get(name).params:
            block[p.name] = placeholder(int if p.integer else float) if p.default is None else p.default
        blocks[name] = block
    return blocks


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.dataset = "digits_events"
    c.data_dir = placeholder(str)  # None: $SPIKEJAX_DATA_DIR, else ~/.cache/spikejax
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.time_bins = 30
    c.data.bin_width_us = 10_000
    c.data.downsample = 1
    c.data.polarity = True
    c.data.binarize = True
    c.data.options = ml_collections.ConfigDict()  # dataset options, e.g. first_saccade_only, seed
    # stratified hold-out of the training split (spikejax.data.split), the same on every machine: training
    # uses the rest; choose hyperparameters on it, never on the test split
    c.data.validation_fraction = 0.1
    # augmentation of the training inputs, on the device inside the train step (spikejax.augment; docs/training.md,
    # "Data augmentation"); evaluation never augments. All off here; the dataset configs turn on their recipes.
    c.data.augment = ml_collections.ConfigDict()
    c.data.augment.time_shift = 0  # bins: the whole sample moves by up to +-k steps (zero fill)
    c.data.augment.time_jitter = 0  # bins: every spike moves on its own by up to +-k steps
    c.data.augment.spatial_shift = 0  # pixels, cameras only: translation by up to +-k in x and y (zero fill)
    c.data.augment.channel_shift = 0  # channels, 1-D (cochlea) data only: shift by up to +-k (zero fill)
    c.data.augment.spike_drop = 0.0  # probability of dropping each spike (time step x feature), in steps of 1/256
    c.data.augment.channel_drop = 0.0  # 1-D data only: probability of silencing each channel for the sample
    c.data.augment.cutmix = 0.0  # probability of pasting a block of the next sample, labels mixed by its share
    c.data.augment.cutmix_mode = "time"  # "time": a window of steps; "space" (cameras): a box of pixels

    c.model = ml_collections.ConfigDict()
    c.model.name = "mlp"  # "mlp", "conv", "rnn" or "delay_mlp" (spikejax.models)
    c.model.hidden = (256,)
    c.model.dtype = "auto"  # compute dtype: "auto" (bf16 on GPU/TPU, f32 on CPU), "float32" or "bfloat16";
    # parameters and the membrane stay float32 in every case
    # variance scale of the fan-in initialisation (6.0, the library's default: every config's output layer fires
    # on its dataset's input, tests/test_default_firing.py; at 1.0 none does)
    c.model.init_scale = models.DEFAULT_INIT_SCALE
    c.model.bias = True  # False: no bias anywhere (chips without one; exports as NIR Linear)
    # the output layer: "spiking" (the neuron below: spikes, and its membrane for losses that read it) or
    # "integrator" (non-spiking leaky integrator u[t] = beta u[t-1] + I[t], the SHD/delays readout: membrane
    # losses only); see docs/training.md, "Output layer and what a loss reads"
    c.model.output = "spiking"
    c.model.neuron = ml_collections.ConfigDict()
    c.model.neuron.kind = "lif"  # "lif" or "cuba_lif"
    c.model.neuron.beta = 0.9
    c.model.neuron.alpha = 0.8
    c.model.neuron.threshold = 1.0
    c.model.neuron.reset = "subtract"
    c.model.neuron.surrogate = "fast_sigmoid"
    c.model.neuron.surrogate_params = ml_collections.ConfigDict()
    c.model.neuron.detach_reset = True
    c.model.neuron.recompute_chunk = placeholder(int)  # None: keep the membrane; K: keep one state per K
    # steps and recompute each K-step chunk in the backward (less memory for long T; fused LIF only)
    # auto (Pallas kernels on GPU, XLA scans elsewhere) | fused | pallas | reference
    c.model.neuron.implementation = "auto"
    # trainable neuron parameters (beta = sigmoid(w), threshold = softplus(w), alpha = sigmoid(w), starting at
    # the values above), one per neuron (dense feature / conv channel) or one per layer
    c.model.neuron.learn_beta = False
    c.model.neuron.learn_threshold = False
    c.model.neuron.learn_alpha = False  # cuba_lif only
    c.model.neuron.learn_shape = "neuron"  # "neuron" or "layer"
    # synaptic delays of model.name = "delay_mlp" (spikejax.delays, the DCLS scheme; other models ignore them)
    c.model.delay = ml_collections.ConfigDict()
    c.model.delay.kernel_size = 25  # D taps: delays 0 .. D-1 steps
    c.model.delay.per = "synapse"  # "synapse" (d [I, O]) or "channel" (d [I], one per input channel)
    c.model.delay.learn = True  # False: fixed at their initial values (exact shifts throughout)
    c.model.delay.init = "uniform"  # "uniform" over [0, D-1] or "zero"
    c.model.delay.sigma_start = placeholder(float)  # None: D / 3 (DCLS); the interpolation's initial width
    c.model.delay.sigma_end = 0.23  # width at the end of the annealing (taps one-hot to within 1e-4)
    c.model.delay.anneal_fraction = 0.5  # the width reaches sigma_end after this fraction of the steps

    c.loss = ml_collections.ConfigDict()
    c.loss.name = "nll"  # any registered loss (spikejax.losses: mse | softmax | nll | rate_ce | first_spike, and
    # tet | mean_membrane | max_membrane | summed_softmax | exp_membrane, reading the membrane), or your own
    c.loss.rate_penalty = 0.0  # weight of the hidden layers' firing-rate penalty
    c.loss.target_rate = 0.02  # its target rate (spikes per step)
    # every registered loss's parameters at their defaults, e.g. loss.nll.window, loss.softmax.temperature
    c.loss.update(loss_parameters())

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "adamw"  # "adamw" or "sgd"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.momentum = 0.9  # sgd only
    c.optimizer.schedule = "cosine"
    c.optimizer.warmup_steps = 20
    c.optimizer.grad_clip = 1.0  # global-norm clip; inf: none
    c.optimizer.weight_decay = 0.0  # never applied to learnable neuron parameters
    c.optimizer.neuron_learning_rate_scale = 1.0  # learnable neuron parameters: their updates times this
    c.optimizer.delay_learning_rate_scale = 150.0  # delays (in steps): their updates times this (DCLS: 150)

    c.batch_size = 64
    c.eval_batch_size = 256
    c.epochs = 20
    c.max_steps = placeholder(int)  # None: no limit; N: stop after N steps (smoke runs)
    c.plots = True  # False: no PNGs when the run ends (eval.json is the result; experiments.plot draws them later)
    c.log_every = 10
    c.checkpoint_every_steps = 200
    c.keep_checkpoints = 2
    return c
