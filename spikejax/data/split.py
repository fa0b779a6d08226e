"""The validation hold-out and its folds: fixed, stratified parts of each dataset's training split.

For every class c, the training samples of class c are ordered by the BLAKE2b hash of
"spikejax-validation/<seed>/<index>" (8-byte digest, compared as bytes). Fold k (k = 0, 1, ...) of a
`fraction` holds out the positions round(k * fraction * n_c) .. round((k + 1) * fraction * n_c) - 1 of that
order (Python's round, half to even), so folds 0 .. fold_count(fraction) - 1 are disjoint and, when
1 / fraction is an integer, cover the whole training split; fold 0 is the first round(fraction * n_c)
samples (the single run's and the final stage's hold-out). Each class keeps at least one sample for
training. The order depends only on the sample indices and the seed (no random generator, no platform or
library version), so every fold is the same on every machine, and a sample's fold does not change when
other samples of its class come or go. Hyperparameters are chosen on held-out folds only; the test split is
evaluated once per chosen configuration.
"""
from __future__ import annotations

import hashlib

import numpy as np

VALIDATION_SEED = 0


def _rank(index: int, seed: int) -> bytes:
    return hashlib.blake2b(f"spikejax-validation/{seed}/{index}".encode(), digest_size=8).digest()


def fold_count(fraction: float) -> int:
    """How many disjoint folds of `fraction` the training split holds: floor(1 / fraction) (0 for 0)."""
    return int(1.0 / fraction + 1e-9) if fraction > 0 else 0


def holdout(labels, fraction: float, seed: int = VALIDATION_SEED, fold: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(kept indices, held-out indices), both sorted int64, for labels [N], 0 <= fraction < 1 and fold k in
    0 .. fold_count(fraction) - 1 (module docstring).

    Each class keeps at least one sample for training; a class of one sample holds none out in fold 0.
    """
    labels = np.asarray(labels)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must lie in [0, 1), got {fraction}")
    if fold and not 0 <= fold < fold_count(fraction):
        raise ValueError(f"validation fold {fold}: a fraction of {fraction} has folds 0 .. "
                         f"{fold_count(fraction) - 1}")
    held = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        start, stop = int(round(fold * fraction * len(members))), int(round((fold + 1) * fraction * len(members)))
        stop = min(stop, start + len(members) - 1)  # at least one sample of the class trains
        if stop > start:
            held.extend(sorted(members.tolist(), key=lambda i: _rank(i, seed))[start:stop])
    held = np.sort(np.asarray(held, np.int64))
    kept = np.setdiff1d(np.arange(len(labels), dtype=np.int64), held)
    return kept, held
