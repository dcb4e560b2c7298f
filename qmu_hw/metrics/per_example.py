"""Per-example forgetting quality: the NeurIPS 2023 unlearning challenge's ε and its score.

Triantafillou et al., "Are we making progress in unlearning? Findings from the first NeurIPS
unlearning competition", arXiv 2406.09073 (its evaluation section and the organisers'
evaluation note of August 2023), with the competition's scoring code for the constants. The
paper's full text could not be read from this machine; the equations below are written out
from the definitions and the scoring code, so they can be checked against the paper.

Inputs are two POPULATIONS of models for one forget set: ``unlearned`` (the method run many times from the same teacher with
different seeds) and ``retrained`` (trained from scratch on the retain set, many seeds);
each gives, per forget example x, one scalar output per model. The equations implemented:

(1) Output per model and example, the logit-scaled confidence on the true class
    (LiRA's φ, Carlini et al. 2022): ``φ(p) = log(p_y / (1 − p_y))``, p_y clipped to
    [c, 1 − c] so that saturated softmax outputs stay finite (:func:`logit_confidence`).
    (Copies of the competition's scoring code map each model's logits to a per-example
    cross-entropy instead; with the true label, −log p_y is a monotone map of φ, and the
    two-directional threshold attacks below give the same ε̂ for any monotone map. φ is
    the scale LiRA/U-LiRA fit Gaussians on.)

(2) (ε, δ)-unlearning (the paper's definition, after example-level DP) bounds every test
    that tells the two output distributions apart: for any attack with false-positive rate FPR and false-negative
    rate FNR (positive = "this output came from an unlearned model"),
    ``FPR + e^ε·FNR ≥ 1 − δ`` and ``FNR + e^ε·FPR ≥ 1 − δ`` (Kairouz et al. 2015), hence

        ε_x ≥ max( log((1 − δ − FPR)/FNR), log((1 − δ − FNR)/FPR) ).

    The per-example estimate is the maximum of this over a family of attacks, floored
    at 0:  ε̂_x = max(0, max_attacks max(log((1−δ−FPR)/FNR), log((1−δ−FNR)/FPR))).
    δ = 0.01, as in the competition's scoring code.

(3) The attacks: every single-threshold test over the pooled outputs of x, in both
    directions ("unlearned if φ > t" and "unlearned if φ ≤ t", t over every pooled value
    and −∞). The competition used the ">" thresholds and a cross-validated logistic
    regression on the same scalar; for a scalar the two-sided thresholds contain every
    monotone decision rule the logistic regression can express (it learns the direction),
    without its cross-validation noise.

(4) Finite populations: with ``bounds="clopper-pearson"`` (the default) FPR and FNR are
    replaced by the upper ends of their two-sided Clopper–Pearson intervals at
    ``level`` = 95 % (``scipy.stats.beta``: upper = Beta.ppf(1 − α/2, k + 1, n − k)), as in
    DP auditing (Jagielski et al. 2020; Nasr et al. 2021), which makes ε̂_x a
    high-confidence LOWER bound on the leakage: two identical populations give 0, and
    the largest ε̂ a population of n models can certify is
    ``log((1 − δ − u_n)/u_n)`` with ``u_n = 1 − (α/2)^(1/n)`` (2.09 at n = 32, 0.52 at
    n = 8). NOTE: the paper's text was not readable from here; its confidence level is
    not quoted — 95 % is this project's choice (the level every other CI here uses).
    ``bounds="point"`` is the competition's plug-in estimate instead, with its rule for
    zero rates: an attack with exactly one of FPR, FNR equal to 0 is discarded, one with
    both 0 gives ε = ∞.

    The maximum over attacks is not simultaneously covered: with two identical populations
    of 32, about 3 % of examples get ε̂ > 0 (at most ≈ 0.5) by chance (measured in the tests).

(5) The bucketed forgetting score (competition scoring code): ε̂ goes to the bin
    n(ε̂) = np.digitize(ε̂, [0, 0.5, 1.0, …, 6.0]) ∈ {1, …, 13} (13 edges, width 0.5), is
    scored h(ε̂) = 2 / 2^n(ε̂) = 2^(1 − n) (1 for ε̂ < 0.5, ½ for [0.5, 1), …, 2^-12 for ε̂ ≥ 6),
    and the forgetting quality is the mean over the forget set: F = (1/|S|) Σ_x h(ε̂_x).

(6) The final score multiplies in utility relative to retraining:
    ``score = F · (RA_U / RA_R) · (TA_U / TA_R)``, RA/TA the retain/test accuracy averaged
    over the unlearned (U) and retrained (R) populations.

Pure numpy/scipy functions; arrays are ``(n_models, n_examples)`` float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .stats import CI_LABEL, CI_LEVEL

DELTA = 0.01  # the competition's δ
BIN_WIDTH = 0.5  # the competition's bins: [0, 0.5), [0.5, 1.0), ..., [6.0, ∞)
N_BIN_EDGES = 13
CLIP = 1e-12  # φ clipping: p_y in [CLIP, 1 - CLIP] keeps |φ| ≤ 27.6
BOUNDS = ("clopper-pearson", "point")


# -- (1) the per-model output -------------------------------------------------------------
def logit_confidence(probs, y, *, clip: float = CLIP) -> np.ndarray:
    """φ = log(p_y / (1 − p_y)) for rows of class probabilities ``probs`` (N, C) and labels
    ``y`` (N,). ``1 − p_y`` is taken as the sum of the other classes' probabilities (exact
    where p_y rounds to 1), both clipped to [clip, 1]."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if p.ndim != 2 or p.shape[0] != y.size:
        raise ValueError(f"expected probs of shape (N, C) with N = len(y) = {y.size}, got {p.shape}")
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"expected labels in [0, {p.shape[1] - 1}], got {sorted(set(y.tolist()))}")
    if not (0 < clip < 0.5):
        raise ValueError(f"expected clip in (0, 0.5), got {clip}")
    rows = np.arange(y.size)
    py = p[rows, y]
    rest = p.sum(axis=1) - py
    return np.log(np.clip(py, clip, 1.0)) - np.log(np.clip(rest, clip, 1.0))


def logit_confidence_from_logits(logits, y) -> np.ndarray:
    """φ from raw logits z: log p_y − log(1 − p_y) = z_y − logsumexp_{j≠y} z_j (no clipping
    needed; float64)."""
    from scipy.special import logsumexp

    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if z.ndim != 2 or z.shape[0] != y.size or z.shape[1] < 2:
        raise ValueError(f"expected logits of shape (N, C ≥ 2) with N = len(y) = {y.size}, got {z.shape}")
    rows = np.arange(y.size)
    others = z.copy()
    others[rows, y] = -np.inf
    return z[rows, y] - logsumexp(others, axis=1)


# -- (3) the attacks -----------------------------------------------------------------------
def threshold_attack_counts(unlearned, retrained) -> tuple[np.ndarray, np.ndarray]:
    """Errors of every single-threshold attack on one example: ``(false_pos, false_neg)``
    counts, one entry per attack, over thresholds t ∈ {−∞} ∪ pooled values and both
    directions. False positive: a retrained output called "unlearned"; false negative: an
    unlearned output called "retrained"."""
    u = np.sort(np.asarray(unlearned, dtype=np.float64).reshape(-1))
    r = np.sort(np.asarray(retrained, dtype=np.float64).reshape(-1))
    t = np.concatenate([[-np.inf], np.unique(np.concatenate([u, r]))])
    u_above = u.size - np.searchsorted(u, t, side="right")  # #U > t
    r_above = r.size - np.searchsorted(r, t, side="right")  # #R > t
    # "unlearned if φ > t": FP = #R > t, FN = #U ≤ t; "unlearned if φ ≤ t": the complements.
    fp = np.concatenate([r_above, r.size - r_above])
    fn = np.concatenate([u.size - u_above, u_above])
    return fp, fn


def clopper_pearson_upper(k, n: int, level: float = CI_LEVEL) -> np.ndarray:
    """Upper end of the two-sided Clopper–Pearson interval for k successes in n trials:
    Beta.ppf(1 − α/2, k + 1, n − k), and 1 at k = n."""
    from scipy.stats import beta

    k = np.asarray(k, dtype=np.float64)
    alpha = 1.0 - level
    with np.errstate(invalid="ignore", divide="ignore"):
        up = beta.ppf(1.0 - alpha / 2.0, k + 1.0, np.maximum(n - k, 1e-300))
    return np.where(k >= n, 1.0, up)


def _epsilon_from_rates(fpr: np.ndarray, fnr: np.ndarray, delta: float, point: bool) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.log(1.0 - delta - fpr) - np.log(fnr)
        e2 = np.log(1.0 - delta - fnr) - np.log(fpr)
    if point:  # the competition's rule for zero rates (see the module docstring, (4))
        both = (fpr == 0) & (fnr == 0)
        one = (fpr == 0) ^ (fnr == 0)
        if both.any():
            return math.inf
        keep = ~one
        e1, e2 = e1[keep], e2[keep]
    vals = np.concatenate([e1, e2])
    vals = vals[~np.isnan(vals)]
    return float(max(0.0, vals.max())) if vals.size else 0.0


def example_epsilon(unlearned, retrained, *, delta: float = DELTA, level: float = CI_LEVEL,
                    bounds: str = "clopper-pearson") -> float:
    """ε̂ of one example from its two populations of outputs (1-D each), equations (2)–(4)."""
    u = np.asarray(unlearned, dtype=np.float64).reshape(-1)
    r = np.asarray(retrained, dtype=np.float64).reshape(-1)
    fp, fn = threshold_attack_counts(u, r)
    if bounds == "clopper-pearson":
        fpr, fnr = clopper_pearson_upper(fp, r.size, level), clopper_pearson_upper(fn, u.size, level)
    else:
        fpr, fnr = fp / r.size, fn / u.size
    return _epsilon_from_rates(fpr, fnr, delta, bounds == "point")


def _check_populations(unlearned, retrained) -> tuple[np.ndarray, np.ndarray]:
    U = np.asarray(unlearned, dtype=np.float64)
    R = np.asarray(retrained, dtype=np.float64)
    if U.ndim == 1:
        U = U[:, None]
    if R.ndim == 1:
        R = R[:, None]
    if U.ndim != 2 or R.ndim != 2 or U.shape[1] != R.shape[1]:
        raise ValueError("expected unlearned and retrained outputs of shape (n_models, n_examples) with the same "
                         f"n_examples, got {U.shape} and {R.shape}")
    if U.shape[0] < 2 or R.shape[0] < 2:
        raise ValueError(f"expected at least 2 models per population, got {U.shape[0]} unlearned and "
                         f"{R.shape[0]} retrained")
    if U.shape[1] == 0:
        raise ValueError("expected at least one forget example, got none")
    if not (np.all(np.isfinite(U)) and np.all(np.isfinite(R))):
        raise ValueError("expected finite outputs (logit-scaled confidences); got NaN or inf")
    return U, R


def per_example_epsilon(unlearned, retrained, *, delta: float = DELTA, level: float = CI_LEVEL,
                        bounds: str = "clopper-pearson") -> np.ndarray:
    """ε̂ per example (n_examples,) from outputs of shape (n_unlearned, n_examples) and
    (n_retrained, n_examples); column j of both is the same example."""
    if bounds not in BOUNDS:
        raise ValueError(f"unknown bounds {bounds!r}; expected one of {BOUNDS}")
    if not (0 <= delta < 1):
        raise ValueError(f"expected delta in [0, 1), got {delta}")
    if not (0 < level < 1):
        raise ValueError(f"expected a confidence level in (0, 1), got {level}")
    U, R = _check_populations(unlearned, retrained)
    return np.array([example_epsilon(U[:, j], R[:, j], delta=delta, level=level, bounds=bounds)
                     for j in range(U.shape[1])], dtype=np.float64)


def max_certifiable_epsilon(n_unlearned: int, n_retrained: int, *, delta: float = DELTA,
                            level: float = CI_LEVEL) -> float:
    """The largest ε̂ Clopper–Pearson bounds allow with these population sizes (a perfect
    separation): the ceiling of what a study of this size can report."""
    fpr = float(clopper_pearson_upper(0, n_retrained, level))
    fnr = float(clopper_pearson_upper(0, n_unlearned, level))
    return _epsilon_from_rates(np.array([fpr]), np.array([fnr]), delta, False)


# -- (5) and (6): the challenge's scores --------------------------------------------------
def bucket_index(epsilons, *, bin_width: float = BIN_WIDTH, n_edges: int = N_BIN_EDGES) -> np.ndarray:
    """n(ε) = np.digitize(ε, [0, w, 2w, …, (n_edges − 1)·w]) ∈ {1, …, n_edges}."""
    e = np.asarray(epsilons, dtype=np.float64)
    if np.any(np.isnan(e)) or np.any(e < 0):
        raise ValueError("expected non-negative epsilons (inf allowed), got NaN or negative values")
    return np.digitize(e, np.arange(n_edges) * bin_width)


def bucket_scores(epsilons, *, bin_width: float = BIN_WIDTH, n_edges: int = N_BIN_EDGES) -> np.ndarray:
    """h(ε) = 2 / 2^n(ε): 1 in the first bin, halved in every later one."""
    return 2.0 / 2.0 ** bucket_index(epsilons, bin_width=bin_width, n_edges=n_edges)


def forgetting_quality(epsilons, **kw) -> float:
    """F = mean over the forget set of h(ε̂_x) (1 = indistinguishable from retraining)."""
    e = np.asarray(epsilons, dtype=np.float64).reshape(-1)
    if e.size == 0:
        raise ValueError("expected at least one forget example's epsilon, got none")
    return float(bucket_scores(e, **kw).mean())


def final_score(quality: float, ra_unlearned, ra_retrained, ta_unlearned, ta_retrained) -> float:
    """F · (RA_U / RA_R) · (TA_U / TA_R); accuracies may be per-model arrays (averaged)."""
    ra_u, ra_r, ta_u, ta_r = (float(np.mean(np.asarray(a, dtype=np.float64)))
                              for a in (ra_unlearned, ra_retrained, ta_unlearned, ta_retrained))
    if ra_r <= 0 or ta_r <= 0:
        raise ValueError(f"expected positive retrained accuracies, got RA_R = {ra_r}, TA_R = {ta_r}")
    return float(quality * (ra_u / ra_r) * (ta_u / ta_r))


def epsilon_median(epsilons) -> float:
    return float(np.median(np.asarray(epsilons, dtype=np.float64)))


def epsilon_p90(epsilons) -> float:
    """90th percentile (linear interpolation; inf-safe: an infinite ε sorts last)."""
    e = np.sort(np.asarray(epsilons, dtype=np.float64).reshape(-1))
    if np.isinf(e).any():  # np.percentile interpolates inf - inf = nan
        return float(e[min(e.size - 1, int(math.ceil(0.9 * (e.size - 1))))])
    return float(np.percentile(e, 90))


@dataclass(frozen=True)
class ForgettingScore:
    """The challenge's evaluation of one (method, scenario, backend) population pair."""

    n_examples: int
    n_unlearned: int
    n_retrained: int
    epsilon_median: float
    epsilon_p90: float
    forgetting_quality: float  # F, eq. (5)
    score: float  # F · RA ratio · TA ratio, eq. (6); NaN without utilities
    epsilon_max_certifiable: float  # the ceiling set by the population sizes (CP bounds)
    delta: float
    level: float
    bounds: str
    ci_label: str = CI_LABEL

    def as_row(self) -> dict:
        return {"epsilon_median": self.epsilon_median, "epsilon_p90": self.epsilon_p90,
                "forgetting_score": self.forgetting_quality, "challenge_score": self.score,
                "epsilon_n_examples": self.n_examples, "epsilon_n_models": min(self.n_unlearned, self.n_retrained),
                "epsilon_max": self.epsilon_max_certifiable}


def forgetting_score(unlearned, retrained, *, utility: dict | None = None, delta: float = DELTA,
                     level: float = CI_LEVEL, bounds: str = "clopper-pearson") -> tuple[ForgettingScore, np.ndarray]:
    """ε̂ per example and its summaries. ``utility`` (optional): ``{"ra_unlearned", "ra_retrained",
    "ta_unlearned", "ta_retrained"}`` (scalars or per-model arrays) for the final score."""
    eps = per_example_epsilon(unlearned, retrained, delta=delta, level=level, bounds=bounds)
    U, R = _check_populations(unlearned, retrained)
    F = forgetting_quality(eps)
    score = float("nan")
    if utility is not None:
        need = ("ra_unlearned", "ra_retrained", "ta_unlearned", "ta_retrained")
        missing = [k for k in need if k not in utility]
        if missing:
            raise ValueError(f"utility needs keys {need}; missing {missing}")
        score = final_score(F, *(utility[k] for k in need))
    ceiling = max_certifiable_epsilon(U.shape[0], R.shape[0], delta=delta, level=level) \
        if bounds == "clopper-pearson" else math.inf
    summary = ForgettingScore(int(eps.size), int(U.shape[0]), int(R.shape[0]), epsilon_median(eps),
                              epsilon_p90(eps), F, score, ceiling, delta, level, bounds)
    return summary, eps
