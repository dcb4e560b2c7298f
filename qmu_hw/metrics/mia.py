"""Membership-inference attacks against an (unlearned) model.

* ``confidence_auc``: the paper's attack — the max softmax confidence as score, AUC of
  members (forget set) vs non-members. Unlike the paper, the non-members are real ones
  (held-out pool or test), not retain samples the model trained on.
* ``population_attack``: a logistic-regression attack on (loss, max confidence, entropy)
  trained to tell retain (members) from test (non-members), then applied to forget vs the
  held-out non-members; AUC and TPR at the FPR levels (10%, 1%, 0.1%) the non-member count
  can resolve. After good unlearning the forget set looks
  like non-members (AUC ≈ 0.5).
"""

from __future__ import annotations

import math

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


# FPR levels the population attack reports TPR at, when the non-member count resolves them.
FPR_LEVELS = {"10%": 0.1, "1%": 0.01, "0.1%": 0.001}


def resolvable(fpr: float, n_nonmembers: int) -> bool:
    """An FPR level means something only if one false positive is at most that rate:
    with 15 non-members "TPR at 1% FPR" is TPR at zero false positives."""
    return n_nonmembers > 0 and 1.0 / n_nonmembers <= fpr + 1e-12


def class_matched(member_y: np.ndarray, nonmember_y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(members, nonmembers)`` to attack with: non-members with the members'
    class proportions and at least as many of them as members.

    With ``s = min over classes of available non-members / members``: when ``s >= 1`` every
    member is kept and ``floor(s * n_c)`` non-members of each class c are drawn; when the
    non-members are fewer (a forgotten class has more training than held-out samples), the
    members are subsampled to the same per-class count, so the pool is never the smaller side.
    """
    rng = np.random.default_rng(seed)
    member_y, nonmember_y = np.asarray(member_y), np.asarray(nonmember_y)
    classes, counts = np.unique(member_y, return_counts=True)
    if len(classes) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    avail = np.array([(nonmember_y == c).sum() for c in classes])
    s = float(np.min(avail / counts))
    mem, non = [], []
    for c, n_c, a_c in zip(classes, counts, avail, strict=True):
        m_pos, n_pos = np.flatnonzero(member_y == c), np.flatnonzero(nonmember_y == c)
        k = int(math.floor(s * n_c + 1e-9))
        m_keep = n_c if s >= 1 else k
        mem.append(np.sort(rng.choice(m_pos, m_keep, replace=False)))
        non.append(np.sort(rng.choice(n_pos, min(max(k, m_keep), a_c), replace=False)))
    return np.concatenate(mem), np.concatenate(non)


def population_attack(
    retain: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    forget: tuple[np.ndarray, np.ndarray],
    pool: tuple[np.ndarray, np.ndarray],
    seed: int = 0,
) -> dict[str, float]:
    """Each argument is ``(probs (N, C), labels (N,))`` from the model under attack. ``pool``
    holds the non-members to tell the forget set from (ideally class-matched, see
    :func:`class_matched`); TPR is NaN at FPR levels its size cannot resolve."""
    rng = np.random.default_rng(seed)
    fr, ft = attack_features(*retain), attack_features(*test)
    n = min(len(fr), len(ft))
    if n < 2:
        return {"auc": float("nan"), **{f"tpr@{k}fpr": float("nan") for k in FPR_LEVELS},
                "forget_member_rate": float("nan"), "n_members": float(len(forget[1])),
                "n_nonmembers": float(len(pool[1]))}
    fr, ft = fr[rng.choice(len(fr), n, replace=False)], ft[rng.choice(len(ft), n, replace=False)]
    clf = LogisticRegression(max_iter=1000).fit(np.concatenate([fr, ft]), np.r_[np.ones(n), np.zeros(n)])
    sf = clf.predict_proba(attack_features(*forget))[:, 1]
    sp = clf.predict_proba(attack_features(*pool))[:, 1]
    labels = np.r_[np.ones(len(sf)), np.zeros(len(sp))]
    scores = np.r_[sf, sp]
    out = {"auc": _auc(labels, scores)}
    for name, fpr in FPR_LEVELS.items():
        out[f"tpr@{name}fpr"] = tpr_at_fpr(labels, scores, fpr) if resolvable(fpr, len(sp)) else float("nan")
    out["forget_member_rate"] = float((sf > 0.5).mean()) if len(sf) else float("nan")
    out["n_members"], out["n_nonmembers"] = float(len(sf)), float(len(sp))
    return out
