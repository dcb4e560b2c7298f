"""Exact paired inference for small samples: sign-flip tests, their confidence intervals,
multiplicity corrections, per-unit slopes and the sample size a design needs.

Why not a t-test: a study compares methods over a handful of seeds, often on binary
(``within_oracle_spread``) or coarse (accuracy over 9 samples) metrics, where the t
distribution is wrong and a constant difference gives a zero standard error (p = 0). The
sign-flip (randomisation) test is exact under the null of a distribution symmetric about 0:
with n paired units there are 2^n equally likely sign patterns, so the smallest attainable
two-sided p is 2^(1-n) (0.0625 at n = 5), and p is never 0.

The matching confidence interval inverts the same test: the 2^n - 1 means of non-empty
subsets of the differences cut the line into 2^n intervals, each of which holds the centre
of symmetry with probability 2^-n (Hartigan 1969, "Using subsample values as typical values",
JASA 64:1303). Taking the k-th smallest and k-th largest subset mean with k = floor(α/2 · 2^n)
gives coverage 1 - 2k/2^n ≥ 1 - α; when k = 0 (n ≤ 5 at α = 0.05) the design cannot bound
the effect and the interval is unbounded (-inf, inf), which is the honest answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import product

import numpy as np

EXACT_MAX_N = 16  # 2^16 sign patterns enumerate in milliseconds; beyond, Monte Carlo
MC_DRAWS = 20_000
CI_LEVEL = 0.95
CI_LABEL = "95 % CI"


def _finite_1d(d, what: str = "differences") -> np.ndarray:
    a = np.asarray(d, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError(f"expected at least one paired {what}, got none")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"expected finite paired {what}, got {a[~np.isfinite(a)][:3].tolist()}")
    return a


def min_attainable_p(n: int) -> float:
    """The smallest two-sided p the sign-flip test can give with ``n`` units: 2^(1-n)."""
    return 1.0 if n < 1 else float(2.0 ** (1 - n))


@lru_cache(maxsize=EXACT_MAX_N + 1)
def _patterns(n: int) -> np.ndarray:
    """All 2^n sign patterns, shape (2^n, n); cached (a study runs thousands of tests at the
    same n) and read-only so no caller can change the cached copy."""
    out = np.array(list(product((1.0, -1.0), repeat=n)), dtype=np.float64)
    out.setflags(write=False)
    return out


def sign_flip_p(d, *, seed: int = 0, draws: int = MC_DRAWS) -> float:
    """Two-sided p of the paired sign-flip test of "the differences ``d`` are symmetric about 0".

    Statistic ``|Σ d|``; exact enumeration of all 2^n sign patterns for n ≤ 16, a seeded
    Monte Carlo estimate (``(1 + hits) / (1 + draws)``) beyond. Never below 2^(1-n)."""
    a = _finite_1d(d)
    n = a.size
    obs = abs(a.sum())
    tol = 1e-12 * max(1.0, float(np.abs(a).sum()))  # ties up to rounding count as "as extreme"
    if n <= EXACT_MAX_N:
        stats = np.abs(_patterns(n) @ a)
        p = float(np.mean(stats >= obs - tol))
    else:
        rng = np.random.default_rng(seed)
        signs = rng.choice((-1.0, 1.0), size=(draws, n))
        hits = int(np.sum(np.abs(signs @ a) >= obs - tol))
        p = (1 + hits) / (1 + draws)
    return float(min(1.0, max(p, min_attainable_p(n))))


def sign_flip_ci(d, level: float = CI_LEVEL) -> tuple[float, float]:
    """``(low, high)`` of the interval that inverts the sign-flip test (Hartigan's subset means).

    Exact for n ≤ 16; beyond, the Student t interval (the CLT holds well enough there).
    Unbounded (``-inf, inf``) when n is too small for the level."""
    a = _finite_1d(d)
    n = a.size
    alpha = 1.0 - level
    if n > EXACT_MAX_N:
        from scipy import stats

        half = stats.t.ppf(1 - alpha / 2, n - 1) * a.std(ddof=1) / math.sqrt(n)
        return float(a.mean() - half), float(a.mean() + half)
    k = int(math.floor(alpha / 2 * 2**n))
    if k == 0:
        return -math.inf, math.inf
    inc = _patterns(n)[:-1] > 0  # every non-empty subset (the all-minus row is the empty one)
    means = np.sort((inc @ a) / inc.sum(axis=1))
    return float(means[k - 1]), float(means[-k])


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison over ``n`` units: mean difference, its CI and the exact p."""

    n: int
    mean: float
    ci_low: float
    ci_high: float
    p_value: float
    min_p: float


def paired_test(d, *, seed: int = 0) -> PairedTest:
    """Mean of ``d`` with the sign-flip CI and two-sided p (see module docstring)."""
    a = _finite_1d(d)
    lo, hi = sign_flip_ci(a)
    return PairedTest(int(a.size), float(a.mean()), lo, hi, sign_flip_p(a, seed=seed), min_attainable_p(a.size))


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), same order as ``p``.

    Written out because it is four lines and scipy has no Holm; checked against statsmodels'
    ``multipletests(method="holm")`` in the tests."""
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (false discovery rate), same order as ``p``."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p, dtype=np.float64)
    return p.copy() if p.size == 0 else np.asarray(false_discovery_control(p, method="bh"), dtype=np.float64)


def per_unit_slopes(x, y) -> np.ndarray:
    """Least-squares slope of ``y`` against ``x`` for each unit (row): ``y`` is (n_units, L) over
    the L levels ``x`` (L ≥ 2, not all equal). Test the slopes with :func:`paired_test`."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != x.size:
        raise ValueError(f"expected y of shape (n_units, {x.size}), got {y.shape}")
    xc = x - x.mean()
    ss = float(xc @ xc)
    if x.size < 2 or ss == 0.0:
        raise ValueError(f"expected at least two distinct levels, got {x.tolist()}")
    return (y - y.mean(axis=1, keepdims=True)) @ xc / ss


def units_needed(delta: float, sigma: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Paired units (seeds, examples) needed to detect a mean difference ``delta`` with
    standard deviation ``sigma`` at two-sided ``alpha`` with ``power``: the normal
    approximation ((z_{1-α/2} + z_{power}) σ / Δ)^2, and never fewer than the sign-flip test
    needs to reach ``alpha`` at all (2^(1-n) < α)."""
    from scipy.stats import norm

    if not (delta > 0 and math.isfinite(delta)):
        raise ValueError(f"expected a positive effect size delta, got {delta!r}")
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise ValueError(f"expected a non-negative standard deviation sigma, got {sigma!r}")
    floor = 1 + math.ceil(math.log2(1 / alpha) + 1e-12)  # smallest n with 2^(1-n) < alpha
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    return max(floor, math.ceil((z * sigma / delta) ** 2))
