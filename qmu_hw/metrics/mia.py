"""Membership-inference attacks against an (unlearned) model.

* ``confidence_auc``: the paper's attack — the max softmax confidence as score, AUC of
  members (forget set) vs non-members. Unlike the paper, the non-members are real ones
  (held-out pool or test), not retain samples the model trained on.
* ``population_attack``: a logistic-regression attack on (loss, max confidence, entropy)
  trained to tell retain (members) from test (non-members), then applied to forget vs the
  held-out pool; AUC and TPR at 1% and 0.1% FPR. After good unlearning the forget set looks
  like non-members (AUC ≈ 0.5).
"""

from __future__ import annotations

import numpy as np

from .functional import tpr_at_fpr
from .scoring import LogisticRegression, roc_auc

EPS = 1e-12


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    return roc_auc(labels, scores)


def confidence_auc(member_probs: np.ndarray, nonmember_probs: np.ndarray) -> float:
    scores = np.concatenate([member_probs.max(axis=1), nonmember_probs.max(axis=1)])
    labels = np.concatenate([np.ones(len(member_probs)), np.zeros(len(nonmember_probs))])
    return _auc(labels, scores)


def attack_features(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample (cross-entropy loss, max confidence, entropy)."""
    p = np.clip(probs, EPS, 1.0)
    loss = -np.log(p[np.arange(len(y)), y])
    return np.stack([loss, p.max(axis=1), -(p * np.log(p)).sum(axis=1)], axis=1)


def population_attack(
    retain: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    forget: tuple[np.ndarray, np.ndarray],
    pool: tuple[np.ndarray, np.ndarray],
    seed: int = 0,
) -> dict[str, float]:
    """Each argument is ``(probs (N, C), labels (N,))`` from the model under attack."""
    rng = np.random.default_rng(seed)
    fr, ft = attack_features(*retain), attack_features(*test)
    n = min(len(fr), len(ft))
    if n < 2:
        return {"auc": float("nan"), "tpr@1%fpr": float("nan"), "tpr@0.1%fpr": float("nan"),
                "forget_member_rate": float("nan")}
    fr, ft = fr[rng.choice(len(fr), n, replace=False)], ft[rng.choice(len(ft), n, replace=False)]
    clf = LogisticRegression(max_iter=1000).fit(np.concatenate([fr, ft]), np.r_[np.ones(n), np.zeros(n)])
    sf = clf.predict_proba(attack_features(*forget))[:, 1]
    sp = clf.predict_proba(attack_features(*pool))[:, 1]
    labels = np.r_[np.ones(len(sf)), np.zeros(len(sp))]
    scores = np.r_[sf, sp]
    return {
        "auc": _auc(labels, scores),
        "tpr@1%fpr": tpr_at_fpr(labels, scores, 0.01),
        "tpr@0.1%fpr": tpr_at_fpr(labels, scores, 0.001),
        "forget_member_rate": float((sf > 0.5).mean()),
    }
