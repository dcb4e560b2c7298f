"""The median of paired differences: the exact sign test and its order-statistic CI.

For per-example differences (Δε of one forget example between two backends) the mean is a
poor summary: ε is floored at 0, quantised by the Clopper–Pearson bounds and often tied,
so the sign-flip test on the mean (:mod:`.stats`) would weigh a few large moves. The
median's exact inference needs only the signs:

* test: under H0 "the median difference is 0", the number of positive differences among the
  non-zero ones is Binomial(m, ½); two-sided p from ``scipy.stats.binomtest`` (zeros are
  dropped, the usual convention). Never 0: its smallest value is 2^(1−m).
* CI: with d_(1) ≤ … ≤ d_(n), [d_(k), d_(n−k+1)] covers the median with probability
  1 − 2·P(B ≤ k − 1), B ~ Binomial(n, ½); k is the largest index keeping that ≥ the level.
  When even k = 1 falls short (n ≤ 5 at 95 %) the interval is unbounded, the honest answer.
  (Hollander & Wolfe, Nonparametric Statistical Methods, §3.6.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .stats import CI_LEVEL, _finite_1d


def sign_test_p(d) -> float:
    """Two-sided exact sign test of "median of ``d`` is 0"; 1.0 when every difference is 0."""
    from scipy.stats import binomtest

    a = _finite_1d(d)
    pos, neg = int((a > 0).sum()), int((a < 0).sum())
    if pos + neg == 0:
        return 1.0
    return float(min(1.0, binomtest(pos, pos + neg, 0.5).pvalue))


def min_sign_test_p(d) -> float:
    """The smallest p the sign test could give with these many non-zero differences."""
    m = int((_finite_1d(d) != 0).sum())
    return 1.0 if m == 0 else float(min(1.0, 2.0 ** (1 - m)))


def median_ci(d, level: float = CI_LEVEL) -> tuple[float, float]:
    """Distribution-free CI for the median of ``d`` from order statistics (see module docstring)."""
    from scipy.stats import binom

    a = np.sort(_finite_1d(d))
    n = a.size
    alpha = 1.0 - level
    ks = np.arange(1, n // 2 + 1)
    ok = ks[2.0 * binom.cdf(ks - 1, n, 0.5) <= alpha]
    if ok.size == 0:
        return -math.inf, math.inf
    k = int(ok.max())
    return float(a[k - 1]), float(a[n - k])


@dataclass(frozen=True)
class MedianTest:
    n: int
    median: float
    ci_low: float
    ci_high: float
    p_value: float
    min_p: float
    n_positive: int
    n_negative: int


def median_test(d, level: float = CI_LEVEL) -> MedianTest:
    a = _finite_1d(d)
    lo, hi = median_ci(a, level)
    return MedianTest(int(a.size), float(np.median(a)), lo, hi, sign_test_p(a), min_sign_test_p(a),
                      int((a > 0).sum()), int((a < 0).sum()))
