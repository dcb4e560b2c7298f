"""Worker leases: every cap the driver enforces, held by tasks that run in other processes.

The driver is the one accountant (:mod:`.accounting`), but a worker's requests cannot ask it
before each submission. So, before dispatching a task, the driver grants it a *lease* on
every cap that applies: the study's total shots and cost, each ``[budget] per_phase`` cap,
and each profile's ``[budget]`` (shots and cost of that backend). A lease on a cap is at
most what is left of it (the cap, minus what the study's ledger already counts, minus every
outstanding lease on it) and at most what the task can need (its row of the estimate, plus
the shared reference outputs of its group, which any cell of the group may be the one to
compute: the executor's order or a killed worker decides). The worker checks each request against its lease before submission, like any budget, so no
worker can cross a cap even if the estimate were wrong; the sum of outstanding leases never
exceeds what is left, so the caps hold across any number of workers. A lease is settled
(released) once the task's spending is in the driver's ledger.

Without any cap the task still holds a lease of its upper bound in shots: a task that
spends more than the estimate said is refused (the estimate's bound is wrong: a bug to see).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.exceptions import BudgetExceededError
from ..core.ledger import ShotLedger, _phase_matches


@dataclass(frozen=True)
class Meter:
    """One capped quantity: ``what`` (``shots`` or ``cost``) of ``backend`` (None: every
    backend) in ``phase`` and its sub-phases (None: every phase)."""

    what: str
    backend: str | None = None
    phase: str | None = None

    def counts(self, phase: str, backend: str | None) -> bool:
        return ((self.backend is None or backend == self.backend)
                and (self.phase is None or _phase_matches(self.phase, phase)))

    def measure(self, ledger: ShotLedger) -> float:
        """What ``ledger`` already charged to this meter (replays excluded, as caps count)."""
        if self.what == "shots":
            return ledger.paid_shots(self.phase, backend=self.backend)
        return ledger.paid_cost(self.phase, backend=self.backend)

    def need(self, row: dict | None) -> float | None:
        """What an estimate row (its ``spend`` breakdown) can charge to this meter; None when
        the row has no breakdown (the lease is then what is left)."""
        if row is None or "spend" not in row:
            return None
        # ``ref_spend``: a group's shared reference outputs, counted once in the study's bound (on
        # its first cell) but computed by whichever cell of the group gets there first
        spend = [*row["spend"], *row.get("ref_spend", ())]
        return float(sum(s[self.what] for s in spend if self.counts(s["phase"], s["backend"])))

    def describe(self) -> str:
        where = (f" of backend {self.backend!r}" if self.backend else "") + (
            f" in phase {self.phase!r}" if self.phase else "")
        return f"{self.what}{where}"


def study_caps(cfg, profiles) -> dict[Meter, float]:
    """Every cap the driver's budget checks: the study's ``[budget]`` (total shots, cost,
    per phase) and each profile's ``[budget]`` (``profiles``: the Profiles the study uses)."""
    caps: dict[Meter, float] = {}
    if cfg.max_total_shots is not None:
        caps[Meter("shots")] = cfg.max_total_shots
    if cfg.max_cost is not None:
        caps[Meter("cost")] = cfg.max_cost
    for phase, cap in (cfg.per_phase or {}).items():
        caps[Meter("shots", None, phase)] = cap
    for prof in profiles:
        b = prof.budget or {}
        if b.get("total_shots") is not None:
            caps[Meter("shots", prof.name)] = b["total_shots"]
        if b.get("max_cost") is not None:
            caps[Meter("cost", prof.name)] = b["max_cost"]
        for phase, cap in (b.get("per_phase") or {}).items():
            caps[Meter("shots", prof.name, phase)] = cap
    return caps


class Leases:
    """The driver's grants to worker tasks against ``caps`` (as :func:`study_caps` returns),
    measured on the study's ledger ``ledger`` (which holds earlier runs' and settled tasks'
    spending)."""

    TOTAL = Meter("shots")

    def __init__(self, caps: dict[Meter, float], ledger: ShotLedger) -> None:
        self.caps, self.ledger = dict(caps), ledger
        self.out: dict = {}  # task -> {meter: leased amount}

    def remaining(self, meter: Meter) -> float:
        outstanding = sum(lease.get(meter, 0.0) for lease in self.out.values())
        return self.caps[meter] - meter.measure(self.ledger) - outstanding

    def grant(self, task, row: dict | None) -> list[dict]:
        """Reserve the task's share of every cap; returns the lease as plain data (sent to
        the worker: ``[{"what", "backend", "phase", "allow"}]``)."""
        lease: dict[Meter, float] = {}
        for meter in self.caps:
            need, left = meter.need(row), self.remaining(meter)
            lease[meter] = max(0.0, left if need is None else min(need, left))
        if self.TOTAL not in self.caps and row is not None and "shots_total" in row:
            # no cap: the task's bound (see module doc), with the shared outputs it may compute
            lease[self.TOTAL] = float(row["shots_total"] + sum(s["shots"] for s in row.get("ref_spend", ())))
        self.out[task] = {m: v for m, v in lease.items() if m in self.caps}
        return [{"what": m.what, "backend": m.backend, "phase": m.phase, "allow": v} for m, v in lease.items()]

    def settle(self, task) -> None:
        """Release the task's reservation (call once its spending is in ``ledger``)."""
        self.out.pop(task, None)


class LeaseBudget:
    """A worker task's lease, checked before each request like any budget; spending is
    counted from ledger position ``mark`` (a worker's ledger outlives its tasks). No lease
    held: no check."""

    def __init__(self) -> None:
        self.lease: list[tuple[Meter, float]] = []
        self.mark = 0

    def hold(self, lease: list[dict] | None, mark: int) -> None:
        self.lease = [(Meter(d["what"], d["backend"], d["phase"]), float(d["allow"])) for d in (lease or ())]
        self.mark = mark

    def check(self, ledger: ShotLedger, phase: str, shots: int, cost: float = 0.0, *, backend=None) -> None:
        if not self.lease:
            return
        spent_ledger = ledger.since(self.mark)
        for meter, allow in self.lease:
            if not meter.counts(phase, backend):
                continue
            ask = int(shots) if meter.what == "shots" else float(cost)
            used = meter.measure(spent_ledger)
            if used + ask > allow * (1 + 1e-9) + 1e-12:  # cost is a float sum: no refusal by rounding
                raise BudgetExceededError(
                    f"{'shot' if meter.what == 'shots' else 'cost'} budget exceeded for phase {phase!r}: this "
                    f"task's lease on the study's cap on {meter.describe()} is {_fmt(meter, allow)}, spent "
                    f"{_fmt(meter, used)}, this request asks {_fmt(meter, ask)}. Nothing was submitted.")


def _fmt(meter: Meter, v: float) -> str:
    return f"{int(v)}" if meter.what == "shots" else f"{v:.4f}"
