"""The study's one ledger of record: every request's shots, tasks, seconds and cost.

The driver (the process that owns the results store) is the one accountant. Every entry its
:class:`~qmu_hw.core.ledger.ShotLedger` records (its own requests, and the spending each
worker task returns) is written at once to the ``ledger`` table of ``results.sqlite``, so
the work of a run that is later killed stays on record, and a resumed run starts from what
earlier runs of the study already spent. Replayed journal results are written with their
original charge and ``replayed = 1`` (caps do not count them twice).

Workers never write here: the driver grants each task a *lease* on every cap (at most what
is left of it, at most the task's upper bound from the estimate) before dispatching it and
settles it once the spending the task returns is recorded (:mod:`.leases`). The sum of
outstanding leases never exceeds what is left, so every cap holds across workers without
any worker-to-driver call.

Every run ends by writing ``<output>/ledger.json`` in the shape of ``qmu-hw estimate --json``:
``{"bound", "expected", "actual": {phase: {shots, tasks, seconds, cost}, "total": ...},
"currency"}``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

from ..core.journal import database_error
from ..core.ledger import LedgerEntry, ShotLedger
from .leases import LeaseBudget, Leases  # noqa: F401  (re-exported: they lived here)

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    task TEXT,
    phase TEXT NOT NULL,
    backend TEXT NOT NULL,
    circuits INTEGER NOT NULL,
    shots INTEGER NOT NULL,
    submissions INTEGER NOT NULL,
    seconds REAL NOT NULL,
    qpu_seconds REAL NOT NULL,
    cost REAL NOT NULL,
    replayed INTEGER NOT NULL,
    recorded REAL NOT NULL,
    request TEXT
);
"""
# The ``profile`` marker of entries that carry an earlier run's spending into this run's
# ledger (for the caps); the record never writes them again.
EARLIER = "earlier-runs"


class LedgerRecord:
    """The ``ledger`` table of a study's ``results.sqlite``; one instance per driver run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.run_id = uuid.uuid4().hex
        self.task = "-"  # what the entries being recorded belong to (a cell label, a teacher, ...)
        self._lock = threading.Lock()
        try:
            # One connection for the run; autocommit with synchronous=OFF: a committed row
            # survives a killed process (it is in the OS cache), only a machine crash can lose it.
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise database_error(self.path, "results", exc) from None

    def close(self) -> None:
        self._db.close()

    def attach(self, ledger: ShotLedger) -> None:
        """Write every entry ``ledger`` records from now on."""
        ledger.listeners.append(self.write)

    def write(self, e: LedgerEntry, run_id: str | None = None) -> None:
        if e.profile == EARLIER:
            return
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO ledger (run_id, task, phase, backend, circuits, shots, submissions, seconds,"
                    " qpu_seconds, cost, replayed, recorded, request) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id or self.run_id, self.task, e.phase, e.backend, int(e.circuits), int(e.shots), int(e.submissions),
                     float(e.wall_time_s), float(e.qpu_seconds), float(e.cost), int(bool(e.replayed)), time.time(),
                     e.request or None))
            except sqlite3.DatabaseError as exc:
                raise database_error(self.path, "results", exc) from None

    def record_killed_submissions(self, journal) -> int:
        """Charge what killed runs submitted but never recorded: journal entries with job ids
        (the provider has them, so they are paid) and no ledger row. Each gets one row at its
        full journaled charge: a run that died between two task creations of one request
        is charged as if it had created them all (the journal does not know how many tasks a
        request becomes), an over- and never an under-count. Returns the rows written."""
        with self._lock:
            known = {r[0] for r in self._db.execute("SELECT DISTINCT request FROM ledger WHERE request IS NOT NULL")}
        n = 0
        for j in journal.entries():
            if not j.job_ids or j.request_hash in known or j.charged_shots is None:
                continue
            shots = int(j.charged_shots)
            self.task = "(killed run: submitted, not recorded)"
            # an earlier run's spending (not this run's): the caps count it from the start
            self.write(LedgerEntry(j.phase or "unknown", j.backend, "-", int(j.rows), shots, len(j.job_ids), 0.0,
                                   float(j.charged_cost or 0.0), False, request=j.request_hash),
                       run_id="killed-run")
            n += 1
        self.task = "-"
        return n

    def rows(self, *, this_run: bool | None = None) -> list[dict]:
        """Entries on record (``this_run``: True only this run's, False only earlier runs')."""
        q, args = "SELECT * FROM ledger", ()
        if this_run is not None:
            q, args = q + (" WHERE run_id = ?" if this_run else " WHERE run_id != ?"), (self.run_id,)
        with self._lock:
            cur = self._db.execute(q + " ORDER BY id", args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def earlier_spend(self) -> dict:
        """What earlier runs of this study paid (replays excluded): ``{"shots", "cost",
        "phases": {phase: shots}, "by_backend": {name: {"shots", "cost"}}, "entries"}``."""
        out: dict = {"shots": 0, "cost": 0.0, "phases": defaultdict(int), "by_backend": {}, "entries": []}
        groups: dict = {}
        for r in self.rows(this_run=False):
            if r["replayed"]:
                continue
            out["shots"] += int(r["shots"])
            out["cost"] += float(r["cost"])
            out["phases"][r["phase"]] += int(r["shots"])
            b = out["by_backend"].setdefault(r["backend"], {"shots": 0, "cost": 0.0})
            b["shots"] += int(r["shots"])
            b["cost"] += float(r["cost"])
            g = groups.setdefault((r["phase"], r["backend"]), [0, 0, 0, 0.0, 0.0, 0.0])
            for i, k in enumerate(("circuits", "shots", "submissions", "seconds", "cost", "qpu_seconds")):
                g[i] += r[k]
        out["phases"] = dict(out["phases"])
        # One entry per (phase, backend): carried into this run's ledger so that the runtime
        # caps (total, per phase, per profile) start from what was already spent.
        out["entries"] = [LedgerEntry(phase, backend, "-", int(g[0]), int(g[1]), int(g[2]), float(g[3]), float(g[4]),
                                      g[1] == 0, float(g[5])) for (phase, backend), g in sorted(groups.items())]
        return out


def carry_earlier(ledger: ShotLedger, spend: dict) -> None:
    """Charge ``ledger`` with earlier runs' spending (as :meth:`LedgerRecord.earlier_spend`
    returns it), each entry under its own backend and phase, so every cap counts it."""
    for e in spend["entries"]:
        # The phase stays the original one (per-phase caps match it); the record skips these
        # entries by their profile marker.
        ledger.record(LedgerEntry(e.phase, e.backend, EARLIER, e.circuits, e.shots, e.submissions,
                                  e.wall_time_s, e.cost, e.exact, e.qpu_seconds))


def spend_of(ledger: ShotLedger) -> list[dict]:
    """A worker task's spending, grouped by (phase, backend, replayed), as plain data the
    driver turns back into ledger entries (:func:`charge_spend`)."""
    groups: dict = {}
    for e in ledger.entries:
        g = groups.setdefault((e.phase, e.backend, e.replayed), dict.fromkeys(
            ("circuits", "shots", "submissions", "wall_time_s", "cost", "qpu_seconds"), 0))
        g["circuits"] += int(e.circuits)
        g["shots"] += int(e.shots)
        g["submissions"] += int(e.submissions)
        g["wall_time_s"] += float(e.wall_time_s)
        g["cost"] += float(e.cost)
        g["qpu_seconds"] += float(e.qpu_seconds)
    return [{"phase": p, "backend": b, "replayed": r, **g} for (p, b, r), g in groups.items()]


def charge_spend(ledger: ShotLedger, spend: list[dict]) -> int:
    """Record a task's returned spending in the driver's ledger; returns the shots it paid."""
    paid = 0
    for s in spend:
        ledger.record(LedgerEntry(s["phase"], s["backend"], "-", s["circuits"], s["shots"], s["submissions"],
                                  s["wall_time_s"], s["cost"], s["shots"] == 0, s["qpu_seconds"], s["replayed"]))
        paid += 0 if s["replayed"] else int(s["shots"])
    return paid


def actual(rows: list[dict]) -> dict:
    """``{phase: {"shots", "tasks", "seconds", "cost"}, ..., "total": {...}}`` of ledger rows
    (every row on record: the original charge of replays included, flagged separately)."""
    out: dict = {}

    def add(key, r):
        a = out.setdefault(key, {"shots": 0, "tasks": 0, "seconds": 0.0, "cost": 0.0, "replayed_shots": 0})
        a["shots"] += int(r["shots"])
        a["tasks"] += int(r["submissions"])
        a["seconds"] += float(r["qpu_seconds"] or r["seconds"])
        a["cost"] += float(r["cost"])
        if r["replayed"]:
            a["replayed_shots"] += int(r["shots"])

    for r in rows:
        add(r["phase"], r)
        add("total", r)
    out.setdefault("total", {"shots": 0, "tasks": 0, "seconds": 0.0, "cost": 0.0, "replayed_shots": 0})
    return out


def write_ledger_json(output: str | Path, record: LedgerRecord, estimate=None) -> Path:
    """``<output>/ledger.json``: the plan's bound and expected figures and what every run of
    the study actually spent, per phase and in total, in the estimate's currency."""
    doc = estimate.as_json() if estimate is not None else {"bound": None, "expected": None, "currency": "USD"}
    rows = record.rows()
    doc["actual"] = actual(rows)
    doc["actual_this_run"] = actual([r for r in rows if r["run_id"] == record.run_id])["total"]
    path = Path(output) / "ledger.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def charge_worker(runner, out: dict, where: str, task=None, label: str = "-") -> None:
    """A worker's spending, added to the study's ledger (budget, phase times and the ledger
    of record, under its own backend) and its lease settled."""
    if runner.record is not None:
        runner.record.task = label
    if "spend" in out:
        charge_spend(runner.ledger, out["spend"])
    else:
        for phase, s in out.get("phases", {}).items():
            runner.ledger.record(LedgerEntry(phase, where, "-", int(s["circuits"]), int(s["shots"]),
                                             int(s["submissions"]), s["wall_time_s"], s["cost"], s["shots"] == 0))
    leases = getattr(runner, "leases", None)
    if leases is not None and task is not None:
        leases.settle(task)  # its spending is in the ledger now: the caps measure it there
