"""Which cells pair: the exact twin, the grid-axis columns, and the index of finished cells
(with each cell's validity) that the noise analysis reads values from."""

from __future__ import annotations

import math
from collections import defaultdict

from .config_tables import AnalysisTable
from .grid import profile_of
from .validity import Exclusion, failures, finite, reason_text, summarise

AXIS_TABLES = ("model", "data", "training")
# Axes that change nothing on the exact engine: a cell's exact twin may carry any value of
# them (with train_backend = "same", a cell on exact trains its teacher on exact, so the
# grid may run the exact cells once for both arms).
EXACT_INVARIANT_AXES = ("training.train_backend",)


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
        self.twin_axv: dict[tuple, tuple] = {}  # (scenario, axis values) -> the twin's axis values
        for r in self.rows:
            tw = twins.get((r["scenario"], self.twin_axes(r["scenario"], self.axv(r), twins), r["seed"]))
            fails = failures(r, tw, self.is_twin(r), analysis.min_teacher_accuracy)
            self.failures[(r["scenario"], r["backend"], r["shots"], self.axv(r), r["seed"])] = fails
            reason = reason_text(r["backend"], fails)
            key = (r["scenario"], r["method"], r["backend"], r["shots"], self.axv(r), r["seed"])
            self.cells[key] = (r, reason)
            self.groups.add(key[:5])

    def twin_axes(self, scenario: str, axv: tuple, twins: dict | None = None) -> tuple:
        """The axis values of the exact twin of cells with ``axv``: the same, or, when no exact
        cell has them, the same up to :data:`EXACT_INVARIANT_AXES`."""
        key = (scenario, axv)
        if key in self.twin_axv:
            return self.twin_axv[key]
        out = axv
        have = {(k[0], k[1]) for k in twins} if twins is not None else {(k[0], k[4]) for k in self.cells
                                                                         if k[2] == self.twin and k[3] is None}
        if (scenario, axv) not in have:
            free = [i for i, c in enumerate(self.axes) if c in EXACT_INVARIANT_AXES]
            match = sorted((a for sc, a in have if sc == scenario and all(
                a[i] == axv[i] for i in range(len(axv)) if i not in free)), key=str)
            out = match[0] if match else axv
        self.twin_axv[key] = out
        return out

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
        if not finite(r.get(col)) or (base is not None and not finite(base[0].get(col))):
            return None, ""
        return float(r[col]) - (float(base[0][col]) if base is not None else 0.0), ""


    def exclusions(self) -> list[Exclusion]:
        """The invalid seeds of each (scenario, backend, shots, axis values), with reasons."""
        by: dict[tuple, list] = defaultdict(list)
        for (sc, b, s, axv, _seed), fails in self.failures.items():
            by[(sc, b, s, axv)].append(fails)
        out = []
        for (sc, b, s, axv), per_seed in sorted(by.items(), key=lambda kv: str(kv[0])):
            x = summarise(sc, b, s, tuple(zip(self.axes, axv, strict=True)), per_seed)
            if x is not None:
                out.append(x)
        return out


def exclusions(rows: list[dict], analysis: AnalysisTable | None = None) -> list[Exclusion]:
    """Which (scenario, backend, shots, axis values) lost seeds to the validity gate, and why."""
    return _Index(rows, analysis or AnalysisTable()).exclusions()


