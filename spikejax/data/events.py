"""Events -> dense, time-major spike tensors (host numpy).

An event stream is a numpy structured array with fields t (microseconds), x, and for vision sensors y
and p (polarity), as tonic returns them. Binning uses one fixed bin width for every sample, so step k
always covers [k*bin_width_us, (k+1)*bin_width_us) after the sample's first event; events after
`time_bins` bins are dropped and shorter samples are zero at the end.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from spikejax.errors import DataError


@dataclasses.dataclass(frozen=True)
class Binning:
    """How events become a [T, F] tensor.

    time_bins: T, the number of steps.
    bin_width_us: width of one step in microseconds.
    downsample: spatial pooling factor for x and y (1 = none).
    polarity: keep ON/OFF as two channels (True) or merge them into one (False).
    binarize: 1 where a bin holds any event (spikes), else event counts clipped at 255.
    """

    time_bins: int
    bin_width_us: int
    downsample: int = 1
    polarity: bool = True
    binarize: bool = True

    def __post_init__(self):
        for name in ("time_bins", "bin_width_us", "downsample"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Binning.{name} must be a positive int, got {value!r}")


def frame_shape(sensor_size: tuple[int, int, int], binning: Binning) -> tuple[int, ...]:
    """Per-step tensor shape for a tonic sensor_size (W, H, P): (P', H', W') for cameras, (W,) for
    one-dimensional sensors such as a cochlea (H = 1, P = 1)."""
    width, height, polarities = sensor_size
    if height == 1 and polarities == 1:
        return (-(-width // binning.downsample),)
    channels = polarities if binning.polarity else 1
    return (channels, -(-height // binning.downsample), -(-width // binning.downsample))


def feature_index(events: np.ndarray, sensor_size, binning: Binning) -> np.ndarray:
    """Flat index into `frame_shape` for every event."""
    shape = frame_shape(sensor_size, binning)
    x = np.asarray(events["x"], np.int64) // binning.downsample
    if len(shape) == 1:
        return x
    channels, height, width = shape
    y = np.asarray(events["y"], np.int64) // binning.downsample
    p = np.asarray(events["p"], np.int64) if channels > 1 else np.zeros_like(x)
    return (p * height + y) * width + x


def bin_events(events: np.ndarray, sensor_size, binning: Binning) -> np.ndarray:
    """One sample's events -> uint8 [T, F] (F = prod(frame_shape)); 0/1 if binarize, else counts."""
    num_features = int(np.prod(frame_shape(sensor_size, binning)))
    if len(events) == 0:
        return np.zeros((binning.time_bins, num_features), np.uint8)
    t = np.asarray(events["t"], np.int64)
    step = (t - t.min()) // binning.bin_width_us
    keep = step < binning.time_bins
    flat = step[keep] * num_features + feature_index(events[keep], sensor_size, binning)
    counts = np.bincount(flat, minlength=binning.time_bins * num_features)
    counts = (counts > 0) if binning.binarize else np.minimum(counts, 255)
    return counts.astype(np.uint8).reshape(binning.time_bins, num_features)


def check_events(events: np.ndarray, sensor_size, origin: str) -> None:
    """Raises a DataError naming `origin` if events are empty or fall outside the sensor."""
    if len(events) == 0:
        raise DataError(f"{origin}: sample has no events")
    width, height, polarities = sensor_size
    bounds = {"x": width, "y": height, "p": max(polarities, 2)}
    for field, limit in bounds.items():
        if field in events.dtype.names:
            values = np.asarray(events[field], np.int64)
            if values.min() < 0 or values.max() >= limit:
                raise DataError(f"{origin}: event field {field!r} has values in [{values.min()}, "
                                 f"{values.max()}], outside the sensor range [0, {limit})")
    t = np.asarray(events["t"])
    if not np.all(np.isfinite(t)) or t.min() < 0:
        raise DataError(f"{origin}: event timestamps must be finite and non-negative")
