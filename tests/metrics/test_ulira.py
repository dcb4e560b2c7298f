"""U-LiRA on synthetic populations: separable → accuracy near 1, identical → near 0.5."""

import numpy as np
import pytest
from scipy.stats import norm

from qmu_hw.metrics.ulira import gaussian_fit, log_likelihood_ratio, tpr_at_fpr_levels, ulira


def test_likelihood_ratio_is_the_gaussian_log_ratio():
    IN = np.array([[1.0], [3.0]])  # mean 2, var 2
    OUT = np.array([[-1.0], [1.0]])  # mean 0, var 2
    lam = log_likelihood_ratio(np.array([[2.0]]), IN, OUT)
    hand = norm.logpdf(2.0, 2.0, np.sqrt(2.0)) - norm.logpdf(2.0, 0.0, np.sqrt(2.0))
    assert lam[0, 0] == pytest.approx(hand)
    mu, var = gaussian_fit(np.zeros((4, 3)))  # a degenerate population (identity) is floored
    assert np.all(var > 0)


def test_separable_populations_are_detected():
    rng = np.random.default_rng(0)
    R = rng.normal(size=(32, 30))
    res = ulira(rng.normal(3.0, 1.0, size=(32, 30)), R)
    assert res.balanced_accuracy > 0.9
    assert res.ci_low > 0.5
    assert res.tpr_at_fpr[0.05] > 0.8


def test_identical_populations_are_not():
    rng = np.random.default_rng(1)
    res = ulira(rng.normal(size=(32, 30)), rng.normal(size=(32, 30)))
    assert abs(res.balanced_accuracy - 0.5) < 0.1
    assert res.ci_low < 0.5 < res.ci_high
    assert res.tpr_at_fpr[0.1] < 0.25


def test_degenerate_identity_population():
    rng = np.random.default_rng(2)
    res = ulira(np.full((16, 10), 2.0), rng.normal(size=(16, 10)))
    assert res.balanced_accuracy > 0.9


def test_only_resolvable_fprs_are_reported():
    rng = np.random.default_rng(3)
    res = ulira(rng.normal(size=(8, 5)), rng.normal(size=(8, 5)))
    assert all(a >= 1 / 8 for a in res.tpr_at_fpr)  # 8 retrained models resolve FPR ≥ 0.125
    assert set(res.as_row()) >= {"ulira_balanced_accuracy", "ulira_ci_low", "ulira_ci_high"}


def test_tpr_at_fpr_by_hand():
    # positives 3,4,5 ; negatives 0,1,2,3.5: at FPR ≤ 0.25 (threshold 2 → FPR 1/4) TPR = 3/3
    assert tpr_at_fpr_levels([3, 4, 5], [0, 1, 2, 3.5], [0.0, 0.25]) == {0.0: 2 / 3, 0.25: 1.0}


def test_too_few_models_for_cross_fitting():
    with pytest.raises(ValueError, match="at least 4 models"):
        ulira(np.zeros((3, 2)), np.zeros((8, 2)))
