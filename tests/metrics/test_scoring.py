"""The core's own ROC AUC / logistic regression / bundled datasets equal scikit-learn's
(scikit-learn is a test-only reference, installed by the [dev] extra)."""

from __future__ import annotations

import numpy as np
import pytest

from qmu_hw.metrics.scoring import LogisticRegression, roc_auc

sklearn = pytest.importorskip("sklearn")


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_equals_sklearn_with_ties(seed):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + 0.7 * y, 1)  # rounded: many ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert np.isnan(roc_auc(np.ones(5), np.arange(5)))


def test_logistic_regression_equals_sklearn():
    from sklearn.linear_model import LogisticRegression as SkLR

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3)) * [1.0, 0.2, 3.0]
    y = (X @ [1.0, -2.0, 0.3] + rng.normal(size=300) > 0).astype(int)
    ours = LogisticRegression().fit(X, y).predict_proba(X)
    ref = SkLR(max_iter=1000, tol=1e-10).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_bundled_datasets_equal_sklearn():
    from sklearn.datasets import load_digits, load_iris

    from qmu_hw.data import bundled

    for ours, ref in ((bundled.load_iris(), load_iris(return_X_y=True)),
                      (bundled.load_digits(), load_digits(return_X_y=True))):
        np.testing.assert_array_equal(ours[0], ref[0])
        np.testing.assert_array_equal(ours[1], ref[1])
