"""Paired noise effects: does a method's forgetting change when the backend gets noisy?

For each (scenario, method, noisy backend, shots, metric, reference), every seed gives one
pair: the noisy cell and the exact cell of the same seed (same data split, teacher seed and
oracle seeds), so Δ = metric(noisy) − metric(exact) removes the seed-to-seed spread that an
unpaired comparison would drown in. Reported per group: the mean Δ over seeds, its 95 % CI
(Student t; percentile bootstrap once n >= 10), the paired t-test p-value, and the
Holm-corrected p across the methods of one (scenario, backend, shots, metric, reference).
Along a depolarizing ladder also the slope of the metric against p1 (per seed, then mean
and t-interval over seeds).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .grid import profile_of

COLUMNS = ("scenario", "method", "backend", "shots", "metric", "reference", "n_seeds", "exact_mean", "mean",
           "delta", "ci_low", "ci_high", "p_value", "p_holm")
SLOPE_COLUMNS = ("scenario", "method", "shots", "metric", "reference", "n_seeds", "levels", "slope", "ci_low",
                 "ci_high", "p_value", "p_holm")
# Oracle-comparison metrics exist per reference (``<metric>`` = same, ``<metric>_exact``);
# the others describe the model alone (reference "none").
ORACLE_METRICS = ("js_forget", "js_test", "kl_forget", "disagree_forget", "acc_forget_gap", "excess",
                  "within_oracle_spread")
PLAIN_METRICS = ("acc_forget", "acc_retain", "acc_test", "acc_test_retained", "mia_pop_auc", "uqi")
BOOTSTRAP_FROM = 10
BOOTSTRAP_RESAMPLES = 10_000
ROUNDING = 1e-12  # differences this small (relative) are floating-point noise, not effects


@dataclass(frozen=True)
class Effect:
    scenario: str
    method: str
    backend: str
    shots: int | None
    metric: str
    reference: str
    n_seeds: int
    exact_mean: float
    mean: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    p_holm: float = float("nan")


@dataclass(frozen=True)
class Slope:
    scenario: str
    method: str
    shots: int | None
    metric: str
    reference: str
    n_seeds: int
    levels: str
    slope: float
    ci_low: float
    ci_high: float
    p_value: float
    p_holm: float = float("nan")


def metric_columns() -> list[tuple[str, str, str]]:
    """``(metric, reference, column in the results)`` for every compared metric."""
    out = [(m, "same", m) for m in ORACLE_METRICS] + [(m, "exact", f"{m}_exact") for m in ORACLE_METRICS]
    return out + [(m, "none", m) for m in PLAIN_METRICS]


def mean_ci_p(d, seed: int = 0) -> tuple[float, float, float, float]:
    """``(mean, ci_low, ci_high, p)`` of paired differences ``d``: a 95 % t-interval (a
    percentile bootstrap from 10 pairs on) and the two-sided one-sample t-test of mean 0.
    With zero spread (up to rounding) the t statistic is 0 or infinite: p = 1 or 0."""
    from scipy import stats

    d = np.asarray(d, float)
    n = len(d)
    if n == 0:
        return (float("nan"),) * 4
    m = float(d.mean())
    if n == 1:
        return m, float("nan"), float("nan"), float("nan")
    sd = float(d.std(ddof=1))
    scale = float(np.abs(d).max())
    if sd <= ROUNDING * max(scale, 1.0):  # e.g. a least-squares slope of constant values: ~1e-15
        m = 0.0 if abs(m) <= ROUNDING * max(scale, 1.0) else m
        return m, m, m, 1.0 if m == 0.0 else 0.0
    se = sd / math.sqrt(n)
    p = float(2 * stats.t.sf(abs(m / se), n - 1))
    if n >= BOOTSTRAP_FROM:
        rng = np.random.default_rng(seed)
        boot = d[rng.integers(0, n, (BOOTSTRAP_RESAMPLES, n))].mean(axis=1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        return m, float(lo), float(hi), p
    h = float(stats.t.ppf(0.975, n - 1) * se)
    return m, m - h, m + h, p


def holm(pvalues) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order; NaN stays NaN and is not counted)."""
    p = np.asarray(pvalues, float)
    out = np.full(len(p), np.nan)
    idx = [i for i in np.argsort(p, kind="stable") if not np.isnan(p[i])]
    m = len(idx)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and not math.isnan(float(x))


def exact_twin(rows: list[dict]) -> str | None:
    """The backend whose exact-shots cells are the noiseless twins: the ``exact`` profile if
    the study has it, else the first local noiseless profile run at exact shots."""
    names = sorted({r["backend"] for r in rows if r.get("shots") is None})
    ok = [b for b in names if profile_of(b).noise_kind == "none" and not profile_of(b).is_cloud]
    if "exact" in ok:
        return "exact"
    return ok[0] if ok else None


def _norm(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        r = dict(r)
        s = r.get("shots")
        r["shots"] = None if s is None or (isinstance(s, float) and math.isnan(s)) else int(s)
        out.append(r)
    return out


def paired_effects(rows: list[dict]) -> list[Effect]:
    """Every paired noise effect of the finished cells ``rows`` (store rows), Holm-adjusted."""
    rows = _norm(rows)
    twin = exact_twin(rows)
    if twin is None:
        return []
    exact = {(r["scenario"], r["method"], r["seed"]): r for r in rows if r["backend"] == twin and r["shots"] is None}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["backend"] == twin and r["shots"] is None:
            continue
        groups[(r["scenario"], r["method"], r["backend"], r["shots"])].append(r)
    effects: list[Effect] = []
    for (scenario, method, backend, shots), grows in sorted(groups.items(), key=lambda kv: str(kv[0])):
        for metric, reference, col in metric_columns():
            noisy_v, exact_v = [], []
            for r in sorted(grows, key=lambda r: r["seed"]):
                e = exact.get((scenario, method, r["seed"]))
                if e is not None and _finite(r.get(col)) and _finite(e.get(col)):
                    noisy_v.append(float(r[col]))
                    exact_v.append(float(e[col]))
            if not noisy_v:
                continue
            d = np.array(noisy_v) - np.array(exact_v)
            delta, lo, hi, p = mean_ci_p(d)
            effects.append(Effect(scenario, method, backend, shots, metric, reference, len(d),
                                  float(np.mean(exact_v)), float(np.mean(noisy_v)), delta, lo, hi, p))
    return _with_holm(effects, lambda e: (e.scenario, e.backend, e.shots, e.metric, e.reference))


def _with_holm(items: list, family) -> list:
    fams: dict[tuple, list[int]] = defaultdict(list)
    for i, e in enumerate(items):
        fams[family(e)].append(i)
    out = list(items)
    for idx in fams.values():
        for i, ph in zip(idx, holm([items[i].p_value for i in idx]), strict=True):
            out[i] = type(items[i])(**{**asdict(items[i]), "p_holm": ph})
    return out


def ladder_slopes(rows: list[dict]) -> list[Slope]:
    """Slope of each metric against the depolarizing p1, per (scenario, method, shots, metric,
    reference): an OLS slope per seed over that seed's ladder, then the mean over seeds with
    its t-interval and p (Holm across methods). Needs >= 2 distinct p1 levels."""
    rows = _norm(rows)
    ladder = [r for r in rows if profile_of(r["backend"]).noise_kind == "depolarizing"]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in ladder:
        groups[(r["scenario"], r["method"], r["shots"])].append(r)
    out: list[Slope] = []
    for (scenario, method, shots), grows in sorted(groups.items(), key=lambda kv: str(kv[0])):
        levels = sorted({float(profile_of(r["backend"]).noise.get("p1", 0.0)) for r in grows})
        if len(levels) < 2:
            continue
        for metric, reference, col in metric_columns():
            per_seed: dict[int, list[tuple[float, float]]] = defaultdict(list)
            for r in grows:
                if _finite(r.get(col)):
                    per_seed[r["seed"]].append((float(profile_of(r["backend"]).noise.get("p1", 0.0)), float(r[col])))
            slopes = []
            for pts in per_seed.values():
                x = np.array([p[0] for p in pts])
                if len(np.unique(x)) >= 2:
                    slopes.append(float(np.polyfit(x, [p[1] for p in pts], 1)[0]))
            if not slopes:
                continue
            m, lo, hi, p = mean_ci_p(slopes)
            out.append(Slope(scenario, method, shots, metric, reference, len(slopes),
                             ",".join(f"{v:g}" for v in levels), m, lo, hi, p))
    return _with_holm(out, lambda s: (s.scenario, s.shots, s.metric, s.reference))


def _write_csv(path: Path, columns, items) -> Path:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        for it in items:
            d = asdict(it)
            d["shots"] = "exact" if d["shots"] is None else d["shots"]
            w.writerow({k: d[k] for k in columns})
    tmp.replace(path)
    return path


def write_noise_effects(folder: str | Path, rows: list[dict], store=None) -> tuple[list[Effect], list[Slope]]:
    """Compute the paired effects and ladder slopes of ``rows`` and write
    ``<folder>/noise_effect.csv`` and ``<folder>/noise_slope.csv`` (and the store's
    ``noise_effect`` / ``noise_slope`` tables when a :class:`ResultsStore` is given)."""
    effects, slopes = paired_effects(rows), ladder_slopes(rows)
    folder = Path(folder)
    _write_csv(folder / "noise_effect.csv", COLUMNS, effects)
    _write_csv(folder / "noise_slope.csv", SLOPE_COLUMNS, slopes)
    if store is not None:
        store.replace_table("noise_effect", COLUMNS, [asdict(e) for e in effects])
        store.replace_table("noise_slope", SLOPE_COLUMNS, [asdict(s) for s in slopes])
    return effects, slopes
