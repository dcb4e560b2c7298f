"""Functional metrics on probability arrays ``(N, C)`` with ALIGNED rows (same samples in
the same order for both models — the paper compared shuffled loaders)."""

from __future__ import annotations

import numpy as np

from ..core.exceptions import InvalidRequestError

EPS = 1e-12


def _check_pair(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 2:
        raise InvalidRequestError(f"expected two (N, C) arrays of the same shape, got {p.shape} and {q.shape}")
    return p, q


def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    """Argmax accuracy; NaN for an empty set."""
    probs, y = np.asarray(probs), np.asarray(y)
    return float("nan") if len(y) == 0 else float((probs.argmax(axis=1) == y).mean())


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over rows of KL(p‖q) in nats."""
    p, q = _check_pair(p, q)
    if len(p) == 0:
        return float("nan")
    p, q = np.clip(p, EPS, 1), np.clip(q, EPS, 1)
    return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over rows of the Jensen–Shannon divergence in nats (bounded by ln 2)."""
    p, q = _check_pair(p, q)
    if len(p) == 0:
        return float("nan")
    m = 0.5 * (p + q)
    return 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m)


def agreement(p: np.ndarray, q: np.ndarray) -> float:
    """Fraction of rows where both models predict the same class."""
    p, q = _check_pair(p, q)
    return float("nan") if len(p) == 0 else float((p.argmax(axis=1) == q.argmax(axis=1)).mean())


def uqi(forget_drop: float, retain_drop: float, test_drop: float) -> float:
    """The paper's Unlearning Quality Index: ``forget_drop − (retain_drop + test_drop)/2``."""
    return float(forget_drop - 0.5 * (retain_drop + test_drop))


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr: float) -> float:
    """Largest true-positive rate at a false-positive rate ≤ ``fpr`` (higher score = member)."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    best = 0.0
    for t in np.unique(np.concatenate([scores, [np.inf]])):
        if (neg >= t).mean() <= fpr:
            best = max(best, float((pos >= t).mean()))
    return best
