"""Distance of one unlearned model to an ensemble of K retrained oracles.

"Forgotten" is judged against the oracles' own disagreement, comparing like with like: the
model's statistic is its MEAN distance to the K oracles, and each oracle gets the same
statistic, its leave-one-out mean distance to the other K-1. The model is within the
oracle spread when its mean distance is no larger than the 95th percentile of the K
oracles' leave-one-out means (their maximum below 8 oracles). Comparing a mean over K with
the maximum of K(K-1)/2 single pair distances, as before, let a model that did nothing
(``identity``) pass as forgotten. ``<metric>_excess_rel`` divides the excess by the oracle
floor of the same ensemble, so distances are comparable across noise levels (JS/KL on a
softmax shrink with output entropy, and noise raises entropy).

Every comparison is made twice: against oracles trained under the cell's own noise level
(``reference = same``, unsuffixed columns) and against the exact-trained ones
(``reference = exact``, columns suffixed ``_exact``).

All probability arrays are ``(N, C)`` with ALIGNED rows (every model sees the same samples
in the same order).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ..core.exceptions import InvalidRequestError
from ..metrics import agreement, js_divergence, kl_divergence

PARTS = ("retain", "forget", "test")
REFERENCES = ("same", "exact")
# The headline distance: forget-set JS. ``excess`` and ``within_oracle_spread`` without a
# metric prefix refer to it; every other distance has its own ``<metric>_excess`` etc.
HEADLINE = "js_forget"
# Below 8 oracles there are too few leave-one-out means for a 95th percentile: use the max.
PERCENTILE_MIN_ORACLES = 8


def reference_suffix(reference: str) -> str:
    if reference not in REFERENCES:
        raise InvalidRequestError(f"reference must be one of {REFERENCES}, got {reference!r}")
    return "" if reference == "same" else "_exact"


def _accuracy(p: np.ndarray, y: np.ndarray) -> float:
    return float((p.argmax(1) == y).mean()) if len(y) else float("nan")


def _distances(p: dict, q: dict, y: dict) -> dict[str, float]:
    """Every oracle-comparison distance between two models (lower = closer). Agreement is
    turned into disagreement so that all of them share "lower is closer"."""
    out = {}
    for n in PARTS:
        out[f"kl_{n}"] = kl_divergence(p[n], q[n])
        out[f"js_{n}"] = js_divergence(p[n], q[n])
        out[f"disagree_{n}"] = 1.0 - agreement(p[n], q[n])
    out["acc_forget_gap"] = abs(_accuracy(p["forget"], y["forget"]) - _accuracy(q["forget"], y["forget"]))
    return out


def spread_threshold(loo: np.ndarray, n_oracles: int) -> float:
    """The largest distance still "within the oracle spread": the 95th percentile of the K
    oracles' leave-one-out mean distances (:func:`leave_one_out_means`), or their maximum
    when fewer than 8 oracles make a percentile meaningless."""
    loo = np.asarray(loo, float)
    loo = loo[~np.isnan(loo)]
    if len(loo) == 0:
        return float("nan")
    if n_oracles < PERCENTILE_MIN_ORACLES:
        return float(loo.max())
    return float(np.percentile(loo, 95))


def leave_one_out_means(dist: np.ndarray) -> np.ndarray:
    """Each oracle's mean distance to the other K-1: ``dist[i, j]`` is the distance with
    oracle i in the model's position (KL is not symmetric); the diagonal is ignored."""
    d = np.asarray(dist, float)
    K = d.shape[0]
    off = ~np.eye(K, dtype=bool)
    return np.array([d[i][off[i]].mean() for i in range(K)])


def ensemble_comparison(model: dict, oracles: list[dict], y: dict, reference: str = "same") -> dict[str, float]:
    """Distances of ``model`` to the oracle ensemble, the oracle floor, ``excess`` and
    ``within_oracle_spread`` for one reference.

    Args:
        model: part name -> probabilities ``(N, C)`` of the unlearned model.
        oracles: K such dicts, one per oracle.
        y: part name -> labels ``(N,)``.
        reference: ``same`` (unsuffixed columns) or ``exact`` (columns suffixed ``_exact``).

    Returns a flat dict: ``<metric>`` (mean over the K oracles), ``<metric>_floor_mean`` (the
    mean oracle-to-other-oracles distance), ``<metric>_floor_threshold`` (the within-spread
    limit, see :func:`spread_threshold`), ``<metric>_excess`` (distance minus floor),
    ``<metric>_excess_rel`` (excess / floor: scale-free), ``<metric>_within``, the oracles'
    mean ``acc_<part>_oracle``, ``n_classes``, and the headline ``excess`` / ``excess_rel`` /
    ``within_oracle_spread`` (forget-set JS). ``within`` is 1.0/0.0, NaN when K < 2.
    """
    sfx = reference_suffix(reference)
    K = len(oracles)
    if K == 0:
        raise InvalidRequestError("an oracle comparison needs at least one oracle, got 0")
    per_oracle = [_distances(model, o, y) for o in oracles]
    ordered = {(i, j): _distances(oracles[i], oracles[j], y) for i, j in itertools.permutations(range(K), 2)}
    row: dict[str, float] = {}
    for metric in per_oracle[0]:
        dist = float(np.mean([d[metric] for d in per_oracle]))
        row[f"{metric}{sfx}"] = dist
        if K >= 2:
            mat = np.zeros((K, K))
            for (i, j), d in ordered.items():
                mat[i, j] = d[metric]
            loo = leave_one_out_means(mat)
            thr = spread_threshold(loo, K)
            floor = float(loo.mean())
            row[f"{metric}_floor_mean{sfx}"] = floor
            row[f"{metric}_floor_threshold{sfx}"] = thr
            row[f"{metric}_excess{sfx}"] = dist - floor
            # a zero floor (identical oracles) has no scale to normalise by
            row[f"{metric}_excess_rel{sfx}"] = (dist - floor) / floor if floor > 0 else float("nan")
            row[f"{metric}_within{sfx}"] = float(dist <= thr) if not math.isnan(dist) else float("nan")
        else:
            for k in ("floor_mean", "floor_threshold", "excess", "excess_rel", "within"):
                row[f"{metric}_{k}{sfx}"] = float("nan")
    for n in PARTS:
        row[f"acc_{n}_oracle{sfx}"] = float(np.mean([_accuracy(o[n], y[n]) for o in oracles]))
    row[f"excess{sfx}"] = row[f"{HEADLINE}_excess{sfx}"]
    row[f"excess_rel{sfx}"] = row[f"{HEADLINE}_excess_rel{sfx}"]
    row[f"within_oracle_spread{sfx}"] = row[f"{HEADLINE}_within{sfx}"]
    row[f"n_oracles{sfx}"] = float(K)
    # chance accuracy (1 / n_classes) is what the validity gate of the noise analysis needs
    row["n_classes"] = float(model["forget"].shape[1])
    return row


def _clearly_below(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Interval of ``a`` (mean, half-width) lies entirely below that of ``b``."""
    (ma, ha), (mb, hb) = a, b
    if math.isnan(ma) or math.isnan(mb):
        return False
    return ma + (ha if not math.isnan(ha) else 0.0) < mb - (hb if not math.isnan(hb) else 0.0)


def overlap_ranks(primary: list[tuple[float, float]], secondary: list[tuple[float, float]]) -> list[int]:
    """Ranks (1 = closest to retraining) that are equal where the evidence cannot order.

    Each entry is ``(mean, CI half-width)`` of a distance (lower is better). Method j beats
    method i when j's primary interval lies entirely below i's, or when the primary
    intervals overlap and j's secondary interval lies entirely below i's. A method's rank is
    one plus the number of methods that beat it, so overlapping methods share a rank.
    """
    if len(primary) != len(secondary):
        raise InvalidRequestError(f"primary and secondary need one entry per method, got {len(primary)} and "
                                  f"{len(secondary)}")
    n = len(primary)
    ranks = []
    for i in range(n):
        beaten_by = 0
        for j in range(n):
            if j == i:
                continue
            if _clearly_below(primary[j], primary[i]) or (
                not _clearly_below(primary[i], primary[j]) and _clearly_below(secondary[j], secondary[i])
            ):
                beaten_by += 1
        ranks.append(1 + beaten_by)
    return ranks
