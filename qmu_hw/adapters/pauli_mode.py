"""When the density-matrix backend uses Pauli propagation, and what it promises.

Options (``DensityMatrixBackend``):

* ``method``: ``"auto"`` (default) | ``"ptm"`` | ``"pauli"``. ``"ptm"`` is the exact light-cone
  engine (:mod:`.dm_engine`). ``"pauli"`` always propagates Pauli strings
  (:mod:`.pauli_prop`). ``"auto"`` tries Pauli propagation only where the exact engine is
  expensive — some observable's light cone has ``AUTO_MIN_CONE`` qubits or more — and falls
  back to the exact engine when the truncation bound exceeds the tolerance.
* ``pauli_max_weight``: strings heavier than this are dropped (default 4; ``≥ n``: nothing is
  dropped, exact).
* ``pauli_tolerance``: the largest accepted rigorous bound on ``|value − exact|`` (default
  1e-3). A user never gets a number further from the exact one than this without being told:
  ``"pauli"`` raises :class:`InvalidRequestError` naming the options, ``"auto"`` recomputes the
  rows over it on the exact engine (when every row is over it, it remembers the circuit, so
  later requests skip the attempt).

The bound is reported in the result metadata (``result.metadata["raw"]``):
``method`` ("ptm" or "pauli"), ``truncation_error_bound`` (max over rows and observables)
and ``truncation_error_bound_per_observable`` (max over rows; both over the rows Pauli
propagation served), ``pauli_fallback_rows`` (rows recomputed exactly, if any) and, when
``auto`` ran everything exactly, ``pauli_fallback`` (why).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import torch

from ..core.exceptions import InvalidRequestError, ProfileError
from . import dm_engine as dm
from .pauli_compile import compile_plan
from .pauli_prop import chunk_rows, pauli_expectations, plan_bytes

METHODS = ("auto", "ptm", "pauli")
AUTO_MIN_CONE = 7  # 4^7 = 16,384 numbers per row and cone: where the exact engine starts to cost (issue 22)
DEFAULT_MAX_WEIGHT = 4
DEFAULT_TOLERANCE = 1e-3
_COMPILE_BYTES_PER_ENTRY = 96  # numpy index arrays alive while one step is compiled


@dataclass(frozen=True)
class PauliSettings:
    method: str = "auto"
    max_weight: int = DEFAULT_MAX_WEIGHT
    tolerance: float = DEFAULT_TOLERANCE

    @classmethod
    def from_options(cls, options: dict, where: str) -> PauliSettings:
        method = options.get("method", "auto")
        if method not in METHODS:
            raise ProfileError(f"backend profile {where}: option 'method': expected one of {METHODS}, got {method!r}")
        w = options.get("pauli_max_weight", DEFAULT_MAX_WEIGHT)
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ProfileError(f"backend profile {where}: option 'pauli_max_weight': expected an integer >= 1, "
                               f"got {w!r}")
        tol = options.get("pauli_tolerance", DEFAULT_TOLERANCE)
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0:
            raise ProfileError(f"backend profile {where}: option 'pauli_tolerance': expected a number > 0, got {tol!r}")
        return cls(method, int(w), float(tol))


def term_bound(n: int, max_weight: int, n_obs: int) -> int:
    """Most strings a walk can hold: every string of weight ≤ max_weight, per observable."""
    return n_obs * sum(comb(n, w) * 3**w for w in range(min(max_weight, n) + 1))


class PauliChooser:
    """The per-backend policy: which requests run on Pauli propagation (and which already
    fell back once, so ``auto`` does not try them again)."""

    def __init__(self, settings: PauliSettings, memory_limit: int):
        self.settings = settings
        self.memory_limit = memory_limit
        self._failed: set = set()

    def use_pauli(self, circuit, noise, labels: tuple[str, ...]) -> bool:
        s = self.settings
        if s.method != "auto":
            return s.method == "pauli"
        if (circuit, noise, labels) in self._failed or not self._fits(circuit.n_qubits, len(labels)):
            return False
        cones, _ = dm.observable_cones(circuit, noise, labels)
        return max((len(c) for c in cones), default=0) >= AUTO_MIN_CONE

    def _entries(self, n: int, n_obs: int) -> int:
        return 16 * term_bound(n, self.settings.max_weight, n_obs)  # a 2-qubit gate: ≤ 16 branches per string

    def _fits(self, n: int, n_obs: int) -> bool:
        return self._entries(n, n_obs) * _COMPILE_BYTES_PER_ENTRY <= self.memory_limit

    def plan(self, circuit, noise, labels: tuple[str, ...], what: str, rows: int = 1):
        """The compiled walk, refused before compiling or running when it needs more memory
        than the limit (``rows``: rows walked at once)."""
        s = self.settings
        if not self._fits(circuit.n_qubits, len(labels)):
            entries = self._entries(circuit.n_qubits, len(labels))
            raise InvalidRequestError(
                f"{what}: Pauli propagation with pauli_max_weight={s.max_weight} on {circuit.n_qubits} qubits may "
                f"hold {entries:,} string entries, more than the memory limit of {self.memory_limit / 2**30:.1f} GiB "
                "allows; lower 'pauli_max_weight', raise 'max_memory_gb', or use method=\"ptm\""
            )
        plan = compile_plan(circuit, noise, labels, s.max_weight)
        need = plan_bytes(plan, rows)
        if need > self.memory_limit:
            raise InvalidRequestError(
                f"{what}: Pauli propagation would need {need / 2**30:.1f} GiB for {rows} row(s) "
                f"({plan.max_terms:,} strings at most), more than the memory limit of "
                f"{self.memory_limit / 2**30:.1f} GiB; lower 'pauli_max_weight' or raise 'max_memory_gb'"
            )
        return plan

    def expectations(self, circuit, angles: torch.Tensor, terms, noise, what: str):
        """``(values, redo, raw metadata)`` on Pauli propagation, ``redo`` the rows (``auto``)
        whose bound exceeds the tolerance, to recompute exactly (None: none); ``(None, None, raw)``
        when every row does (``raw`` then says why, for the exact run's metadata)."""
        labels = tuple(t.label for t in terms)
        grad = angles.requires_grad
        rows = angles.shape[0] if grad else 1
        plan = self.plan(circuit, noise, labels, what, rows)
        chunk = chunk_rows(plan)
        if grad:  # autograd keeps every step's gathered coefficients and values
            need = 2 * 8 * plan.total_entries * angles.shape[0]
            if need > self.memory_limit:
                raise InvalidRequestError(
                    f"{what}: Pauli propagation under autograd would keep {need / 2**30:.1f} GiB for "
                    f"{angles.shape[0]} rows, more than the memory limit; lower 'pauli_max_weight' or the batch, "
                    "or raise 'max_memory_gb'")
        vals, bound = pauli_expectations(circuit, angles, terms, noise, self.settings.max_weight, chunk)
        tol = self.settings.tolerance
        bad = bound.max(dim=1).values > tol if bound.numel() else torch.zeros(angles.shape[0], dtype=torch.bool)
        if bad.any() and self.settings.method == "pauli":
            raise InvalidRequestError(
                f"{what}: Pauli propagation's truncation error bound is {float(bound.max()):.3g}, above "
                f"pauli_tolerance={tol:g}; raise 'pauli_max_weight' (now {self.settings.max_weight}), accept a "
                "larger 'pauli_tolerance', or use method=\"ptm\" (exact)"
            )
        if bad.all():
            self._failed.add((circuit, noise, labels))
            return None, None, {"method": "ptm", "pauli_fallback": (
                f"Pauli propagation's bound {float(bound.max()):.3g} exceeded pauli_tolerance={tol:g} at "
                f"pauli_max_weight={self.settings.max_weight}; computed exactly instead")}
        good = bound[~bad]
        raw = {"method": "pauli", "pauli_max_weight": self.settings.max_weight,
               "truncation_error_bound": float(good.max()) if good.numel() else 0.0,
               "truncation_error_bound_per_observable": good.max(dim=0).values.tolist() if good.numel() else []}
        if not bad.any():
            return vals, None, raw
        # only the rows over the tolerance are recomputed exactly (their error is then 0)
        raw["pauli_fallback_rows"] = int(bad.sum())
        return vals, torch.nonzero(bad).reshape(-1), raw
