"""digits_events: scikit-learn's 1,797 bundled 8x8 handwritten digits as NMNIST-like event streams.

An offline stand-in for NMNIST (it is no benchmark). Each digit is upscaled to 27x27 and moved over a
34x34 event sensor along NMNIST's three saccades, (0,0) -> (3.5,7) -> (7,0) -> (0,0) pixels, 100 ms each,
simulated in 1 ms steps. A pixel fires an ON (p=1) or OFF (p=0) event when its log intensity moves by
more than its contrast threshold (0.3, with a fixed per-pixel mismatch of sigma 0.03; intensity = 0.25 + ink)
from the level
at its last event, which then moves one threshold towards the new level; timestamps are jittered within
the step and a little background noise is added. Everything is deterministic given `seed`; the
train/test split (1,437 / 360 samples) is fixed and does not depend on the seed.
"""
from __future__ import annotations

import numpy as np

SENSOR_SIZE = (34, 34, 2)
CLASSES = [str(d) for d in range(10)]
DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])
SACCADE_MS = 100
STEP_US = 1000
DIGIT_SIZE = 27
CONTRAST = 0.3
MISMATCH = 0.03
BACKGROUND = 0.25
NOISE_PER_PIXEL_STEP = 1e-4
_SPLIT_SEED = 20221
NUM_TEST = 360


def _images() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    return digits.images.astype(np.float64) / 16.0, digits.target.astype(np.int64)


def split_indices(split: str, count: int = 1797) -> np.ndarray:
    """Sample indices of the fixed split ("train" or "test")."""
    order = np.random.default_rng(_SPLIT_SEED).permutation(count)
    if split == "train":
        return np.sort(order[NUM_TEST:])
    if split == "test":
        return np.sort(order[:NUM_TEST])
    raise ValueError(f"digits_events split must be 'train' or 'test', got {split!r}")


def _trajectory() -> np.ndarray:
    """Sensor offset (dx, dy) in pixels at each 1 ms step: [300, 2]."""
    corners = np.array([[0.0, 0.0], [3.5, 7.0], [7.0, 0.0], [0.0, 0.0]])
    frac = (np.arange(SACCADE_MS) + 0.5) / SACCADE_MS
    legs = [a + (b - a) * frac[:, None] for a, b in zip(corners[:-1], corners[1:])]
    return np.concatenate(legs)


def _render_linear(images: np.ndarray) -> np.ndarray:
    """Ink seen by the sensor: [N, 8, 8] in [0, 1] -> [N, steps, 34, 34] (zoom, then bilinear shift)."""
    from scipy import ndimage

    count = len(images)
    zoom = DIGIT_SIZE / images.shape[1]
    big = np.stack([ndimage.zoom(img, zoom, order=1) for img in images])  # [N, 27, 27]
    steps = _trajectory()
    width = SENSOR_SIZE[0]
    ys, xs = np.mgrid[0:width, 0:width].astype(np.float64)
    frames = np.zeros((count, len(steps), width, width), np.float32)
    for k, (dx, dy) in enumerate(steps):
        # bilinear sample of the moving image at sensor pixel (y, x) -> image pixel (y - dy, x - dx)
        sy, sx = ys - dy, xs - dx
        y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
        fy, fx = sy - y0, sx - x0
        for oy, wy in ((0, 1 - fy), (1, fy)):
            for ox, wx in ((0, 1 - fx), (1, fx)):
                yy, xx = y0 + oy, x0 + ox
                inside = (yy >= 0) & (yy < DIGIT_SIZE) & (xx >= 0) & (xx < DIGIT_SIZE)
                gathered = big[:, np.clip(yy, 0, DIGIT_SIZE - 1), np.clip(xx, 0, DIGIT_SIZE - 1)]
                frames[:, k] += np.where(inside, gathered, 0.0) * wy * wx
    return frames


_BASIS: np.ndarray | None = None


def _render(images: np.ndarray) -> np.ndarray:
    """Log intensity seen by the sensor, [N, 8, 8] -> [N, steps, 34, 34].

    Zoom and shift are linear in the image, so the 64 basis images are rendered once and every digit is
    one matrix product with them.
    """
    global _BASIS
    if _BASIS is None:
        _BASIS = _render_linear(np.eye(64).reshape(64, 8, 8)).reshape(64, -1)
    ink = images.reshape(len(images), 64).astype(np.float32) @ _BASIS
    # log(BACKGROUND + max(ink, 0)), in place: the same float32 values without three [N, 300*34*34] temporaries
    np.maximum(ink, 0.0, out=ink)
    ink += np.float32(BACKGROUND)
    np.log(ink, out=ink)
    return ink.reshape((len(images),) + (-1, 34, 34))


def simulate(images: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """Event streams (structured arrays x, y, t [us], p) for 8x8 images in [0, 1]."""
    rng = np.random.default_rng(seed)
    frames = _render(images)  # [N, S, H, W]
    count, steps, height, width = frames.shape
    threshold = np.maximum(CONTRAST + MISMATCH * rng.standard_normal((height, width)), 0.05).astype(np.float32)
    reference = frames[:, 0].copy()
    blocks, owners = [], []
    for k in range(1, steps):
        diff = frames[:, k] - reference
        on, off = diff >= threshold, diff <= -threshold
        reference += threshold * on
        reference -= threshold * off
        n_idx, y_idx, x_idx = np.nonzero(on | off)
        block = np.empty(len(n_idx), DTYPE)
        block["x"], block["y"], block["p"] = x_idx, y_idx, on[n_idx, y_idx, x_idx]
        block["t"] = k * STEP_US + rng.integers(0, STEP_US, len(n_idx))
        blocks.append(block)
        owners.append(n_idx)
    # background noise: Poisson events at uniform pixels, times and polarities
    noise_count = rng.poisson(NOISE_PER_PIXEL_STEP * height * width * steps * count)
    noise = np.empty(noise_count, DTYPE)
    noise["x"], noise["y"] = rng.integers(0, width, noise_count), rng.integers(0, height, noise_count)
    noise["p"], noise["t"] = rng.integers(0, 2, noise_count), rng.integers(0, steps * STEP_US, noise_count)
    blocks.append(noise)
    owners.append(rng.integers(0, count, noise_count))
    events, owner = np.concatenate(blocks), np.concatenate(owners)
    order = np.lexsort((events["t"], owner))
    events, owner = events[order], owner[order]
    bounds = np.searchsorted(owner, np.arange(count + 1))
    return [events[bounds[n]:bounds[n + 1]] for n in range(count)]


def samples(split: str, seed: int = 0, chunk: int = 200):
    """Yields (events, label) for the split, simulating `chunk` digits at a time."""
    images, labels = _images()
    indices = split_indices(split, len(images))
    for start in range(0, len(indices), chunk):
        part = indices[start:start + chunk]
        # a per-chunk seed keeps samples deterministic whatever order chunks are made in
        for events, label in zip(simulate(images[part], seed=seed * 100003 + start), labels[part]):
            yield events, int(label)
