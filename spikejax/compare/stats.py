"""Statistics over seeds for comparing methods (numpy and scipy.stats only).

Primary (distribution-free; what the comparison's verdicts rest on):
  differences(a, b)      the paired differences a_i - b_i (a_i, b_i share seed i), ties made exact (below)
  sign_flip(d)           the exact two-sided sign-flip (paired permutation) p-value of the mean difference
  wilcoxon(d)            the exact two-sided Wilcoxon signed-rank test: {"w_plus", "w_minus", "n_nonzero", "p"}
  bootstrap_ci(x)        the seeded percentile bootstrap 95% interval of the mean of x
  describe(x)            a distribution: n, median, q1, q3, iqr, min, max, mean, its bootstrap CI
  effect_sizes(d)        mean and median difference (the measure's units), d_z, probability of superiority
  holm(p_values)         Holm's step-down adjustment of a family of p-values
  judge(p_holm, observed, claimed)   "supported" / "significant in the opposite direction" / "not significant"
  smallest_p(n)          the smallest p an exact paired test can give with n pairs: 2 / 2^n
Secondary (Student t; they assume normal differences, which n = 5-10 seeds cannot check):
  summary(values)        {"n", "mean", "std", "ci95": [low, high], "values"}
  paired(a, b)           summary(a - b) + {"t", "p"} (two-sided paired t-test)
  verdict(diff, claim)   the t-based verdict of a paired() dict (kept for benchmarks/delays_payoff.py)

Definitions (n pairs, d_i = a_i - b_i):
  Ties and zeros. `differences` rounds each d_i to 12 significant digits of the scale s = max_i max(|a_i|,
    |b_i|): d_i = np.round(d_i, 12 - floor(log10 s)) (decimals; 12 for s in [1, 10), 13 for accuracies), so
    float rounding in a - b cannot break a tie (0.9 - 0.8 and 0.8 - 0.7 are one value) and a difference
    within about 1e-12 s of zero is an exact zero. Accuracies are multiples of
    1/n_test, so equal accuracies (d_i = 0) and equal |d_i| are common.
  sign_flip: p = #{s in {-1, 1}^n : |sum s_i d_i| >= |sum d_i|} / 2^n (sums compared to within 1e-12 of
    their size). An exact zero contributes 0 under either sign: keeping zeros gives the same p as dropping
    them, so with z zero differences p >= 2 / 2^(n - z); all zero gives p = 1. Observed direction: the sign
    of sum d_i.
  wilcoxon: zeros are dropped (Wilcoxon's rule, scipy's zero_method="wilcox"); the m = n - z non-zero |d_i|
    are ranked 1..m, equal |d_i| sharing their mean rank (midranks); W+ = sum of the ranks of positive d_i,
    W- = m(m+1)/2 - W+. p = P(|W - E| >= |W+ - E|) under the 2^m equally likely sign patterns of the
    ranks, E = m(m+1)/4, counted exactly (the permutation distribution given the ties, by dynamic
    programming over doubled ranks, so any m works); m = 0 gives p = 1. Observed direction: sign of W+ - W-.
    Without ties it equals scipy.stats.wilcoxon(method="exact"); with ties scipy's PermutationMethod.
  bootstrap_ci: B = 10,000 resamples of the n values with replacement, drawn as
    np.random.default_rng(seed).integers(0, n, (B, n)) with seed 0 (a fresh generator per call, so every
    interval is recomputable alone); the interval is np.quantile(resampled means, [0.025, 0.975]) (numpy's
    default linear interpolation): the percentile method, not BCa (BCa's acceleration is unstable at
    n = 5-10 and undefined when all values are equal). It covers the mean's sampling spread only as well as
    n seeds can show it: at small n percentile intervals are too narrow.
  effect_sizes: mean and median of d (units of the measure); d_z = mean(d) / std(d, ddof=1) (the
    standardized paired effect; None when std is 0 or n < 2); superiority = (#{d_i > 0} + #{d_i = 0} / 2) / n,
    the fraction of seeds on which a exceeds b, ties counting half.
  mean = sum x_i / n;  std = sqrt(sum (x_i - mean)^2 / (n - 1));  ci95 = mean -+ t_{0.975, n-1} std / sqrt(n)
  paired t = mean(d) / (std(d) / sqrt(n)), p = 2 (1 - F_t(|t|; n - 1)) (scipy.stats.ttest_rel). When every
    difference is equal, p is 1 when they are all 0 and 0 otherwise, and t is None; with n = 1 std, the
    interval, t and p are None.
  median, q1, q3: np.quantile with linear interpolation (q1 at 0.25, q3 at 0.75); iqr = q3 - q1.
"""
from __future__ import annotations

import math

import numpy as np

ALPHA = 0.05
TIE_DIGITS = 12  # differences are rounded to this many significant digits of the values' scale (`differences`)
BOOTSTRAP = {"method": "percentile", "resamples": 10_000, "seed": 0, "level": 0.95,
             "draw": "np.random.default_rng(seed).integers(0, n, (resamples, n))",
             "interval": "np.quantile(means of the resamples, [(1 - level) / 2, (1 + level) / 2])"}
VERDICTS = ("supported", "significant in the opposite direction", "not significant")


def differences(a, b) -> np.ndarray:
    """d_i = a_i - b_i in float64, rounded to TIE_DIGITS significant digits of s = max(|a_i|, |b_i|) over
    all i, so that ties and zeros are exact (module docstring)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need one value per seed on both sides, got {a.size} and {b.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError(f"paired values must be finite, got {a.tolist()} and {b.tolist()}")
    scale = float(max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0)))
    if scale == 0.0:
        return a - b
    return np.round(a - b, TIE_DIGITS - math.floor(math.log10(scale))) + 0.0  # + 0.0: no negative zeros


def sign_flip(differences) -> float | None:
    """Exact two-sided sign-flip test of paired differences d_1..d_n (distribution-free; assumes only that
    each d_i is symmetric about 0 under the null): p = #{s in {-1, 1}^n : |sum s_i d_i| >= |sum d_i|} / 2^n.
    The smallest p it can give is 2 / 2^n (0.0625 at n = 5, 0.0078 at n = 8). Exact zeros change nothing
    (the same p as without them). None for n = 0; n <= 20."""
    d = np.asarray(differences, np.float64).ravel()
    if d.size == 0:
        return None
    if d.size > 20:
        raise ValueError(f"sign_flip enumerates 2^n sign patterns; n = {d.size} is too many (at most 20)")
    signs = 1 - 2 * ((np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1)
    observed = abs(float(d.sum()))
    flipped = np.abs(signs @ d)
    return float(np.mean(flipped >= observed - 1e-12 * max(1.0, observed)))


def wilcoxon(differences) -> dict:
    """Exact two-sided Wilcoxon signed-rank test of paired differences (zeros dropped, midranks for equal
    |d_i|; module docstring): {"w_plus", "w_minus", "n_nonzero", "p"}. p is exact given the ties (the
    2^m sign patterns of the ranks counted by dynamic programming)."""
    d = np.asarray(differences, np.float64).ravel()
    nonzero = d[d != 0]
    m = int(nonzero.size)
    if m == 0:
        return {"w_plus": 0.0, "w_minus": 0.0, "n_nonzero": 0, "p": 1.0}
    from scipy.stats import rankdata

    doubled = np.rint(2 * rankdata(np.abs(nonzero))).astype(np.int64)  # midranks are halves: 2r is an integer
    total = int(doubled.sum())
    counts = np.zeros(total + 1, dtype=object)  # counts[k]: sign patterns with 2 W+ = k (exact integers)
    counts[0] = 1
    for r in doubled:
        shifted = np.zeros_like(counts)
        shifted[r:] = counts[:total + 1 - r]
        counts = counts + shifted
    w_plus2 = int(doubled[nonzero > 0].sum())
    distance = abs(2 * w_plus2 - total)  # |2 W+ - 2 E| in doubled units (2 E = total / 2, times 2)
    extreme = sum(int(c) for k, c in enumerate(counts) if abs(2 * k - total) >= distance)
    return {"w_plus": w_plus2 / 2, "w_minus": (total - w_plus2) / 2, "n_nonzero": m, "p": extreme / 2 ** m}


def bootstrap_ci(values, *, seed: int = BOOTSTRAP["seed"], resamples: int = BOOTSTRAP["resamples"],
                 level: float = BOOTSTRAP["level"]) -> list[float] | None:
    """The percentile bootstrap interval of the mean of `values` (module docstring: B resamples drawn by
    np.random.default_rng(seed)); None for fewer than 2 values."""
    x = np.asarray(values, np.float64).ravel()
    if x.size < 2:
        return None
    index = np.random.default_rng(seed).integers(0, x.size, (resamples, x.size))
    low, high = np.quantile(x[index].mean(axis=1), [(1 - level) / 2, (1 + level) / 2])
    return [float(low), float(high)]


def describe(values) -> dict:
    """A distribution of per-seed values: {"n", "median", "q1", "q3", "iqr", "min", "max", "mean",
    "bootstrap_ci"} (the bootstrap interval is of the mean), plus the t-based "std" and "ci95" (secondary)."""
    x = np.asarray(values, np.float64).ravel()
    t = summary(x)
    q1, median, q3 = (float(q) for q in np.quantile(x, [0.25, 0.5, 0.75]))
    return {"n": t["n"], "median": median, "q1": q1, "q3": q3, "iqr": q3 - q1, "min": float(x.min()),
            "max": float(x.max()), "mean": t["mean"], "bootstrap_ci": bootstrap_ci(x), "std": t["std"],
            "ci95": t["ci95"]}


def effect_sizes(differences) -> dict:
    """{"mean", "median"} of the differences (the measure's units), "d_z" = mean / std (ddof=1; None when
    the std is 0 or n < 2) and "superiority" = (#{d > 0} + #{d = 0} / 2) / n."""
    d = np.asarray(differences, np.float64).ravel()
    std = float(np.std(d, ddof=1)) if d.size > 1 else 0.0
    mean = float(np.mean(d))
    return {"mean": mean, "median": float(np.median(d)), "d_z": mean / std if std > 0 else None,
            "superiority": float((np.sum(d > 0) + 0.5 * np.sum(d == 0)) / d.size)}


def smallest_p(n: int) -> float:
    """The smallest two-sided p-value an exact paired test (sign-flip or signed-rank) can give with n
    pairs: 2 / 2^n (all n differences on one side)."""
    return min(1.0, 2.0 / 2 ** n)


def seeds_needed(family_size: int, alpha: float = ALPHA) -> int:
    """The fewest pairs with which the strongest result of an exact paired test survives Holm over a family
    of `family_size`: the smallest n with family_size * 2 / 2^n < alpha."""
    n = 1
    while family_size * smallest_p(n) >= alpha:
        n += 1
    return n


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


def judge(p_adjusted: float | None, observed: float, claimed: str, alpha: float = ALPHA) -> str:
    """A directional claim ("positive": a > b, "negative": a < b) judged by its adjusted p-value and the
    observed direction (the sign of `observed`): "supported" when p < alpha in the claimed direction,
    "significant in the opposite direction" when p < alpha the other way, else "not significant"."""
    if claimed not in ("positive", "negative"):
        raise ValueError(f"claimed direction must be 'positive' or 'negative', got {claimed!r}")
    if p_adjusted is None or p_adjusted >= alpha or observed == 0:
        return "not significant"
    return VERDICTS[0] if (observed > 0) == (claimed == "positive") else VERDICTS[1]


# -------------------------------------------------------------------------------------------------------
# Secondary: Student t


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
