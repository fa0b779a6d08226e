"""Tiny datasets written byte by byte in each dataset's real on-disk format."""
import os

import h5py
import numpy as np


def nmnist_bytes(x, y, t, p):
    """N-MNIST 40-bit events: x (8 bits), y (8), polarity (1) + timestamp us (23)."""
    x, y, t, p = (np.asarray(a, np.int64) for a in (x, y, t, p))
    raw = np.zeros((len(x), 5), np.uint8)
    raw[:, 0], raw[:, 1] = x, y
    raw[:, 2] = (p << 7) | ((t >> 16) & 0x7F)
    raw[:, 3], raw[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    return raw.tobytes()


def random_events(rng, count, width, height, duration_us):
    t = np.sort(rng.integers(0, duration_us, count))
    return rng.integers(0, width, count), rng.integers(0, height, count), t, rng.integers(0, 2, count)


def write_nmnist(root, split="train", per_class=2, classes=(0, 3, 7), seed=0):
    """<root>/NMNIST/{Train,Test}/<digit>/<id>.bin; returns [(path, (x, y, t, p), label)] sorted by path."""
    rng = np.random.default_rng(seed)
    written = []
    for digit in classes:
        folder = os.path.join(root, "NMNIST", "Train" if split == "train" else "Test", str(digit))
        os.makedirs(folder, exist_ok=True)
        for k in range(per_class):
            events = random_events(rng, 50 + 10 * k, 34, 34, 40_000)
            path = os.path.join(folder, f"{k:05d}.bin")
            with open(path, "wb") as f:
                f.write(nmnist_bytes(*events))
            written.append((path, events, digit))
    return sorted(written, key=lambda item: item[0])


def write_nmnist_streams(root, streams, split="train"):
    """<root>/NMNIST/{Train,Test}/<label>/<k>.bin from given streams [((x, y, t_us, p), label)]."""
    for k, ((x, y, t, p), label) in enumerate(streams):
        folder = os.path.join(root, "NMNIST", "Train" if split == "train" else "Test", str(label))
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{k:05d}.bin"), "wb") as f:
            f.write(nmnist_bytes(x, y, t, p))


def write_dvs_gesture(root, split="train", users=("user02_led", "user01_fluorescent"), labels=(4, 0, 10),
                      seed=0, events=80, duration_ms=200):
    """<root>/DVSGesture/ibmGesture{Train,Test}/userNN_<lighting>/<label>.npy with [N, 4] (x, y, p, t_ms):
    `events` per file, uniform over the 128x128 sensor, both polarities and [0, duration_ms)."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "DVSGesture", "ibmGestureTrain" if split == "train" else "ibmGestureTest")
    written = []
    for user in users:
        os.makedirs(os.path.join(folder, user), exist_ok=True)
        for label in labels:
            x, y, t_ms, p = random_events(rng, events, 128, 128, duration_ms)
            array = np.stack([x, y, p, t_ms], axis=1).astype(np.float64)
            path = os.path.join(folder, user, f"{label}.npy")
            np.save(path, array)
            written.append((path, (x, y, t_ms * 1000, p), label))
    return sorted(written, key=lambda item: item[0])


def write_ntidigits(root, seed=0, events=40, duration_s=0.3):
    """<root>/NTIDIGITS18/n-tidigits.hdf5 with {split}_addresses/<id>, {split}_timestamps/<id> (seconds)
    and {split}_labels, `events` per sample uniform over the 64 channels and [0, duration_s). Returns
    {split: [(sample_id, channels, t_us, label)]} of single-digit samples."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "NTIDIGITS18")
    os.makedirs(folder, exist_ok=True)
    classes = {"o": 0, "z": 10, "3": 3, "9": 9}
    expected = {}
    with h5py.File(os.path.join(folder, "n-tidigits.hdf5"), "w") as f:
        for split in ("train", "test"):
            ids = [f"man-a{i}-{d}" for i, d in enumerate(classes)] + ["woman-zz-13"]  # last: multi-digit
            f.create_dataset(f"{split}_labels", data=np.array([s.encode() for s in ids]))
            expected[split] = []
            for sample_id in ids:
                channels = rng.integers(0, 64, events)
                seconds = np.sort(rng.random(events) * duration_s)
                f.create_dataset(f"{split}_addresses/{sample_id}", data=channels.astype(np.int16))
                f.create_dataset(f"{split}_timestamps/{sample_id}", data=seconds)
                digit = sample_id.split("-")[-1]
                if len(digit) == 1:
                    expected[split].append((sample_id, channels, (seconds * 1e6).astype(np.int64),
                                            classes[digit]))
    return expected


def dense_reference(columns, shape, time_bins, bin_width_us, binarize=True):
    """Binned tensor by a plain loop over events: columns = list of (t_us, flat feature index)."""
    out = np.zeros((time_bins, int(np.prod(shape))), np.int64)
    if not columns:
        return out
    t0 = min(t for t, _ in columns)
    for t, feature in columns:
        step = (t - t0) // bin_width_us
        if step < time_bins:
            out[step, feature] += 1
    return (out > 0).astype(np.uint8) if binarize else np.minimum(out, 255).astype(np.uint8)


def write_shd(root, split="train", samples=6, seed=0, events=(30, 80), duration_s=0.9):
    """<root>/SHD/shd_{split}.h5 in the layout the SHD authors publish: spikes/times (vlen float16 seconds),
    spikes/units (vlen uint16 channels), labels (uint16), extra/speaker (uint16), extra/keys and
    extra/meta_info/{gender, age, body_height}. (spikejax reads spikes/* and labels; the string storage of
    extra/keys and meta_info is a guess.) Each sample holds events[0] <= n < events[1] spikes, uniform over
    the 700 channels and [0, duration_s). Returns [(channels, t_us, label)] as tonic reads them: the float16
    seconds widened to float64, times 1e6, truncated to integer microseconds."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "SHD")
    os.makedirs(folder, exist_ok=True)
    labels = rng.permutation(np.arange(samples) % 20).astype(np.uint16)
    expected = []
    with h5py.File(os.path.join(folder, f"shd_{split}.h5"), "w") as f:
        times = f.create_dataset("spikes/times", (samples,), dtype=h5py.vlen_dtype(np.dtype("float16")))
        units = f.create_dataset("spikes/units", (samples,), dtype=h5py.vlen_dtype(np.dtype("uint16")))
        for i in range(samples):
            count = int(rng.integers(*events))
            seconds = np.sort(rng.random(count) * duration_s).astype(np.float16)
            channels = rng.integers(0, 700, count).astype(np.uint16)
            times[i], units[i] = seconds, channels
            t_us = (seconds.astype(np.float64) * 1e6).astype(np.int64)
            expected.append((channels.astype(np.int64), t_us, int(labels[i])))
        f.create_dataset("labels", data=labels)
        f.create_dataset("extra/speaker", data=rng.integers(0, 12, samples).astype(np.uint16))
        keys = [f"english-{d}" for d in range(10)] + [f"german-{d}" for d in range(10)]
        f.create_dataset("extra/keys", data=np.array([k.encode() for k in keys]))
        f.create_dataset("extra/meta_info/gender", data=np.array([b"female", b"male"] * 6))
        f.create_dataset("extra/meta_info/age", data=rng.integers(20, 60, 12).astype(np.uint16))
        f.create_dataset("extra/meta_info/body_height", data=rng.uniform(1.5, 2.0, 12).astype(np.float32))
    return expected
