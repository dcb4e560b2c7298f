"""Paired noise effects: does noise change what UNLEARNING achieves, or only how a model's
outputs look?

Pairs. For each (scenario, method, noisy backend, shots, axis values) every seed gives one
pair: the noisy cell and the exact twin of the same seed and axis values (same data split,
teacher seed and oracle seeds). Axis values are the results' ``<table>.<key>`` columns
(``model.n_layers``, ``training.train_backend``, ...): pairs never cross them.

Two estimands per metric (column ``estimand``):

* ``model``: Δ = metric(noisy) − metric(exact), the noise effect on the model. Noise
  changes a fixed model's outputs (JS/KL on a softmax track its entropy), so this moves
  for ``identity`` too, which unlearns nothing.
* ``unlearning``: the difference in differences Δ = (method − baseline)_noisy −
  (method − baseline)_exact of the same seed, the noise effect on what unlearning achieves.
  Column ``baseline`` says relative to what: ``identity`` (the headline; the teacher
  unchanged, so the model's own noise response cancels) or ``retrain`` (where it ran: how
  much farther from retraining noise leaves the method).

Validity. A cell whose teacher (test accuracy) or same-noise oracles (retain accuracy),
evaluated on the cell's backend, are below ``min_teacher_accuracy`` (default: halfway
between chance, 1 / n_classes, and the same seed's exact value) is invalid: every pair that
needs it is left out, counted in ``n_excluded`` with the ``reason``. A group left with no
valid pair keeps one row with ``valid = False``, no statistics and its reason, so the CSV
shows what was dropped and why.

Tests. The exact sign-flip test (:func:`qmu_hw.metrics.stats.paired_test`): valid for binary
and coarse metrics, never p = 0, never below 2^(1-n) (``min_p``); ``ci_low``/``ci_high`` the
95 % CI that inverts it (unbounded when n is too small for one). Multiplicity: the primary
endpoint (``[analysis] primary``: the ``unlearning`` estimand relative to identity of that
metric against the same-noise oracles) is Holm-adjusted across the methods of each
(scenario, backend, shots, axis values), ``adjustment = holm-primary``; every other test of
the study, effects and slopes together, gets Benjamini–Hochberg, ``adjustment = bh``.

Ladder slopes. Along a depolarizing ladder, every rung including exact (p1 = 0): a
least-squares slope of each seed's values against p1 (three or more levels; exact plus one
rung is a difference, not a slope, and is skipped), then the sign-flip test on the seeds'
slopes. Noisy rungs run at their shots, the exact rung is the exact twin. A seed's slope
uses its valid rungs only (a dead rung drops out: the slope describes the range where the
models work); ``levels`` lists every rung some seed used.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..metrics.stats import benjamini_hochberg, holm, paired_test, per_unit_slopes
from .config_tables import AnalysisTable
from .endpoints import ORACLE_METRICS, PLAIN_METRICS, metric_columns, primary_key  # noqa: F401 (re-exported)
from .grid import profile_of
from .pairing import AXIS_TABLES, _Index, axis_columns, exact_twin, exclusions  # noqa: F401 (re-exported)
from .validity import Exclusion  # noqa: F401 (re-exported)

BASELINES = ("identity", "retrain")
# ``unit``: what the test pairs and ``n_seeds`` counts: "seed" here; "example" for the
# per-example rows (:mod:`.per_example_outputs`) appended to noise_effect.csv.
COLUMNS = ("scenario", "method", "backend", "shots", "estimand", "baseline", "metric", "reference", "unit", "n_seeds",
           "n_excluded", "valid", "reason", "exact_mean", "mean", "delta", "ci_low", "ci_high", "p_value", "min_p",
           "p_adj", "adjustment")
SLOPE_COLUMNS = ("scenario", "method", "shots", "estimand", "baseline", "metric", "reference", "n_seeds",
                 "n_excluded", "levels", "slope", "ci_low", "ci_high", "p_value", "min_p", "p_adj", "adjustment")
NAN = float("nan")


@dataclass(frozen=True)
class Effect:
    scenario: str
    method: str
    backend: str
    shots: int | None
    estimand: str  # "model" | "unlearning"
    baseline: str  # "" (model) | "identity" | "retrain"
    metric: str
    reference: str
    n_seeds: int
    n_excluded: int
    valid: bool
    reason: str
    exact_mean: float
    mean: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    min_p: float
    p_adj: float = NAN
    adjustment: str = ""
    axes: tuple = ()  # ((column, value), ...) of the axis columns, in column order
    unit: str = "seed"  # the paired unit: seeds here, examples in the per-example rows


@dataclass(frozen=True)
class Slope:
    scenario: str
    method: str
    shots: int | None
    estimand: str
    baseline: str
    metric: str
    reference: str
    n_seeds: int
    n_excluded: int
    levels: str
    slope: float
    ci_low: float
    ci_high: float
    p_value: float
    min_p: float
    p_adj: float = NAN
    adjustment: str = ""
    axes: tuple = ()


def _estimands(ix: _Index, scenario: str, method: str, backend: str, shots, axv) -> list[tuple[str, str]]:
    out = [("model", "")]
    for b in BASELINES:
        if b != method and (scenario, b, backend, shots, axv) in ix.groups:
            out.append(("unlearning", b))
    return out


ROUNDING = 1e-12  # differences this small relative to the values compared are floating-point noise


def _stats(d, scale: float) -> tuple[float, float, float, float, float]:
    """Sign-flip test of ``d``. Entries below rounding (relative to ``scale``, the size of the
    values compared) are set to 0 first: a difference in differences of equal shifts leaves
    ±1e-17 residues whose signs would otherwise look like a perfectly consistent effect."""
    d = np.asarray(d, float).copy()
    d[np.abs(d) <= ROUNDING * max(scale, 1.0)] = 0.0
    t = paired_test(d)
    return t.mean, t.ci_low, t.ci_high, t.p_value, t.min_p


def paired_effects(rows: list[dict], analysis: AnalysisTable | None = None) -> list[Effect]:
    """Every paired noise effect of the finished cells ``rows`` (store rows), both estimands,
    with multiplicity-adjusted p (see the module docstring)."""
    return analyse(rows, analysis)[0]


def _pairs(ix: _Index, group: tuple, seeds, col: str, baseline: str) -> tuple[list, list, list]:
    """``(noisy values, exact values, exclusion reasons)`` of one group over ``seeds``."""
    sc, m, b, s, axv = group
    noisy, exact, reasons = [], [], []
    for seed in seeds:
        vn, rn = ix.value((sc, m, b, s, axv, seed), col, baseline)
        ve, re_ = ix.value((sc, m, ix.twin, None, ix.twin_axes(sc, axv), seed), col, baseline)
        if rn or re_:
            reasons.append(rn or re_)
        elif vn is not None and ve is not None:
            noisy.append(vn)
            exact.append(ve)
    return noisy, exact, reasons


def primary_deltas(rows: list[dict], analysis: AnalysisTable | None = None) -> list[np.ndarray]:
    """The per-seed Δ_unlearning (relative to identity) of the primary endpoint, one array per
    (scenario, method, backend, shots, axis values): what a pilot study says about σ."""
    analysis = analysis or AnalysisTable()
    ix = _Index(rows, analysis)
    if ix.twin is None:
        return []
    metric, reference = primary_key(analysis.primary)
    col = next(c for m, r, c in metric_columns() if (m, r) == (metric, reference))
    seeds: dict[tuple, set] = defaultdict(set)
    for key, (r, _) in ix.cells.items():
        if not ix.is_twin(r) and key[1] != "identity" and (key[0], "identity", *key[2:5]) in ix.groups:
            seeds[key[:5]].add(key[5])
    out = []
    for g, ss in sorted(seeds.items(), key=lambda kv: str(kv[0])):
        noisy, exact, _ = _pairs(ix, g, sorted(ss), col, "identity")
        if noisy:
            out.append(np.array(noisy) - np.array(exact))
    return out


def _raw_effects(ix: _Index) -> list[Effect]:
    if ix.twin is None:
        return []
    groups: dict[tuple, set] = defaultdict(set)
    for (sc, m, b, s, axv, seed), (r, _) in ix.cells.items():
        if not ix.is_twin(r):
            groups[(sc, m, b, s, axv)].add(seed)
    effects: list[Effect] = []
    for (sc, m, b, s, axv), seeds in sorted(groups.items(), key=lambda kv: str(kv[0])):
        axes = tuple(zip(ix.axes, axv, strict=True))
        for estimand, baseline in _estimands(ix, sc, m, b, s, axv):
            for metric, reference, col in metric_columns():
                noisy, exact, reasons = _pairs(ix, (sc, m, b, s, axv), sorted(seeds), col, baseline)
                reason = "; ".join(sorted(set(reasons)))
                common = dict(scenario=sc, method=m, backend=b, shots=s, estimand=estimand, baseline=baseline,
                              metric=metric, reference=reference, n_excluded=len(reasons), reason=reason, axes=axes)
                if noisy:
                    d = np.array(noisy) - np.array(exact)
                    mean, lo, hi, p, min_p = _stats(d, float(np.max(np.abs([*noisy, *exact]))))
                    effects.append(Effect(n_seeds=len(d), valid=True, exact_mean=float(np.mean(exact)),
                                          mean=float(np.mean(noisy)), delta=mean, ci_low=lo, ci_high=hi, p_value=p,
                                          min_p=min_p, **common))
                elif reasons:  # every pair excluded: one flagged row says so
                    effects.append(Effect(n_seeds=0, valid=False, exact_mean=NAN, mean=NAN, delta=NAN, ci_low=NAN,
                                          ci_high=NAN, p_value=NAN, min_p=NAN, **common))
    return effects


def _p1(backend: str) -> float:
    return float(profile_of(backend).noise.get("p1", 0.0))


def ladder_slopes(rows: list[dict], analysis: AnalysisTable | None = None) -> list[Slope]:
    """Slope of each metric (both estimands) against the depolarizing p1, exact included as
    p1 = 0, per (scenario, method, shots, axis values), BH-adjusted with the effects of the
    same rows (see :func:`analyse`)."""
    return analyse(rows, analysis)[1]


def _raw_slopes(ix: _Index) -> list[Slope]:
    if ix.twin is None:
        return []
    groups: dict[tuple, set] = defaultdict(set)
    seeds_of: dict[tuple, set] = defaultdict(set)
    for (sc, m, b, s, axv, seed), (r, _) in ix.cells.items():
        if not ix.is_twin(r) and profile_of(b).noise_kind == "depolarizing":
            groups[(sc, m, s, axv)].add(b)
            seeds_of[(sc, m, s, axv)].add(seed)
    out: list[Slope] = []
    for (sc, m, s, axv), backends in sorted(groups.items(), key=lambda kv: str(kv[0])):
        rungs = [(0.0, ix.twin, None)] + sorted((_p1(b), b, s) for b in backends)
        if len({p for p, _, _ in rungs}) < 3:
            continue  # exact + one level: a difference (in noise_effect.csv), not a slope
        axes = tuple(zip(ix.axes, axv, strict=True))
        for estimand, baseline in _estimands(ix, sc, m, rungs[1][1], s, axv):
            for metric, reference, col in metric_columns():
                slopes, used, excluded, scale = [], set(), 0, 0.0
                for seed in sorted(seeds_of[(sc, m, s, axv)]):
                    pts, dropped = [], False
                    for p1, b, shots in rungs:
                        a = ix.twin_axes(sc, axv) if b == ix.twin and shots is None else axv
                        v, why = ix.value((sc, m, b, shots, a, seed), col, baseline)
                        dropped |= bool(why)
                        if v is not None:
                            pts.append((p1, v))
                    if len({p for p, _ in pts}) >= 3:
                        x = [p for p, _ in pts]
                        slopes.append(float(per_unit_slopes(x, [[v for _, v in pts]])[0]))
                        used.update(x)
                        scale = max(scale, max(abs(v) for _, v in pts) / (max(x) - min(x)))
                    elif dropped:
                        excluded += 1
                if not slopes:
                    continue
                mean, lo, hi, p, min_p = _stats(slopes, scale)
                out.append(Slope(sc, m, s, estimand, baseline, metric, reference, len(slopes), excluded,
                                 ",".join(f"{v:g}" for v in sorted(used)), mean, lo, hi, p, min_p, axes=axes))
    return out


def _adjusted(effects: list[Effect], slopes: list[Slope], analysis: AnalysisTable):
    """Holm across methods for the primary endpoint (per scenario, backend, shots, axis
    values); Benjamini–Hochberg across every other test of the study, slopes included."""
    pm, pr = primary_key(analysis.primary)
    families: dict[tuple, list[int]] = defaultdict(list)
    rest: list[tuple[str, int]] = []
    for i, e in enumerate(effects):
        if not e.valid or math.isnan(e.p_value):
            continue
        if e.estimand == "unlearning" and e.baseline == "identity" and (e.metric, e.reference) == (pm, pr):
            families[(e.scenario, e.backend, e.shots, e.axes)].append(i)
        else:
            rest.append(("e", i))
    rest += [("s", i) for i, s in enumerate(slopes) if not math.isnan(s.p_value)]
    effects, slopes = list(effects), list(slopes)
    for idx in families.values():
        for i, p in zip(idx, holm([effects[i].p_value for i in idx]), strict=True):
            effects[i] = replace(effects[i], p_adj=float(p), adjustment="holm-primary")
    pv = [(effects if k == "e" else slopes)[i].p_value for k, i in rest]
    for (k, i), p in zip(rest, benjamini_hochberg(pv), strict=True):
        seq = effects if k == "e" else slopes
        seq[i] = replace(seq[i], p_adj=float(p), adjustment="bh")
    return effects, slopes


def analyse(rows: list[dict], analysis: AnalysisTable | None = None) -> tuple[list[Effect], list[Slope]]:
    """Effects and ladder slopes of ``rows`` with the study-wide multiplicity adjustment."""
    analysis = analysis or AnalysisTable()
    ix = _Index(rows, analysis)
    return _adjusted(_raw_effects(ix), _raw_slopes(ix), analysis)


def _flat(item) -> dict:
    d = asdict(item)
    axes = d.pop("axes")
    d.update({k: v for k, v in axes})
    return d


def _columns(base: tuple, items) -> list[str]:
    axes = [k for k, _ in (items[0].axes if items else ())]
    i = base.index("shots") + 1
    return [*base[:i], *axes, *base[i:]]


def write_rows(path: Path, columns, rows) -> Path:
    """Write dict ``rows`` as ``path`` (CSV, ``columns`` in order, shots None as "exact"),
    replacing it atomically: the derived CSVs of a study (noise effects, slopes, interactions)."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        for d in rows:
            w.writerow({k: ("exact" if k == "shots" and d[k] is None else d[k]) for k in columns})
    tmp.replace(path)
    return path


def _write_csv(path: Path, columns, items) -> Path:
    return write_rows(path, columns, (_flat(it) for it in items))


def _store(store, effects: list[Effect], slopes: list[Slope]) -> None:
    store.replace_table("noise_effect", _columns(COLUMNS, effects), [_flat(x) for x in effects])
    store.replace_table("noise_slope", _columns(SLOPE_COLUMNS, slopes), [_flat(x) for x in slopes])


def write_noise_effects(folder: str | Path, rows: list[dict], store=None, *,
                        analysis: AnalysisTable | None = None) -> tuple[list[Effect], list[Slope]]:
    """Compute the paired effects and ladder slopes of ``rows`` and write
    ``<folder>/noise_effect.csv`` and ``<folder>/noise_slope.csv`` (and the store's
    ``noise_effect`` / ``noise_slope`` tables when a :class:`ResultsStore` is given).
    ``analysis``: the study's ``[analysis]`` table (primary endpoint, validity threshold)."""
    effects, slopes = analyse(rows, analysis)
    folder = Path(folder)
    _write_csv(folder / "noise_effect.csv", _columns(COLUMNS, effects), effects)
    _write_csv(folder / "noise_slope.csv", _columns(SLOPE_COLUMNS, slopes), slopes)
    if store is not None:
        _store(store, effects, slopes)
    return effects, slopes
