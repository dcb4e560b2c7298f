"""Exact sign test and order-statistic CI of a median, against scipy's binomial."""

import math

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from qmu_hw.metrics.sign_test import median_ci, median_test, min_sign_test_p, sign_test_p


def test_sign_test_drops_zeros_and_is_never_zero():
    d = [0.5, 0.2, 0.0, 0.3, -0.1, 0.4, 0.0, 0.7]
    assert sign_test_p(d) == pytest.approx(binomtest(5, 6, 0.5).pvalue)
    assert sign_test_p([0.0, 0.0]) == 1.0
    assert sign_test_p([1.0] * 12) == pytest.approx(2 * 0.5 ** 12)
    assert min_sign_test_p([1.0] * 5 + [0.0]) == pytest.approx(2 ** -4)


def test_median_ci_order_statistics_by_hand():
    d = np.arange(1.0, 21.0)  # n = 20: k = 6 (2·P(B ≤ 5) = 0.041 ≤ 0.05; k = 7 gives 0.115)
    assert 2 * binom.cdf(5, 20, 0.5) <= 0.05 < 2 * binom.cdf(6, 20, 0.5)
    assert median_ci(d) == (6.0, 15.0)
    assert median_ci([1.0, 2.0, 3.0, 4.0, 5.0]) == (-math.inf, math.inf)  # n = 5 cannot reach 95 %
    t = median_test(np.random.default_rng(0).permutation(d))
    assert (t.median, t.ci_low, t.ci_high, t.n) == (10.5, 6.0, 15.0, 20)
