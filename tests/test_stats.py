"""Statistics over seeds against hand-computed values and scipy/numpy."""
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from spikejax.compare import stats


def test_summary_matches_the_hand_computed_t_interval():
    s = stats.summary([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s["n"] == 5 and s["mean"] == 3.0
    assert s["std"] == pytest.approx(math.sqrt(2.5))            # sum of squares 10 over n-1 = 4
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)             # t_{0.975, 4} from the table
    assert s["ci95"] == pytest.approx([3.0 - half, 3.0 + half], abs=1e-6)
    values = np.random.default_rng(0).normal(size=7)
    t = stats.summary(values)
    assert t["std"] == pytest.approx(np.std(values, ddof=1))
    low, high = scipy_stats.t.interval(0.95, 6, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert t["ci95"] == pytest.approx([low, high])


def test_summary_of_one_value_has_no_spread_and_non_finite_values_are_refused():
    assert stats.summary([0.5]) == {"n": 1, "mean": 0.5, "std": None, "ci95": None, "values": [0.5]}
    with pytest.raises(ValueError, match="finite"):
        stats.summary([1.0, float("nan")])


def test_paired_t_test_matches_the_hand_computed_statistic_and_scipy():
    a, b = [0.9, 0.8, 0.85, 0.95], [0.7, 0.75, 0.8, 0.6]
    d = stats.paired(a, b)                                       # differences 0.2, 0.05, 0.05, 0.35
    assert d["mean"] == pytest.approx(0.1625)
    assert d["std"] == pytest.approx(math.sqrt(0.061875 / 3))
    assert d["t"] == pytest.approx(0.1625 / (math.sqrt(0.061875 / 3) / 2))
    assert d["p"] == pytest.approx(2 * scipy_stats.t.sf(d["t"], 3))
    assert d["p"] == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
    assert 0.05 < d["p"] < 0.2                                   # |t| = 2.26 < t_{0.975, 3} = 3.182
    assert stats.verdict(d, "positive") == "not significant"


def test_paired_without_spread_and_verdicts_in_both_directions():
    assert stats.paired([1, 2, 3], [1, 2, 3])["p"] == 1.0
    same = stats.paired([2, 3, 4], [1, 2, 3])
    assert same["p"] == 0.0 and same["t"] is None
    assert stats.verdict(same, "positive") == "supported"
    assert stats.verdict(same, "negative") == "not supported"
    assert stats.paired([1.0], [0.0])["p"] is None
    with pytest.raises(ValueError, match="one value per seed"):
        stats.paired([1, 2], [1, 2, 3])


def test_holm_adjustment_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, None, 0.9]) == [1.0, None, 1.0]      # m = 2: 0.5 * 2, max(1.0, 0.9 * 1)


def test_sign_flip_is_the_exact_permutation_p_value():
    """Counted by hand: d = (1, 2, 3) has |sum| 6; of the 8 sign patterns only (+,+,+) and (-,-,-) reach 6,
    so p = 2/8. With all 8 differences positive p is the floor 2/2^8; all zero gives 1. scipy's
    permutation_test with the same statistic agrees on a random case."""
    assert stats.sign_flip([1.0, 2.0, 3.0]) == 0.25
    assert stats.sign_flip([0.5] * 8) == 2 / 256
    assert stats.sign_flip([0.0, 0.0]) == 1.0
    # d = (1, -1, 2), |sum| 2: s.d is 2, -2, 4, -4, -2, 2 for s = +++, ---, +-+, -+-, ++-, --+ and 0 for +--, -++
    assert stats.sign_flip([1.0, -1.0, 2.0]) == 6 / 8
    d = np.random.default_rng(0).normal(0.3, 1.0, 9)
    reference = scipy_stats.permutation_test((d,), np.sum, permutation_type="samples", n_resamples=np.inf,
                                             alternative="two-sided").pvalue
    assert abs(stats.sign_flip(d) - reference) < 1e-12


def test_differences_make_ties_and_zeros_exact():
    """0.9 - 0.8 and 0.8 - 0.7 differ in float64 (0.09999999999999998 and 0.10000000000000009): after the
    tie rule they are one value, and 0.3 - (0.1 + 0.2) (-5.6e-17) is an exact, non-negative zero."""
    assert 0.9 - 0.8 != 0.8 - 0.7 and 0.3 - (0.1 + 0.2) != 0
    d = stats.differences([0.9, 0.8, 0.3], [0.8, 0.7, 0.1 + 0.2])
    assert d[0] == d[1] and d[2] == 0 and not np.signbit(d[2])
    assert stats.differences([1e4 + 0.5, 2e4], [1e4, 2e4 - 0.5]).tolist() == [0.5, 0.5]
    assert stats.differences([0.0, 0.0], [0.0, 0.0]).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="one value per seed"):
        stats.differences([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        stats.differences([1.0, float("nan")], [1.0, 2.0])


def test_wilcoxon_by_hand_and_against_scipy():
    """d = (1, -2, 0, 3): the zero is dropped, ranks 1, 2, 3, W+ = 1 + 3 = 4, W- = 2; the 8 sign patterns
    give W+ in {0, 1, 2, 3, 3, 4, 5, 6}, E = 3, and |W+ - 3| >= 1 for 6 of them: p = 6/8. Without ties or zeros
    it is scipy's exact test, with them scipy's permutation version of the same statistic (zero_method wilcox)."""
    assert stats.wilcoxon([1.0, -2.0, 0.0, 3.0]) == {"w_plus": 4.0, "w_minus": 2.0, "n_nonzero": 3, "p": 0.75}
    assert stats.wilcoxon([1.0, 2.0, 3.0])["p"] == 0.25 and stats.wilcoxon([0.0, 0.0])["p"] == 1.0
    assert stats.wilcoxon([0.5] * 6)["p"] == stats.smallest_p(6) == 2 / 64      # all tied, one side
    rng = np.random.default_rng(1)
    for n in (5, 8, 11):
        d = rng.normal(0.4, 1.0, n)
        mine = stats.wilcoxon(d)
        theirs = scipy_stats.wilcoxon(d, method="exact")
        assert mine["p"] == pytest.approx(theirs.pvalue, abs=1e-12)
        assert min(mine["w_plus"], mine["w_minus"]) == theirs.statistic
    exhaustive = scipy_stats.PermutationMethod(n_resamples=np.inf)
    for d in ([1.0, 2.0, 2.0, -1.0, 0.0, 3.0, 0.5], [0.1, 0.1, -0.1, 0.2, 0.0, 0.0, 0.1, -0.3], [2.0, 2.0, -2.0]):
        theirs = scipy_stats.wilcoxon(d, zero_method="wilcox", method=exhaustive)
        assert stats.wilcoxon(d)["p"] == pytest.approx(theirs.pvalue, abs=1e-12), d


def test_sign_flip_ignores_exact_zeros():
    """A zero difference flips to itself, so it doubles both counts: p is that of the non-zero ones."""
    assert stats.sign_flip([1.0, 2.0, 3.0, 0.0, 0.0]) == stats.sign_flip([1.0, 2.0, 3.0]) == 0.25


def test_bootstrap_ci_is_the_seeded_percentile_interval():
    """Recomputed from the declared draw (equal up to the summation order of numpy's mean), and close to
    scipy.stats.bootstrap's percentile interval (other resamples: within a few Monte Carlo standard errors
    of a percentile, here < 0.05 of the data's sd)."""
    x = np.random.default_rng(3).normal(2.0, 1.0, 10)
    index = np.random.default_rng(0).integers(0, 10, (10_000, 10))
    expected = np.quantile(x[index].mean(axis=1), [0.025, 0.975])
    assert stats.bootstrap_ci(x) == pytest.approx(expected.tolist(), rel=1e-12)  # summation order aside
    assert stats.bootstrap_ci(x, seed=0) == stats.bootstrap_ci(x)                 # reproducible
    theirs = scipy_stats.bootstrap((x,), np.mean, method="percentile", n_resamples=100_000,
                                   rng=np.random.default_rng(7)).confidence_interval
    assert stats.bootstrap_ci(x) == pytest.approx([theirs.low, theirs.high], abs=0.05)
    assert stats.bootstrap_ci([1.0]) is None and stats.bootstrap_ci([2.0, 2.0]) == [2.0, 2.0]


def test_describe_and_effect_sizes_by_hand():
    s = stats.describe([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (s["median"], s["q1"], s["q3"], s["iqr"], s["min"], s["max"], s["mean"]) == (3, 2, 4, 2, 1, 5, 3)
    assert s["std"] == pytest.approx(math.sqrt(2.5)) and s["n"] == 5
    e = stats.effect_sizes([0.2, 0.0, 0.1, -0.1])                 # mean 0.05, sd sqrt(0.05 / 3)
    assert e["mean"] == pytest.approx(0.05) and e["median"] == pytest.approx(0.05)
    assert e["d_z"] == pytest.approx(0.05 / math.sqrt(0.05 / 3))
    assert e["superiority"] == (2 + 0.5) / 4                      # two above zero, one tie counting half
    assert stats.effect_sizes([1.0, 1.0])["d_z"] is None


def test_smallest_p_seeds_needed_and_judge():
    assert stats.smallest_p(5) == 0.0625 and stats.smallest_p(10) == 2 / 1024
    assert stats.seeds_needed(1) == 6            # 2/2^5 = 0.0625 >= 0.05, 2/2^6 = 0.031
    assert stats.seeds_needed(12) == 9           # 12 * 2/2^8 = 0.094, 12 * 2/2^9 = 0.047
    assert stats.judge(0.01, 0.3, "positive") == "supported"
    assert stats.judge(0.01, 0.3, "negative") == "significant in the opposite direction"
    assert stats.judge(0.05, 0.3, "positive") == stats.judge(None, 1.0, "negative") == "not significant"
    with pytest.raises(ValueError, match="direction"):
        stats.judge(0.01, 1.0, "higher")


def test_the_comparisons_family_and_the_seeds_it_needs():
    """3 claims per (spikemax label, other label) pair: the default four labels make 2 x 2 x 3 = 12
    hypotheses, which 9 seeds can pass (12 * 2/2^9 = 0.047 < 0.05) and 8 cannot (0.094); all eleven labels
    make 2 x 9 x 3 = 54, which need 12 seeds (54 * 2/2^12 = 0.026; with 11, 0.053)."""
    from spikejax.compare import report
    from spikejax.compare import sweep as sweep_lib

    default = ("mse", "softmax", "nll", "nll_window")
    assert report.family_size(default) == 12
    assert report.seeds_warning(default, 9) is None and report.seeds_warning(default, 10) is None
    assert "--sweep.seeds=9" in report.seeds_warning(default, 8)
    every = sweep_lib.labels(sweep_lib.expanded(_all_sweep()))
    assert len(every) == 11 and report.family_size(every) == 54
    assert "--sweep.seeds=12" in report.seeds_warning(every, 10) and report.seeds_warning(every, 12) is None
    assert report.family_size(("mse", "softmax")) == 0 and report.seeds_warning(("mse", "softmax"), 2) is None


def _all_sweep():
    from configs import sweep

    config = sweep.get_config()
    config.losses = ("all",)
    return config
