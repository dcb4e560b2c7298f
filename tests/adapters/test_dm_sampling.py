"""Sampled noise on light cones: unbiased, stderr calibrated, same distribution as joint."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from qmu_hw import EstimateRequest, get_backend
from qmu_hw.circuits import hqml

SEEDS = 300
SHOTS = 200


def _estimates(sampling: str, c, p, labels):
    be = get_backend("dm-depol-0.05", sampling=sampling)
    runs = [be.estimate(EstimateRequest(c, p, observables=labels, shots=SHOTS, seed=s)) for s in range(SEEDS)]
    return np.stack([r.values for r in runs]), np.stack([r.stderr for r in runs])


@pytest.fixture(scope="module")
def case():
    c = hqml(6, 2, "ring")
    p = np.random.default_rng(3).uniform(-np.pi, np.pi, (2, c.n_params))
    labels = ["ZIIIII", "IIZIII", "XIIIII", "IYIIII", "ZZIIII", "IIIIIZ"]
    exact = get_backend("dm-depol-0.05").estimate(EstimateRequest(c, p, observables=labels)).values
    return c, p, labels, exact


def test_marginal_sampling_is_unbiased_and_its_stderr_calibrated(case):
    c, p, labels, exact = case
    vals, errs = _estimates("marginal", c, p, labels)
    # Unbiased: the mean over seeds of each estimate, as a z-score against the exact value
    # with the standard error of that mean (±1 outcomes: var = 1 − ⟨P⟩²).
    true_sd = np.sqrt((1 - exact**2) / SHOTS)
    z = (vals.mean(axis=0) - exact) / (true_sd / np.sqrt(SEEDS))
    # 12 z-scores; all within 4 σ (two-sided p ≈ 6e-5 each under the null)
    assert np.abs(z).max() < 4, z
    # their sum of squares is chi-square with 12 dof
    assert stats.chi2.sf((z**2).sum(), z.size) > 1e-3
    # Calibrated: the reported stderr matches the spread across seeds (ratio 1 within ~10%)
    ratio = errs.mean(axis=0) / vals.std(axis=0, ddof=1)
    assert np.all(np.abs(ratio - 1) < 0.15), ratio
    # and covers: |est − exact| ≤ 1.96 stderr about 95% of the time
    cover = (np.abs(vals - exact) <= 1.96 * np.maximum(errs, 1e-12)).mean()
    assert 0.92 < cover < 0.98, cover


def test_marginal_and_joint_sampling_have_the_same_per_observable_distribution(case):
    c, p, labels, exact = case
    vm, em = _estimates("marginal", c, p, labels)
    vj, ej = _estimates("joint", c, p, labels)
    for i in range(vm.shape[1]):
        for o in range(vm.shape[2]):
            # two-sample KS on the estimates of each row and observable (discrete: conservative)
            assert stats.ks_2samp(vm[:, i, o], vj[:, i, o]).pvalue > 1e-4
    np.testing.assert_allclose(em.mean(axis=0), ej.mean(axis=0), rtol=0.05, atol=2e-3)


def test_bad_sampling_option_is_refused():
    from qmu_hw.core.exceptions import ProfileError

    with pytest.raises(ProfileError, match="option 'sampling': expected \"marginal\" or \"joint\""):
        get_backend("dm-depol-0.05", sampling="cones")
