"""The validity gate: a cell whose teacher or same-noise oracles do not work on its backend.

A noisy rung can kill the model (at p1 = 0.05, p2 = 0.5 the circuit's <Z> shrink below the
shot noise and the teacher scores chance); effects measured there are artefacts of a dead
model, not noise effects on unlearning. The gate judges each cell by its teacher's test
accuracy and its same-noise oracles' retain accuracy, both evaluated on the cell's backend
(results columns ``acc_test_teacher``, ``acc_retain_oracle``), against ``[analysis]
min_teacher_accuracy`` or, by default, halfway between chance (1 / n_classes) and the same
seed's exact value. The exact cell itself is dead only when not above chance.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from .config import DATASET_SHAPES

# What a cell's references are judged by: (column, who, what it measures).
GATES = (("acc_test_teacher", "teacher", "test accuracy"), ("acc_retain_oracle", "same-noise oracles",
                                                               "retain accuracy"))


def finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


def _chance(r: dict) -> float | None:
    n = r.get("n_classes")
    if not finite(n):
        shape = DATASET_SHAPES.get(str(r.get("dataset")))
        n = shape[2] if shape else None
    return 1.0 / float(n) if n else None


def failures(r: dict, twin_row: dict | None, is_twin: bool, min_acc: float | None) -> list[tuple]:
    """``(who, what, accuracy, limit)`` for each reference of the cell that does not work on
    its backend (empty list: valid). ``limit`` is the threshold text, e.g. ``< 0.617``."""
    chance = _chance(r)
    out = []
    for col, who, what in GATES:
        acc = r.get(col)
        if not finite(acc):
            continue  # an older row without the column: nothing to judge by
        acc = float(acc)
        if min_acc is not None:
            if acc < float(min_acc):
                out.append((who, what, acc, f"< {float(min_acc):.3f}"))
        elif chance is None:
            continue
        elif is_twin or twin_row is None or not finite(twin_row.get(col)):
            # the exact cell itself (or no exact value to halve to): only "not above chance" is dead
            if acc <= chance + 1e-9:
                out.append((who, what, acc, f"<= chance {chance:.3f}"))
        else:
            thr = chance + (float(twin_row[col]) - chance) / 2
            if acc < thr:
                out.append((who, what, acc, f"< {thr:.3f}"))
    return out


def reason_text(backend: str, failures: list[tuple]) -> str:
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


def _span(v: list[float]) -> str:
    lo, hi = min(v), max(v)
    return f"{lo:.3f}" if round(lo, 3) == round(hi, 3) else f"{lo:.3f}–{hi:.3f}"


def _limits(limits: list[str]) -> str:
    """``< 0.417–0.500`` from the per-seed ``< 0.417`` ... (same operator)."""
    op, _, _ = limits[0].rpartition(" ")
    return f"{op} {_span([float(x.rpartition(' ')[2]) for x in limits])}"


def summarise(scenario: str, backend: str, shots, axes: tuple, per_seed: list[list[tuple]]) -> Exclusion | None:
    """One :class:`Exclusion` from the :func:`failures` of each seed of a (scenario, backend,
    shots, axis values); None when every seed is valid."""
    bad = [f for f in per_seed if f]
    if not bad:
        return None
    kinds: dict[tuple, list] = defaultdict(list)
    for fails in bad:
        for who, what, acc, limit in fails:
            kinds[(who, what, limit.split(" ")[0])].append((acc, limit))
    reasons = tuple(f"{who} at chance ({what} {_span([a for a, _ in v])} {_limits([lim for _, lim in v])})"
                    for (who, what, _), v in kinds.items())
    return Exclusion(scenario, backend, shots, axes, len(bad), len(per_seed), reasons)
