"""The backend contract: EstimateRequest → Backend.estimate → EstimateResult."""

from __future__ import annotations

import hashlib
import numbers
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .circuit import Circuit
from .exceptions import InvalidRequestError
from .observables import PauliTerm, as_observables

METADATA_KEYS = (
    "backend",
    "profile",
    "profile_sha256",
    "stderr_method",
    "n_circuits",
    "job_ids",
    "wall_time_s",
    "seed",
    "cost_estimate",
)
STDERR_METHODS = ("exact", "sampled", "provider")


#: Largest shots per row, shot budget or shot cap qmu-hw accepts. Shot totals are summed as
#: Python ints and compared with caps before anything is submitted; this bound keeps every
#: single count (and the results store's SQLite INTEGER columns) far from int64 overflow.
MAX_SHOTS = 2 ** 40
#: Seeds are int64-safe non-negative integers (numpy's generators refuse negative ones).
MAX_SEED = 2 ** 63 - 1


def check_shots(shots: Any, what: str = "shots") -> int | None:
    """``None`` (exact) or a positive integer ``<= MAX_SHOTS``; anything else is a clear error."""
    if shots is None:
        return None
    if isinstance(shots, bool) or not isinstance(shots, numbers.Integral):
        if isinstance(shots, float) and shots.is_integer() and 0 < shots <= MAX_SHOTS:
            return int(shots)
        raise InvalidRequestError(f"{what} must be a positive integer or None (exact), got {shots!r}")
    if shots <= 0:
        raise InvalidRequestError(f"{what} must be a positive integer or None (exact), got {shots}")
    if shots > MAX_SHOTS:
        raise InvalidRequestError(f"{what} must be at most {MAX_SHOTS:,} (2**40), got {int(shots):,}")
    return int(shots)


def check_count(value: Any, what: str, *, minimum: int = 1, maximum: int = MAX_SHOTS) -> int:
    """An integer in ``[minimum, maximum]`` (budgets, caps): a clear error otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not minimum <= value <= maximum:
        raise InvalidRequestError(f"{what} must be an integer in [{minimum}, {maximum:,}], got {value!r}")
    return int(value)


def check_seed(seed: Any, what: str = "seed") -> int | None:
    """``None`` or an integer in ``[0, 2**63 - 1]``."""
    if seed is None:
        return None
    return check_count(seed, what, minimum=0, maximum=MAX_SEED)


def _check_row_shots(shots: Any, batch: int) -> int | np.ndarray | None:
    if shots is None or np.ndim(shots) == 0:
        return check_shots(shots.item() if isinstance(shots, np.generic) else shots)
    arr = np.asarray(shots)
    if arr.shape != (batch,):
        raise InvalidRequestError(f"per-row shots must have shape (B,)=({batch},), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer) or (arr <= 0).any():
        raise InvalidRequestError(
            f"per-row shots must be positive integers, got dtype {arr.dtype} with minimum {arr.min()}"
        )
    if (arr > MAX_SHOTS).any():
        raise InvalidRequestError(f"per-row shots must be at most {MAX_SHOTS:,} (2**40), got {int(arr.max()):,}")
    if (arr == arr[0]).all():
        return int(arr[0])
    arr = arr.astype(np.int64)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class EstimateRequest:
    """Expectation values of ``observables`` for every parameter row.

    Args:
        circuit: the circuit (project IR).
        params: float64 array ``(B, P)``; one circuit execution per row.
        observables: O Pauli terms; ``None`` means Z on every qubit.
        shots: shots per row (``None`` = exact expectation), or a ``(B,)`` integer array
            giving each row its own shots (shot allocation across parameter-shift terms).
        seed: seed for sampling / the provider's simulator seed.
        phase: ledger label such as ``train``, ``unlearn/scrub``, ``eval``.
    """

    circuit: Circuit
    params: np.ndarray
    observables: tuple[PauliTerm, ...] | None = None
    shots: int | np.ndarray | None = None
    seed: int | None = None
    phase: str = "default"

    def __post_init__(self) -> None:
        if not isinstance(self.circuit, Circuit):
            raise InvalidRequestError(
                f"circuit must be a qmu_hw Circuit, got {type(self.circuit).__name__}"
            )
        try:
            params = np.array(self.params, dtype=np.float64, copy=True)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(f"params must be a numeric array (B, P): {exc}") from exc
        P = self.circuit.n_params
        if params.ndim == 1 and P == params.shape[0]:
            params = params[None, :]
        if params.ndim != 2 or params.shape[1] != P:
            raise InvalidRequestError(
                f"params must have shape (B, P=({P})) for circuit {self.circuit.name!r}, "
                f"got shape {params.shape}"
            )
        if params.shape[0] == 0:
            raise InvalidRequestError("params has no rows (B=0); nothing to estimate")
        bad = ~np.isfinite(params)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise InvalidRequestError(
                f"params must be finite; got {params[r, c]} at row {r}, column {c} "
                f"({int(bad.sum())} non-finite values)"
            )
        params.setflags(write=False)
        object.__setattr__(self, "params", params)
        object.__setattr__(
            self, "observables", as_observables(self.observables, self.circuit.n_qubits)
        )
        object.__setattr__(self, "shots", _check_row_shots(self.shots, params.shape[0]))
        object.__setattr__(self, "seed", check_seed(self.seed.item() if isinstance(self.seed, np.generic)
                                                    else self.seed))
        if not isinstance(self.phase, str) or not self.phase:
            raise InvalidRequestError(f"phase must be a non-empty string, got {self.phase!r}")

    @property
    def batch_size(self) -> int:
        return self.params.shape[0]

    @property
    def row_shots(self) -> np.ndarray | None:
        """Shots of every row ``(B,)``, or None when exact."""
        if self.shots is None:
            return None
        if isinstance(self.shots, np.ndarray):
            return self.shots
        return np.full(self.batch_size, self.shots, dtype=np.int64)

    @property
    def total_row_shots(self) -> int:
        """Shots over all rows as a Python int (no int64 overflow), 0 when exact."""
        if self.shots is None:
            return 0
        if isinstance(self.shots, np.ndarray):
            return sum(int(s) for s in self.shots)
        return int(self.shots) * self.batch_size

    @property
    def n_observables(self) -> int:
        return len(self.observables)

    def digest(self, *extra: str) -> str:
        """sha256 of everything that determines the result (job journal key)."""
        h = hashlib.sha256()
        h.update(self.circuit.fingerprint.encode())
        h.update(np.ascontiguousarray(self.params).tobytes())
        h.update(repr(self.params.shape).encode())
        for t in self.observables:
            h.update(f"{t.label}:{t.coeff!r};".encode())
        shots = self.shots.tolist() if isinstance(self.shots, np.ndarray) else self.shots
        h.update(f"|{shots}|{self.seed}|".encode())
        for e in extra:
            h.update(e.encode())
        return h.hexdigest()


@dataclass(frozen=True, eq=False)
class EstimateResult:
    """Values ``(B, O)``, standard errors ``(B, O)`` and fixed-key metadata."""

    values: np.ndarray
    stderr: np.ndarray
    shots: int | np.ndarray | None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        stderr = np.asarray(self.stderr, dtype=np.float64)
        if values.ndim != 2 or stderr.shape != values.shape:
            raise InvalidRequestError(
                f"values and stderr must both be (B, O); got {values.shape} and {stderr.shape}"
            )
        missing = [k for k in METADATA_KEYS if k not in self.metadata]
        if missing:
            raise InvalidRequestError(f"result metadata is missing keys {missing}")
        if self.metadata["stderr_method"] not in STDERR_METHODS:
            raise InvalidRequestError(
                f"stderr_method must be one of {STDERR_METHODS}, got {self.metadata['stderr_method']!r}"
            )
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "stderr", stderr)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; checked before anything is submitted."""

    exact: bool
    sampling: bool
    noise: str = "none"
    max_qubits: int = 20
    max_circuits_per_job: int | None = None
    backprop: bool = False
    seedable: bool = True  # False where the engine offers no sampling seed (Braket local)


@runtime_checkable
class Backend(Protocol):
    """Anything with ``capabilities`` and ``estimate(request) -> EstimateResult``."""

    name: str
    capabilities: Capabilities

    def estimate(self, request: EstimateRequest) -> EstimateResult: ...
