# %% [markdown]
# # Loading NMNIST, DVS Gesture and SHD through tonic
#
# The real datasets are read through tonic's dataset classes (the `datasets` extra), binned into time-major
# spike tensors and cached. With the data at hand, one command trains on each:
#
# ```bash
# python -m experiments.train --dataset=nmnist --data_dir=/data        # downloads NMNIST (about 1 GB) on first use
# python -m experiments.train --dataset=dvs_gesture --data_dir=/data   # DVS Gesture: place the archives by hand (below)
# python -m experiments.train --dataset=shd --data_dir=/data           # SHD, the recurrent model
# python -m experiments.inspect_data --dataset=dvs_gesture --data_dir=/data   # statistics and a PNG of one sample
# ```
#
# The downloads land in `<data_dir>/<TonicClassName>/` with their md5 checked; when one fails, the error
# names the URL, the archive, its md5 and where to put it by hand (tonic's DVS Gesture URL is currently
# behind a web-application firewall: [datasets.md](../datasets.md#when-a-download-fails-placing-the-files-by-hand)).
#
# So that this page runs anywhere, offline and in seconds, it writes a few samples of each dataset in its
# real on-disk format (`tests/fixtures.py`, the files the test suite reads) and loads them exactly as the
# real ones are loaded. Run it from the repository's root.

# %%
import tempfile

import matplotlib.pyplot as plt
import numpy as np

from spikejax import data
from spikejax.data import Binning
from tests import fixtures

data_dir = tempfile.mkdtemp()
fixtures.write_nmnist(data_dir, "train")  # <data_dir>/NMNIST/Train/<digit>/<id>.bin, 40-bit events
fixtures.write_dvs_gesture(data_dir, "train")  # <data_dir>/DVSGesture/ibmGestureTrain/userNN_<light>/<label>.npy
fixtures.write_shd(data_dir, "train")  # <data_dir>/SHD/shd_train.h5, the authors' HDF5 layout
print(sorted(p.name for p in __import__("pathlib").Path(data_dir).iterdir()))

# %% [markdown]
# ## Binning and caching
#
# `data.load(name, split, data_dir=..., binning=...)` returns a `CachedSplit`: every sample binned into
# `time_bins` steps of `bin_width_us` microseconds (the first event at t = 0), spikes binarised per bin
# unless `binarize=False`, camera pixels pooled by `downsample`. Each dataset has a default binning (the
# table in [datasets.md](../datasets.md)); the training program reads it from `configs/<dataset>.py`. The
# binned tensors are cached once per binning and source files under `<data_dir>/cache/`; a second load
# reads the cache.

# %%
for name in ("nmnist", "dvs_gesture", "shd"):
    info = data.get_info(name)
    print(f"{name:12s} sensor {info.sensor_size} (W, H, P), {info.num_classes} classes, "
          f"default binning: {info.default_binning.time_bins} x {info.default_binning.bin_width_us} us")

nmnist = data.load("nmnist", "train", data_dir=data_dir, binning=Binning(time_bins=10, bin_width_us=4_000))
dvs = data.load("dvs_gesture", "train", data_dir=data_dir,
                binning=Binning(time_bins=10, bin_width_us=20_000, downsample=4))
shd = data.load("shd", "train", data_dir=data_dir, binning=Binning(time_bins=50, bin_width_us=20_000,
                                                                    polarity=False))
for split in (nmnist, dvs, shd):
    print(f"{split.name:12s} {len(split)} samples, frame {split.frame_shape}, T = {split.time_bins}, "
          f"labels {split.labels.tolist()}, events per sample {split.events.tolist()}")

# %% [markdown]
# `split.dense(indices)` decodes samples as uint8 `[B, T, *frame]` (batch first, as stored); a model takes
# them time-major, `np.moveaxis(x, 1, 0)`. Camera frames are `[P, H, W]` (polarity first), cochlea channels
# `[F]`. The training program instead moves bit-packed batches to the device and unpacks them there
# (`spikejax.data.device.unpack_spikes`).

# %%
x_nmnist, x_dvs, x_shd = nmnist.dense([0])[0], dvs.dense([0])[0], shd.dense([0])[0]
print("NMNIST", x_nmnist.shape, "DVS Gesture", x_dvs.shape, "SHD", x_shd.shape)
fig, axes = plt.subplots(1, 3, figsize=(12, 3))
axes[0].imshow(x_nmnist.sum(axis=(0, 1)), cmap="gray")
axes[0].set_title(f"NMNIST fixture, label {nmnist.classes[nmnist.labels[0]]}")
axes[1].imshow(x_dvs.sum(axis=(0, 1)), cmap="gray")
axes[1].set_title(f"DVS Gesture fixture, 32x32, '{dvs.classes[dvs.labels[0]]}'")
steps, channels = np.nonzero(x_shd.reshape(x_shd.shape[0], -1))
axes[2].scatter(steps, channels, s=4, c="k")
axes[2].set(xlabel="time step", ylabel="channel", title=f"SHD fixture, '{shd.classes[shd.labels[0]]}'")
for ax in axes[:2]:
    ax.axis("off")
plt.show()

# %% [markdown]
# The fixtures are random events, so the pictures show noise; on the real data the same code shows digits,
# gestures and spoken words. What the training program does with a split: `spikejax.data.TrainIterator`
# (shuffled, sharded, bit-packed batches) and `spikejax.data.eval_batches` (padded and masked), in the
# [API reference](../reference/data.md).
