"""The unlearning challenge's per-example ε, its bucketed score and the final score, checked
against hand computations from the definitions (arXiv 2406.09073 and the competition's
scoring constants: δ = 0.01, bins of width 0.5 with 13 edges, h = 2 / 2^n)."""

import math

import numpy as np
import pytest
from scipy.stats import beta

from qmu_hw.metrics.per_example import (
    bucket_index,
    bucket_scores,
    clopper_pearson_upper,
    epsilon_p90,
    example_epsilon,
    final_score,
    forgetting_quality,
    forgetting_score,
    logit_confidence,
    logit_confidence_from_logits,
    max_certifiable_epsilon,
    per_example_epsilon,
    threshold_attack_counts,
)


def test_logit_confidence_is_log_odds_of_the_true_class_and_clipped():
    p = np.array([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5], [1.0, 0.0, 0.0]])
    phi = logit_confidence(p, [0, 2, 1])
    assert phi[0] == pytest.approx(math.log(0.7 / 0.3))
    assert phi[1] == pytest.approx(0.0)
    assert phi[2] == pytest.approx(math.log(1e-12) - 0.0)  # p_y = 0 clipped, finite
    z = np.array([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]])
    sm = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(logit_confidence_from_logits(z, [0, 2]), logit_confidence(sm, [0, 2]), rtol=1e-10)
    with pytest.raises(ValueError, match="labels in"):
        logit_confidence(p, [0, 3, 1])


def test_point_epsilon_matches_a_hand_computation():
    # U = {2,3,4,5}, R = {0,1,2.5,6}, δ = 0.01. The best attack is "unlearned if φ > 2.5":
    # FPR = 1/4 (only 6 of R above), FNR = 1/4 (only 2 of U below) → ε = log((0.99 − 0.25)/0.25).
    # Attacks with exactly one zero rate are discarded (the competition's rule).
    eps = example_epsilon([2, 3, 4, 5], [0, 1, 2.5, 6], bounds="point")
    assert eps == pytest.approx(math.log(0.74 / 0.25))
    # Perfect separation with point estimates: FPR = FNR = 0 → ∞ (the competition's rule).
    assert example_epsilon([5, 6, 7], [0, 1, 2], bounds="point") == math.inf


def test_attack_counts_cover_both_directions():
    fp, fn = threshold_attack_counts([1.0, 2.0], [0.0, 3.0])
    # thresholds: -inf, 0, 1, 2, 3 ; ">" direction then "≤" direction
    assert fp.tolist() == [2, 1, 1, 1, 0, 0, 1, 1, 1, 2]
    assert fn.tolist() == [0, 0, 1, 2, 2, 2, 2, 1, 0, 0]


def test_clopper_pearson_upper_is_the_beta_quantile():
    assert clopper_pearson_upper(3, 20) == pytest.approx(beta.ppf(0.975, 4, 17))
    assert clopper_pearson_upper(0, 32) == pytest.approx(1 - 0.025 ** (1 / 32))
    assert clopper_pearson_upper(20, 20) == 1.0


def test_identical_populations_give_epsilon_zero():
    rng = np.random.default_rng(1)
    U, R = rng.normal(size=(32, 100)), rng.normal(size=(32, 100))
    eps = per_example_epsilon(U, R)
    assert np.median(eps) == 0.0
    assert (eps > 0).mean() < 0.1  # the max over ~130 attacks: a few examples pass by chance
    assert eps.max() < 0.6


def test_separated_populations_reach_the_certifiable_ceiling_by_hand():
    rng = np.random.default_rng(2)
    R = rng.normal(size=(32, 20))
    U = R + 50.0  # every unlearned output above every retrained one
    eps = per_example_epsilon(U, R)
    u = 1 - 0.025 ** (1 / 32)  # CP upper bound of 0 errors in 32 at 95 %
    hand = math.log((1 - 0.01 - u) / u)
    np.testing.assert_allclose(eps, hand, rtol=1e-9)
    assert hand == pytest.approx(max_certifiable_epsilon(32, 32))
    assert hand > 2.0
    # the reverse (unlearned BELOW retrained: over-forgetting) is detected the same way
    np.testing.assert_allclose(per_example_epsilon(R - 50.0, R), hand, rtol=1e-9)


def test_a_point_mass_inside_the_spread_is_detected():
    # identity: every run IS the teacher. Even inside the retrained spread it is distinguishable.
    rng = np.random.default_rng(3)
    R = rng.normal(size=(32, 10))
    assert np.all(per_example_epsilon(np.zeros((32, 10)), R) > 0.5)


def test_bucketed_score_worked_example():
    # ε → bin n (edges 0, 0.5, ..., 6.0) → h = 2 / 2^n:
    # 0.2 → n=1, h=1 ; 0.5 → n=2, h=1/2 ; 0.7 → 2, 1/2 ; 1.3 → 3, 1/4 ; 7.0 → 13, 2^-12
    eps = [0.2, 0.5, 0.7, 1.3, 7.0]
    assert bucket_index(eps).tolist() == [1, 2, 2, 3, 13]
    np.testing.assert_allclose(bucket_scores(eps), [1, 0.5, 0.5, 0.25, 2.0 ** -12])
    F = (1 + 0.5 + 0.5 + 0.25 + 2.0 ** -12) / 5
    assert forgetting_quality(eps) == pytest.approx(F)
    assert bucket_index([0.0, 6.0, math.inf]).tolist() == [1, 13, 13]
    # final score: F · (RA_U / RA_R) · (TA_U / TA_R), per-model accuracies averaged
    assert final_score(F, [0.9, 0.9], [1.0], [0.8], [0.9, 0.9]) == pytest.approx(F * 0.9 * (0.8 / 0.9))
    with pytest.raises(ValueError, match="non-negative"):
        bucket_index([-0.1])


def test_forgetting_score_summary():
    rng = np.random.default_rng(4)
    R = rng.normal(size=(16, 40))
    U = np.concatenate([R[:, :20] + 50.0, rng.normal(size=(16, 20))], axis=1)  # half leak, half forgotten
    s, eps = forgetting_score(U, R, utility={"ra_unlearned": 0.9, "ra_retrained": 1.0, "ta_unlearned": 0.8,
                                             "ta_retrained": 0.8})
    top = max_certifiable_epsilon(16, 16)
    assert s.n_examples == 40 and s.n_unlearned == 16 and s.epsilon_max_certifiable == pytest.approx(top)
    assert np.allclose(eps[:20], top)
    assert s.epsilon_p90 == pytest.approx(top)
    assert s.forgetting_quality == pytest.approx(forgetting_quality(eps))
    assert s.score == pytest.approx(s.forgetting_quality * 0.9)
    assert set(s.as_row()) >= {"epsilon_median", "epsilon_p90", "forgetting_score"}
    assert epsilon_p90([0.0] * 9 + [math.inf]) == math.inf


def test_bad_input_is_refused_before_work():
    with pytest.raises(ValueError, match="same n_examples"):
        per_example_epsilon(np.zeros((8, 3)), np.zeros((8, 4)))
    with pytest.raises(ValueError, match="at least 2 models"):
        per_example_epsilon(np.zeros((1, 3)), np.zeros((8, 3)))
    with pytest.raises(ValueError, match="finite"):
        per_example_epsilon(np.full((8, 3), np.nan), np.zeros((8, 3)))
    with pytest.raises(ValueError, match="unknown bounds"):
        per_example_epsilon(np.zeros((8, 3)), np.zeros((8, 3)), bounds="wald")
