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
