"""The exact paired tests and multiplicity corrections of qmu_hw.metrics.stats."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from qmu_hw.metrics.stats import (
    benjamini_hochberg,
    holm,
    min_attainable_p,
    paired_test,
    per_unit_slopes,
    sign_flip_ci,
    sign_flip_p,
    units_needed,
)


def _by_hand(d) -> float:
    """Two-sided sign-flip p by listing every sign pattern with plain Python."""
    obs = abs(sum(d))
    hits = total = 0
    for signs in itertools.product((1, -1), repeat=len(d)):
        total += 1
        hits += abs(sum(s * x for s, x in zip(signs, d, strict=True))) >= obs - 1e-12
    return hits / total


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_sign_flip_p_equals_a_hand_enumeration(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        d = rng.normal(0.1, 0.3, n).round(3).tolist()
        assert sign_flip_p(d) == pytest.approx(max(_by_hand(d), 2.0 ** (1 - n)))
    # a hand-checked case: d = (1, 2, 3), |sum| = 6 is reached only by (+,+,+) and (-,-,-)
    assert sign_flip_p([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)
    # d = (1, -1, 2), |sum| = 2: (+,+,+) = 2, (+,-,+) = 4, (-,+,+) = 0, (-,-,+) = 2 and their
    # mirrors, so 6 of the 8 patterns are as extreme
    assert sign_flip_p([1.0, -1.0, 2.0]) == pytest.approx(6 / 8)


def test_constant_deltas_at_n3_give_a_quarter_not_zero():
    p = sign_flip_p([0.556, 0.556, 0.556])
    assert p == 0.25
    t = paired_test([0.556, 0.556, 0.556])
    assert t.p_value == 0.25 and t.min_p == 0.25 and t.n == 3
    # n = 3 cannot bound the mean at 95 %: the interval is unbounded, never zero-width
    assert t.ci_low == -math.inf and t.ci_high == math.inf


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), min_size=1, max_size=12))
def test_p_is_never_below_the_smallest_attainable(d):
    p = sign_flip_p(d)
    assert min_attainable_p(len(d)) <= p <= 1.0


def test_monte_carlo_beyond_sixteen_units_is_close_to_the_normal_approximation():
    rng = np.random.default_rng(0)
    d = rng.normal(0.0, 1.0, 40)
    p = sign_flip_p(d)
    # the randomisation distribution of sum(d) has variance sum(d^2)
    from scipy.stats import norm

    z = abs(d.sum()) / math.sqrt((d ** 2).sum())
    assert p == pytest.approx(2 * norm.sf(z), abs=0.02)
    assert p >= 1 / (1 + 20_000)


@pytest.mark.parametrize("seed", range(3))
def test_holm_and_bh_match_statsmodels(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 0.05, 5), rng.uniform(0, 1, 15), [0.03, 0.03]])  # ties included
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    assert benjamini_hochberg(p) == pytest.approx(multipletests(p, method="fdr_bh")[1])
    assert holm([]).size == 0 and benjamini_hochberg([]).size == 0


def test_ci_covers_the_centre_at_least_at_its_level():
    rng = np.random.default_rng(7)
    n, trials, centre = 8, 400, 0.3
    k = math.floor(0.025 * 2 ** n)
    nominal = 1 - 2 * k / 2 ** n  # the exact guaranteed coverage at n = 8 (0.953)
    hits = 0
    for _ in range(trials):
        d = centre + rng.standard_t(3, n) * 0.2  # symmetric, heavy tailed
        lo, hi = sign_flip_ci(d)
        hits += lo <= centre <= hi
    # binomial sd at 400 trials ~ 0.011: three of them below the guarantee would fail
    assert hits / trials >= nominal - 0.035
    lo, hi = sign_flip_ci(rng.normal(0, 1, 8))
    assert lo < hi and math.isfinite(lo) and math.isfinite(hi)


def test_ci_is_unbounded_when_n_cannot_reach_the_level():
    for n in range(1, 6):
        assert sign_flip_ci(np.arange(1.0, n + 1)) == (-math.inf, math.inf)
    assert all(map(math.isfinite, sign_flip_ci(np.arange(1.0, 7.0))))


def test_slopes_and_units_needed():
    x = [0.0, 0.001, 0.01, 0.02]
    y = np.array([[1 + 2 * v for v in x], [3 - 5 * v for v in x]])
    assert per_unit_slopes(x, y) == pytest.approx([2.0, -5.0])
    with pytest.raises(ValueError, match="two distinct levels"):
        per_unit_slopes([0.1, 0.1], [[1, 2]])
    assert units_needed(0.05, 0.0) == 6  # 2^(1-6) = 0.031 < 0.05; five can never reach it
    assert units_needed(0.05, 0.1) == math.ceil((2.8015852 * 2) ** 2)
    with pytest.raises(ValueError, match="positive effect size"):
        units_needed(0.0, 0.1)
