"""Shot accounting: a ledger of every request and a hard budget checked before submission."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from .contract import MAX_SHOTS, check_shots
from .exceptions import BudgetExceededError, InvalidRequestError


@dataclass(frozen=True)
class LedgerEntry:
    """One request as charged: ``shots`` is the total over rows and measurement groups."""

    phase: str
    backend: str
    profile: str
    circuits: int
    shots: int
    submissions: int
    wall_time_s: float
    cost: float
    exact: bool
    qpu_seconds: float = 0.0
    # Served from the job journal: the entry keeps the original submission's charge (what the
    # result cost), but nothing was spent now, so caps do not count it a second time.
    replayed: bool = False
    request: str = ""  # the job journal's key of a journaled request (links record and journal)


def _phase_matches(cap_phase: str, phase: str) -> bool:
    """A cap on ``unlearn`` covers ``unlearn/scrub``; a cap on ``unlearn/scrub`` only that."""
    return phase == cap_phase or phase.startswith(cap_phase + "/")


@dataclass
class ShotBudget:
    """Hard caps on shots (and estimated cost), overall and per phase.

    Args:
        total_shots: cap on all shots charged to the ledger (None = no cap).
        per_phase: caps per phase; a key also covers its sub-phases (``unlearn`` covers
            ``unlearn/scrub``).
        max_cost: cap on the summed estimated cost (profile currency).
        scope: a backend name: the caps then apply only to that backend's requests and count
            only what it spent (a profile's ``[budget]`` inside a study that uses several).

    Shot counts are Python ints (no int64 overflow); replayed entries are not counted again.
    """

    total_shots: int | None = None
    per_phase: Mapping[str, int] = field(default_factory=dict)
    max_cost: float | None = None
    scope: str | None = None

    def __post_init__(self) -> None:
        self.total_shots = check_shots(self.total_shots, "total_shots")
        self.per_phase = {str(k): check_shots(v, f"per_phase[{k!r}]") for k, v in dict(self.per_phase).items()}
        if self.max_cost is not None and (isinstance(self.max_cost, bool) or not self.max_cost >= 0):
            raise InvalidRequestError(f"max_cost must be >= 0 or None, got {self.max_cost!r}")

    def _where(self) -> str:
        return "" if self.scope is None else f" of backend {self.scope!r}"

    def check(self, ledger: ShotLedger, phase: str, shots: int, cost: float = 0.0, *,
              backend: str | None = None) -> None:
        """Raise :class:`BudgetExceededError` if charging this request would cross a cap."""
        if self.scope is not None and backend is not None and backend != self.scope:
            return
        shots = int(shots)
        if shots > MAX_SHOTS:  # checked here too: a cap must never be passed by an overflow
            raise BudgetExceededError(f"request for phase {phase!r} asks {shots:,} shots, more than the "
                                      f"{MAX_SHOTS:,} qmu-hw accepts in one request; nothing was submitted.")
        if self.total_shots is not None:
            spent = ledger.paid_shots(backend=self.scope)
            if spent + shots > self.total_shots:
                raise BudgetExceededError(
                    f"shot budget{self._where()} exceeded for phase {phase!r}: total cap {self.total_shots}, "
                    f"spent {spent}, this request asks {shots}. Raise the budget "
                    "(total_shots) or lower shots; nothing was submitted."
                )
        for cap_phase, cap in self.per_phase.items():
            if _phase_matches(cap_phase, phase):
                spent = ledger.paid_shots(cap_phase, backend=self.scope)
                if spent + shots > cap:
                    raise BudgetExceededError(
                        f"shot budget{self._where()} exceeded for phase {phase!r}: cap on {cap_phase!r} is {cap}, "
                        f"spent {spent}, this request asks {shots}. Nothing was submitted."
                    )
        if self.max_cost is not None:
            spent_cost = ledger.paid_cost(backend=self.scope)
            if spent_cost + cost > self.max_cost:
                raise BudgetExceededError(
                    f"cost budget{self._where()} exceeded for phase {phase!r}: cap {self.max_cost:.4f}, spent "
                    f"{spent_cost:.4f}, this request is estimated at {cost:.4f}. Nothing was submitted."
                )


@dataclass
class Budgets:
    """Several caps checked together (a study's ``[budget]`` and each profile's ``[budget]``);
    a request is refused if any of them would be crossed."""

    budgets: tuple = ()

    def check(self, ledger: ShotLedger, phase: str, shots: int, cost: float = 0.0, *,
              backend: str | None = None) -> None:
        for b in self.budgets:
            b.check(ledger, phase, shots, cost, backend=backend)


class ShotLedger:
    """Append-only record of every request a backend served (thread-safe)."""

    def __init__(self) -> None:
        self._entries: list[LedgerEntry] = []
        self._lock = threading.Lock()
        self.listeners: list = []  # callables(entry), e.g. a progress bar

    def record(self, entry: LedgerEntry) -> None:
        with self._lock:
            self._entries.append(entry)
        for fn in list(self.listeners):
            fn(entry)

    def __getstate__(self) -> dict:
        # torch.save / pickle of a model keeps the entries; the lock and the listeners
        # (progress-bar callbacks of the process that recorded them) belong to that process.
        with self._lock:
            return {"_entries": list(self._entries)}

    def __setstate__(self, state: dict) -> None:
        self._entries = list(state["_entries"])
        self._lock = threading.Lock()
        self.listeners = []

    @property
    def entries(self) -> list[LedgerEntry]:
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def _select(self, phase: str | None) -> list[LedgerEntry]:
        es = self.entries
        return es if phase is None else [e for e in es if _phase_matches(phase, e.phase)]

    def total_shots(self, phase: str | None = None) -> int:
        return sum(int(e.shots) for e in self._select(phase))

    def paid_shots(self, phase: str | None = None, backend: str | None = None) -> int:
        """Shots spent (not replayed), optionally only on ``backend``: what caps count."""
        return sum(int(e.shots) for e in self._select(phase)
                   if not e.replayed and (backend is None or e.backend == backend))

    def paid_cost(self, phase: str | None = None, backend: str | None = None) -> float:
        return float(sum(e.cost for e in self._select(phase)
                         if not e.replayed and (backend is None or e.backend == backend)))

    def total_cost(self, phase: str | None = None) -> float:
        return float(sum(e.cost for e in self._select(phase)))

    def summary(self, phase: str | None = None) -> dict[str, float]:
        """Totals as a plain dict: requests, circuits, shots, submissions, wall time, cost."""
        es = self._select(phase)
        return {
            "requests": len(es),
            "circuits": sum(e.circuits for e in es),
            "shots": sum(e.shots for e in es),
            "submissions": sum(e.submissions for e in es),
            "wall_time_s": float(sum(e.wall_time_s for e in es)),
            "cost": float(sum(e.cost for e in es)),
            "qpu_seconds": float(sum(e.qpu_seconds for e in es)),
            "replayed_shots": sum(int(e.shots) for e in es if e.replayed),
        }

    def by_phase(self) -> dict[str, dict[str, float]]:
        phases = sorted({e.phase for e in self.entries})
        return {p: self.summary_exact_phase(p) for p in phases}

    def summary_exact_phase(self, phase: str) -> dict[str, float]:
        es = [e for e in self.entries if e.phase == phase]
        sub = ShotLedger()
        sub._entries = es
        return sub.summary()

    def table(self) -> list[dict]:
        """One dict per entry: ``pandas.DataFrame(ledger.table())`` gives a table."""
        return [asdict(e) for e in self.entries]

    def since(self, mark: int) -> ShotLedger:
        """A ledger view of the entries recorded after ``mark = len(ledger)``."""
        sub = ShotLedger()
        sub._entries = self.entries[mark:]
        return sub
