"""The validation hold-out: a fixed, stratified part of each dataset's training split.

For every class c, the training samples of class c are ordered by the BLAKE2b hash of
"spikejax-validation/<seed>/<index>" and the first round(fraction * n_c) of that order are held out. The
order depends only on the sample indices and the seed (no random generator, no platform or library
version), so the split is the same on every machine, and a sample's membership does not change when other
samples of its class come or go. Hyperparameters are chosen on the held-out part only; the test split is
evaluated once per chosen configuration.
"""
from __future__ import annotations

import hashlib

import numpy as np

VALIDATION_SEED = 0


def _rank(index: int, seed: int) -> bytes:
    return hashlib.blake2b(f"spikejax-validation/{seed}/{index}".encode(), digest_size=8).digest()


def holdout(labels, fraction: float, seed: int = VALIDATION_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(kept indices, held-out indices), both sorted int64, for labels [N] and 0 <= fraction < 1.

    Each class keeps at least one sample for training; a class of one sample holds none out.
    """
    labels = np.asarray(labels)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must lie in [0, 1), got {fraction}")
    held = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        count = min(int(round(fraction * len(members))), len(members) - 1)
        if count > 0:
            held.extend(sorted(members.tolist(), key=lambda i: _rank(i, seed))[:count])
    held = np.sort(np.asarray(held, np.int64))
    kept = np.setdiff1d(np.arange(len(labels), dtype=np.int64), held)
    return kept, held
