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

from ..core.journal import DatabaseFileError
from ..metrics.stats import benjamini_hochberg, holm, paired_test, per_unit_slopes
from .config import DATASET_SHAPES
from .config_tables import AnalysisTable
from .endpoints import ORACLE_METRICS, PLAIN_METRICS, metric_columns, primary_key  # noqa: F401 (re-exported)
from .grid import profile_of

AXIS_TABLES = ("model", "data", "training")
BASELINES = ("identity", "retrain")
COLUMNS = ("scenario", "method", "backend", "shots", "estimand", "baseline", "metric", "reference", "n_seeds",
           "n_excluded", "valid", "reason", "exact_mean", "mean", "delta", "ci_low", "ci_high", "p_value", "min_p",
           "p_adj", "adjustment")
SLOPE_COLUMNS = ("scenario", "method", "shots", "estimand", "baseline", "metric", "reference", "n_seeds",
                 "n_excluded", "levels", "slope", "ci_low", "ci_high", "p_value", "min_p", "p_adj", "adjustment")
# The results store's tables still have the schema of the first version (store.py); until it
# holds the columns above, the store gets the ``model`` rows in that schema (p_holm := p_adj).
LEGACY_COLUMNS = ("scenario", "method", "backend", "shots", "metric", "reference", "n_seeds", "exact_mean", "mean",
                  "delta", "ci_low", "ci_high", "p_value", "p_holm")
LEGACY_SLOPE_COLUMNS = ("scenario", "method", "shots", "metric", "reference", "n_seeds", "levels", "slope", "ci_low",
                        "ci_high", "p_value", "p_holm")
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


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


def _hashable(v):
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def axis_columns(rows: list[dict]) -> tuple[str, ...]:
    """The grid-axis columns present in ``rows``: ``<table>.<key>`` with table model/data/training."""
    cols = {k for r in rows for k in r if "." in k and k.split(".", 1)[0] in AXIS_TABLES}
    return tuple(sorted(cols))


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


def _chance(r: dict) -> float | None:
    n = r.get("n_classes")
    if not _finite(n):
        shape = DATASET_SHAPES.get(str(r.get("dataset")))
        n = shape[2] if shape else None
    return 1.0 / float(n) if n else None


# What a cell's references are judged by: (column, who, what it measures).
GATES = (("acc_test_teacher", "teacher", "test accuracy"), ("acc_retain_oracle", "same-noise oracles",
                                                               "retain accuracy"))


def _failures(r: dict, twin_row: dict | None, is_twin: bool, min_acc: float | None) -> list[tuple]:
    """``(who, what, accuracy, limit)`` for each reference of the cell that does not work on
    its backend (empty list: valid). ``limit`` is the threshold text, e.g. ``< 0.617``."""
    chance = _chance(r)
    out = []
    for col, who, what in GATES:
        acc = r.get(col)
        if not _finite(acc):
            continue  # an older row without the column: nothing to judge by
        acc = float(acc)
        if min_acc is not None:
            if acc < float(min_acc):
                out.append((who, what, acc, f"< {float(min_acc):.3f}"))
        elif chance is None:
            continue
        elif is_twin or twin_row is None or not _finite(twin_row.get(col)):
            # the exact cell itself (or no exact value to halve to): only "not above chance" is dead
            if acc <= chance + 1e-9:
                out.append((who, what, acc, f"<= chance {chance:.3f}"))
        else:
            thr = chance + (float(twin_row[col]) - chance) / 2
            if acc < thr:
                out.append((who, what, acc, f"< {thr:.3f}"))
    return out


def _reason(backend: str, failures: list[tuple]) -> str:
    return "; ".join(f"{who} at chance on {backend} ({what} {acc:.3f} {limit})" for who, what, acc, limit in failures)


@dataclass(frozen=True)
class Exclusion:
    """Seeds of one (scenario, backend, shots, axis values) whose cells are invalid."""

    scenario: str
    backend: str
    shots: int | None
    axes: tuple
    n_excluded: int
    n_seeds: int
    reasons: tuple[str, ...]  # e.g. "teacher at chance (test accuracy 0.333-0.350 < 0.623-0.640)"


class _Index:
    """The rows keyed by (scenario, method, backend, shots, axis values, seed), each with its
    validity reason ('' = valid)."""

    def __init__(self, rows: list[dict], analysis: AnalysisTable) -> None:
        self.rows = _norm(rows)
        self.axes = axis_columns(self.rows)
        self.twin = exact_twin(self.rows)
        self.cells: dict[tuple, tuple[dict, str]] = {}
        self.groups: set[tuple] = set()  # (scenario, method, backend, shots, axis values) present
        self.failures: dict[tuple, list] = {}  # (scenario, backend, shots, axis values, seed) -> failures
        twins: dict[tuple, dict] = {}
        for r in self.rows:
            if self.is_twin(r):
                twins.setdefault((r["scenario"], self.axv(r), r["seed"]), r)
        for r in self.rows:
            tw = twins.get((r["scenario"], self.axv(r), r["seed"]))
            fails = _failures(r, tw, self.is_twin(r), analysis.min_teacher_accuracy)
            self.failures[(r["scenario"], r["backend"], r["shots"], self.axv(r), r["seed"])] = fails
            reason = _reason(r["backend"], fails)
            key = (r["scenario"], r["method"], r["backend"], r["shots"], self.axv(r), r["seed"])
            self.cells[key] = (r, reason)
            self.groups.add(key[:5])

    def axv(self, r: dict) -> tuple:
        return tuple(_hashable(r.get(c)) for c in self.axes)

    def is_twin(self, r: dict) -> bool:
        return r["backend"] == self.twin and r["shots"] is None

    def value(self, key: tuple, col: str, baseline: str) -> tuple[float | None, str]:
        """``(value, reason)``: the metric (minus the baseline method's, same cell otherwise);
        value None when a cell is missing or not finite, reason non-empty when invalid."""
        sc, m, b, s, axv, seed = key
        hit = self.cells.get(key)
        if hit is None:
            return None, ""
        r, reason = hit
        base = None
        if baseline:
            base = self.cells.get((sc, baseline, b, s, axv, seed))
            if base is None:
                return None, ""
            reason = reason or base[1]
        if reason:
            return None, reason
        if not _finite(r.get(col)) or (base is not None and not _finite(base[0].get(col))):
            return None, ""
        return float(r[col]) - (float(base[0][col]) if base is not None else 0.0), ""


    def exclusions(self) -> list[Exclusion]:
        """The invalid seeds of each (scenario, backend, shots, axis values), with reasons."""
        by: dict[tuple, list] = defaultdict(list)
        for (sc, b, s, axv, seed), fails in self.failures.items():
            by[(sc, b, s, axv)].append(fails)
        out = []
        for (sc, b, s, axv), per_seed in sorted(by.items(), key=lambda kv: str(kv[0])):
            bad = [f for f in per_seed if f]
            if not bad:
                continue
            kinds: dict[tuple, list] = defaultdict(list)
            for fails in bad:
                for who, what, acc, limit in fails:
                    kinds[(who, what, limit.split(" ")[0])].append((acc, limit))
            reasons = tuple(f"{who} at chance ({what} {_span([a for a, _ in v])} {_limits([lim for _, lim in v])})"
                            for (who, what, _), v in kinds.items())
            out.append(Exclusion(sc, b, s, tuple(zip(self.axes, axv, strict=True)), len(bad), len(per_seed), reasons))
        return out


def _span(v: list[float]) -> str:
    lo, hi = min(v), max(v)
    return f"{lo:.3f}" if round(lo, 3) == round(hi, 3) else f"{lo:.3f}–{hi:.3f}"


def _limits(limits: list[str]) -> str:
    """``< 0.417–0.500`` from the per-seed ``< 0.417`` ... (same operator)."""
    op, _, _ = limits[0].rpartition(" ")
    return f"{op} {_span([float(x.rpartition(' ')[2]) for x in limits])}"


def exclusions(rows: list[dict], analysis: AnalysisTable | None = None) -> list[Exclusion]:
    """Which (scenario, backend, shots, axis values) lost seeds to the validity gate, and why."""
    return _Index(rows, analysis or AnalysisTable()).exclusions()


def _estimands(ix: _Index, scenario: str, method: str, backend: str, shots, axv) -> list[tuple[str, str]]:
    out = [("model", "")]
    for b in BASELINES:
        if b != method and (scenario, b, backend, shots, axv) in ix.groups:
            out.append(("unlearning", b))
    return out


def _stats(d) -> tuple[float, float, float, float, float]:
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
        ve, re_ = ix.value((sc, m, ix.twin, None, axv, seed), col, baseline)
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
                    mean, lo, hi, p, min_p = _stats(d)
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
                slopes, used, excluded = [], set(), 0
                for seed in sorted(seeds_of[(sc, m, s, axv)]):
                    pts, dropped = [], False
                    for p1, b, shots in rungs:
                        v, why = ix.value((sc, m, b, shots, axv, seed), col, baseline)
                        dropped |= bool(why)
                        if v is not None:
                            pts.append((p1, v))
                    if len({p for p, _ in pts}) >= 3:
                        x = [p for p, _ in pts]
                        slopes.append(float(per_unit_slopes(x, [[v for _, v in pts]])[0]))
                        used.update(x)
                    elif dropped:
                        excluded += 1
                if not slopes:
                    continue
                mean, lo, hi, p, min_p = _stats(slopes)
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


def _write_csv(path: Path, columns, items) -> Path:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        for it in items:
            d = _flat(it)
            d["shots"] = "exact" if d["shots"] is None else d["shots"]
            w.writerow({k: d[k] for k in columns})
    tmp.replace(path)
    return path


def _store(store, effects: list[Effect], slopes: list[Slope]) -> None:
    for name, cols, legacy, items in (("noise_effect", _columns(COLUMNS, effects), LEGACY_COLUMNS, effects),
                                      ("noise_slope", _columns(SLOPE_COLUMNS, slopes), LEGACY_SLOPE_COLUMNS, slopes)):
        try:
            store.replace_table(name, cols, [_flat(x) for x in items])
        except DatabaseFileError as exc:
            if "no column named" not in str(exc):
                raise
            # the store's older schema: see LEGACY_COLUMNS
            keep = [_flat(x) | {"p_holm": x.p_adj} for x in items if x.estimand == "model"
                    and getattr(x, "valid", True)]
            store.replace_table(name, legacy, keep)


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
