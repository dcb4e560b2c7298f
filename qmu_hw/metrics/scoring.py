"""ROC AUC and an L2 logistic regression on numpy/scipy (no scikit-learn in the core).

``roc_auc`` is the Mann–Whitney statistic with ties counted half, which is exactly what
``sklearn.metrics.roc_auc_score`` returns for binary labels. ``LogisticRegression`` minimises
the same objective as scikit-learn's default (L2, ``C = 1``, unpenalised intercept, L-BFGS),
whose minimiser is unique, so probabilities agree up to the solvers' tolerances.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit
from scipy.stats import rankdata


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (1 = positive); NaN when
    only one class is present."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks: ties count half
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class LogisticRegression:
    """Binary L2-regularised logistic regression: minimises
    ``0.5·||w||² + C·Σ log(1 + exp(−s_i (w·x_i + b)))`` with ``s_i = ±1``."""

    def __init__(self, C: float = 1.0, max_iter: int = 1000, tol: float = 1e-10) -> None:
        self.C, self.max_iter, self.tol = float(C), int(max_iter), float(tol)
        self.coef_: np.ndarray | None = None
        self.intercept_: float = 0.0

    def fit(self, X: np.ndarray, y: np.ndarray) -> LogisticRegression:
        X = np.asarray(X, dtype=np.float64)
        s = np.where(np.asarray(y) > 0, 1.0, -1.0)
        d = X.shape[1]

        def f(theta):
            w, b = theta[:d], theta[d]
            z = s * (X @ w + b)
            loss = 0.5 * w @ w - self.C * log_expit(z).sum()
            g = -self.C * s * expit(-z)
            return loss, np.r_[w + X.T @ g, g.sum()]

        res = minimize(f, np.zeros(d + 1), jac=True, method="L-BFGS-B",
                       options={"maxiter": self.max_iter, "gtol": self.tol, "ftol": self.tol})
        self.coef_, self.intercept_ = res.x[:d], float(res.x[d])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(N, 2)``: column 1 is P(y = 1)."""
        p = expit(np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_)
        return np.stack([1 - p, p], axis=1)
