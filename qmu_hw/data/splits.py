"""Stratified train / validation / test / non-member-pool splits and forget scenarios.

Corrects the paper's protocol: the teacher trains on the FULL training split and the forget
set is a subset of it; early stopping and selection use the validation split; scaling is
fitted on the training split only; membership attacks get true non-members (the pool).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..core.exceptions import InvalidRequestError


@dataclass(frozen=True)
class DataSplits:
    """Index arrays into the dataset; disjoint and covering it."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    pool: np.ndarray


@dataclass(frozen=True)
class ForgetScenario:
    """``forget`` and ``retain`` partition ``train``. ``name`` is e.g. ``subset:0.02``."""

    name: str
    kind: str
    retain: np.ndarray
    forget: np.ndarray
    forget_class: int | None = None

    def check_inside(self, train: np.ndarray) -> None:
        """The forget set must be part of the teacher's training data."""
        if not np.isin(self.forget, train).all():
            raise InvalidRequestError(f"scenario {self.name}: forget set is not inside the training split")
        if np.intersect1d(self.forget, self.retain).size:
            raise InvalidRequestError(f"scenario {self.name}: forget and retain overlap")


def _stratified_take(idx: np.ndarray, y: np.ndarray, frac: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (taken, rest) taking ≈frac of each class (at least one each)."""
    taken = []
    for c in np.unique(y[idx]):
        members = rng.permutation(idx[y[idx] == c])
        k = min(len(members) - 1, max(1, int(round(frac * len(members)))))
        taken.append(members[:k])
    t = np.sort(np.concatenate(taken))
    return t, np.setdiff1d(idx, t)


def make_splits(
    y: np.ndarray, seed: int, val: float = 0.15, test: float = 0.2, pool: float = 0.1
) -> DataSplits:
    """Stratified, seeded splits. The pool holds non-members for membership attacks."""
    for name, v in (("val", val), ("test", test), ("pool", pool)):
        if not 0 < v < 1:
            raise InvalidRequestError(f"split fraction {name} must be in (0, 1), got {v}")
    if val + test + pool >= 0.9:
        raise InvalidRequestError(f"val+test+pool = {val + test + pool:.2f} leaves too little to train on")
    rng = np.random.default_rng(seed)
    rest = np.arange(len(y))
    test_idx, rest = _stratified_take(rest, y, test, rng)
    val_idx, rest = _stratified_take(rest, y, val / (1 - test), rng)
    pool_idx, rest = _stratified_take(rest, y, pool / (1 - test - val), rng)
    return DataSplits(rest, val_idx, test_idx, pool_idx)


_SCENARIO = re.compile(r"^(subset):(0?\.\d+|1(\.0+)?)$|^(class):(\d+)$")


def parse_scenario(spec: str) -> tuple[str, float | int]:
    """``"subset:0.02"`` → ("subset", 0.02); ``"class:0"`` → ("class", 0)."""
    m = _SCENARIO.match(str(spec).strip())
    if not m:
        raise InvalidRequestError(
            f"unknown scenario {spec!r}; expected 'subset:FRACTION' (e.g. subset:0.02) or 'class:K'"
        )
    if m.group(1):
        frac = float(m.group(2))
        if not 0 < frac < 1:
            raise InvalidRequestError(f"subset fraction must be in (0, 1), got {frac}")
        return "subset", frac
    return "class", int(m.group(5))


def make_scenario(spec: str, y: np.ndarray, train: np.ndarray, seed: int) -> ForgetScenario:
    """A forget scenario over the training split."""
    kind, value = parse_scenario(spec)
    if kind == "subset":
        forget, retain = _stratified_take(train, y, float(value), np.random.default_rng(seed + 7919))
        sc = ForgetScenario(spec, kind, retain, forget)
    else:
        cls = int(value)
        if cls not in set(y[train].tolist()):
            raise InvalidRequestError(f"scenario {spec}: class {cls} is not in the training split")
        mask = y[train] == cls
        sc = ForgetScenario(spec, kind, train[~mask], train[mask], forget_class=cls)
    sc.check_inside(train)
    return sc
