"""Statistics over seeds for comparing methods (numpy and scipy.stats only).

  summary(values)        {"n", "mean", "std", "ci95": [low, high], "values"}
  paired(a, b)           the per-seed differences a - b: summary(a - b) + {"t", "p"} (two-sided paired t-test)
  sign_flip(d)           the exact two-sided sign-flip (permutation) p-value of paired differences d
  holm(p_values)         Holm's step-down adjustment of a family of p-values
  verdict(diff, claim)   "supported" / "not supported" / "not significant" for a directional claim

Definitions (n values x_1..x_n):
  mean = sum x_i / n;  std = sqrt(sum (x_i - mean)^2 / (n - 1))  (the sample standard deviation, ddof=1)
  ci95 = mean -+ t_{0.975, n-1} * std / sqrt(n)  (Student t; the interval for the mean, not for one seed)
  paired t = mean(d) / (std(d) / sqrt(n)) over d_i = a_i - b_i, p = 2 * (1 - F_t(|t|; n - 1))  (scipy.stats.ttest_rel)
With n = 1 the std, interval, t and p are None. When every difference is equal the t-test is undefined
(zero spread): p is 1 when they are all 0 (no difference at all), 0 when they are all the same non-zero
value (every seed agrees), and t is None.
"""
from __future__ import annotations

import math

import numpy as np

ALPHA = 0.05


def summary(values) -> dict:
    """Mean, sample std (ddof=1) and the Student-t 95% confidence interval of the mean of `values`."""
    x = np.asarray(values, np.float64).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"summary needs finite values, got {x.tolist()}")
    mean = float(np.mean(x))
    if x.size < 2:
        return {"n": 1, "mean": mean, "std": None, "ci95": None, "values": x.tolist()}
    from scipy import stats

    std = float(np.std(x, ddof=1))
    half = float(stats.t.ppf(0.975, x.size - 1)) * std / math.sqrt(x.size)
    return {"n": int(x.size), "mean": mean, "std": std, "ci95": [mean - half, mean + half], "values": x.tolist()}


def paired(a, b) -> dict:
    """The per-seed differences a - b (a[i] and b[i] share seed i): their summary, the paired t statistic
    and its two-sided p-value."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need one value per seed on both sides, got {a.size} and {b.size}")
    out = summary(a - b)
    if a.size < 2:
        return {**out, "t": None, "p": None}
    d = a - b
    if np.all(d == d[0]):
        return {**out, "t": None, "p": 1.0 if d[0] == 0 else 0.0}
    from scipy import stats

    result = stats.ttest_rel(a, b)
    return {**out, "t": float(result.statistic), "p": float(result.pvalue)}


def sign_flip(differences) -> float | None:
    """Exact two-sided sign-flip test of paired differences d_1..d_n (distribution-free; assumes only that
    each d_i is symmetric about 0 under the null): p = #{s in {-1, 1}^n : |sum s_i d_i| >= |sum d_i|} / 2^n.
    The smallest p it can give is 2 / 2^n (0.0625 at n = 5, 0.0078 at n = 8). None for n = 0; n <= 20."""
    d = np.asarray(differences, np.float64).ravel()
    if d.size == 0:
        return None
    if d.size > 20:
        raise ValueError(f"sign_flip enumerates 2^n sign patterns; n = {d.size} is too many (at most 20)")
    signs = 1 - 2 * ((np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1)
    observed = abs(float(d.sum()))
    flipped = np.abs(signs @ d)
    return float(np.mean(flipped >= observed - 1e-12 * max(1.0, observed)))


def holm(p_values) -> list:
    """Holm-Bonferroni adjusted p-values, in the input order (None stays None): sort the m p-values
    ascending, p_(k) -> max_{j<=k} min(1, (m - j + 1) p_(j)). Rejecting where adjusted p < alpha keeps the
    family-wise error rate at alpha."""
    present = [(p, i) for i, p in enumerate(p_values) if p is not None]
    m = len(present)
    adjusted: list = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def verdict(difference: dict, claim: str, p_key: str = "p", alpha: float = ALPHA) -> str:
    """Whether a paired difference supports the claim that it is "positive" or "negative":
    "supported" (significant, claimed direction), "not supported" (significant, opposite direction),
    "not significant" (p >= alpha, or too few seeds to test)."""
    if claim not in ("positive", "negative"):
        raise ValueError(f"claim must be 'positive' or 'negative', got {claim!r}")
    p = difference.get(p_key)
    if p is None or p >= alpha:
        return "not significant"
    positive = difference["mean"] > 0
    return "supported" if positive == (claim == "positive") else "not supported"
