import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy
from sklearn.metrics import roc_auc_score, roc_curve

from qmu_hw.metrics import (
    accuracy,
    agreement,
    confidence_auc,
    js_divergence,
    kl_divergence,
    tpr_at_fpr,
    uqi,
)
from qmu_hw.metrics.mia import population_attack


@pytest.fixture
def probs():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=50)
    q = rng.dirichlet(np.ones(4), size=50)
    return p, q


def test_kl_js_match_scipy(probs):
    p, q = probs
    assert kl_divergence(p, q) == pytest.approx(np.mean([entropy(a, b) for a, b in zip(p, q, strict=True)]), rel=1e-9)
    js_ref = np.mean([jensenshannon(a, b) ** 2 for a, b in zip(p, q, strict=True)])
    assert js_divergence(p, q) == pytest.approx(js_ref, rel=1e-9)
    assert js_divergence(p, p) == pytest.approx(0, abs=1e-12)


def test_agreement_and_accuracy(probs):
    p, q = probs
    assert agreement(p, q) == np.mean(p.argmax(1) == q.argmax(1))
    assert accuracy(p, p.argmax(1)) == 1.0


def test_uqi_reproduces_paper_table():
    # shared/reference/hqml_results_iris.csv, subset2pct / Fisher
    assert uqi(0.3333333333333333, 0.008547008547008628, 0.06666666666666665) == pytest.approx(
        0.2957264957264957, abs=1e-12)


def test_confidence_auc_matches_sklearn(probs):
    p, q = probs
    ref = roc_auc_score(np.r_[np.ones(50), np.zeros(50)], np.r_[p.max(1), q.max(1)])
    assert confidence_auc(p, q) == pytest.approx(ref)


def test_tpr_at_fpr_matches_roc_curve():
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(400), np.zeros(400)]
    scores = np.r_[rng.normal(1, 1, 400), rng.normal(0, 1, 400)]
    fpr, tpr, _ = roc_curve(labels, scores)
    for target in (0.01, 0.05, 0.2):
        assert tpr_at_fpr(labels, scores, target) == pytest.approx(tpr[fpr <= target].max())


def test_population_attack_separates_members():
    rng = np.random.default_rng(2)

    def confident(n):  # members: confident and right
        y = rng.integers(0, 3, n)
        p = np.full((n, 3), 0.02)
        p[np.arange(n), y] = 0.96
        return p, y

    def unsure(n):
        y = rng.integers(0, 3, n)
        return rng.dirichlet(np.ones(3), n), y

    res = population_attack(confident(100), unsure(100), confident(30), unsure(30))
    assert res["auc"] > 0.9 and res["forget_member_rate"] > 0.9
    null = population_attack(confident(100), unsure(100), unsure(30), unsure(30))
    assert 0.3 < null["auc"] < 0.7
