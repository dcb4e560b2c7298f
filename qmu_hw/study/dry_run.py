"""The estimate as a dry run: the study's own tasks, with a counting backend for every engine.

:func:`dry_run_estimate` walks the study's plan through the same :class:`~.tasks.TaskRunner`
code a run uses (teachers, oracle ensembles, each cell's unlearning, reference outputs and
evaluation), with :class:`~.counting.CountingBackend` in place of every engine, so every
request is validated, charged (shots, provider tasks, price, billed seconds) and recorded
exactly as in a run, but nothing is simulated or submitted: no real backend is built for a
cloud profile, no credential or network is needed, and no shot is spent. Checkpoints and
reference outputs go to a temporary folder; the study's own output folder is not touched.

What a data-dependent branch can change is driven to its maximum:

* early stopping (``fit`` for teachers, oracles and retraining; ``train_epochs`` for every
  epoch-based unlearning method) is switched off (``models.training.early_stopping``), so
  every loop runs all its epochs;
* reference outputs are computed once per group, as in a fresh run (a resumed run that
  finds them on disk spends less);
* SalUn's mask, SCRUB+R's rewind, random labels and the like choose values, not how many
  requests are sent: the counts do not depend on them;
* ``fit`` skips a batch of one row only with BatchNorm: that can only send fewer requests;
* ``[evaluation.per_example]`` populations are not walked (each model builds its backends
  itself): their rows come from the analytic model (``estimate.add_populations``).

The analytic model (:func:`.estimate.estimate_study`, the methods' registered cost models)
stays the fast check ``qmu-hw run`` uses up front, the basis of the ``expected`` figure and
of the backend-time figure, and a cross-check: a task the dry run charges more than the
analytic model counts for it is a wrong cost registration; :attr:`Estimate.mismatches` lists
each (``qmu-hw estimate`` prints them; the tests fail on them).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from ..core.ledger import LedgerEntry
from ..models.training import early_stopping
from .config import StudyConfig
from .counting import CountingBackends
from .estimate import Estimate, estimate_study
from .executors import _bound_key
from .grid import Cell, expand, profile_of
from .plan import StudyPlan
from .tasks import TaskRunner

__all__ = ["dry_run_estimate"]
_KEYS = ("circuits", "shots", "submissions", "tasks", "qpu_seconds", "wall_time_s", "cost")


def dry_run_estimate(cfg: StudyConfig, cells: list[Cell] | None = None, *, measure_time: bool = True,
                     progress: bool = True) -> Estimate:
    """The upper bound of ``cells`` (default: the whole grid) by walking the study's request
    schedule with counting backends (see the module doc), with the analytic model's
    ``expected`` figure and backend time, and its cross-check in ``mismatches``."""
    cells = cells if cells is not None else expand(cfg)
    # `qmu-hw run` on a billed study asks for the same bound twice (the confirmation prompt,
    # then the runner's check): the last one is kept (a config is immutable; its digest covers
    # everything that decides results, the cells are the same objects' values)
    key = (cfg.digest(), str(cfg.path), tuple(cells), measure_time)
    if _LAST.get("key") == key:
        return _LAST["est"]
    analytic = estimate_study(cfg, cells, measure_time, progress=progress)
    t0 = time.perf_counter()
    rows, profiles = _walk(cfg, cells, progress)
    pop_rows = [r for r in analytic.cells if "population_models" in r]
    est = _assemble(rows + pop_rows, len(cells), analytic, profiles)
    est.dry_run_s = time.perf_counter() - t0
    _LAST.update(key=key, est=est)
    return est


_LAST: dict = {}


def _walk(cfg: StudyConfig, cells: list[Cell], progress: bool) -> tuple[list[dict], dict]:
    """One row per teacher, oracle ensemble and cell: what its requests charged; and the
    profiles by the name the ledger records (a profile given by path has its own name)."""
    plan = StudyPlan.of(cfg, cells)
    backends = CountingBackends(cfg)
    ledger = backends.ledger
    rows: list[dict] = []
    bar = _bar(len(plan.cells) + len(plan.tasks), progress)
    with tempfile.TemporaryDirectory(prefix="qmu-hw-dry-run-") as tmp, early_stopping(False):
        runners: dict = {}

        def work(item) -> TaskRunner:
            key = tuple(item.axes)
            if key not in runners:
                runners[key] = TaskRunner(cfg.combination(dict(key)) if key else cfg, backends, log=lambda *_: None)
                runners[key].ckpt_dir = Path(tmp) / "checkpoints" / str(len(runners))
            return runners[key]

        done: set = set()
        for cell in plan.cells:  # the inline executor's order: a cell after the tasks it needs
            for t in plan.needs[cell]:
                if t not in done:
                    done.add(t)
                    mark = len(ledger)
                    bar.set_postfix_str(t.label[:40], refresh=False)
                    work(t).train(t)
                    rows.append(_row(ledger.entries[mark:], _bound_key(t), t.label, t.backend, t.shots, "(training)",
                                     getattr(t, "scenario", "-"), t.seed))
                    bar.update(1)
            mark = len(ledger)
            bar.set_postfix_str(cell.method[:40], refresh=False)
            work(cell).run_cell(cell)
            rows.append(_row(ledger.entries[mark:], ("cell", cell.label), cell.label, cell.backend, cell.shots,
                             cell.method, cell.scenario, cell.seed))
            bar.update(1)
    bar.close()
    return rows, {be.profile.name: be.profile for be in backends._made.values()}


def _bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    # stderr, after a second: the dry run trains every model (classical parts included)
    return tqdm(total=total, desc="dry run", unit="task", file=sys.stderr, delay=1.0, disable=not enabled,
                leave=False)


def _row(entries: list[LedgerEntry], task, label, backend, shots, method, scenario, seed) -> dict:
    spend: dict = defaultdict(lambda: {"shots": 0, "cost": 0.0, "tasks": 0})
    vals = dict.fromkeys(_KEYS, 0.0)
    for e in entries:
        vals["circuits"] += e.circuits
        vals["shots"] += e.shots
        vals["submissions"] += 1
        vals["tasks"] += e.submissions  # the counting backend records provider tasks here
        vals["qpu_seconds"] += e.qpu_seconds
        vals["cost"] += e.cost
        s = spend[(e.backend, e.phase)]
        s["shots"] += int(e.shots)
        s["cost"] += float(e.cost)
        s["tasks"] += int(e.submissions)
    return {"cell": label, "backend": backend, "shots": shots, "method": method, "scenario": scenario, "seed": seed,
            "task": task, "circuits": int(vals["circuits"]), "shots_total": int(vals["shots"]),
            "submissions": int(vals["submissions"]), "tasks": int(vals["tasks"]), "qpu_seconds": vals["qpu_seconds"],
            "wall_time_s": 0.0, "cost": vals["cost"],
            "spend": [{"backend": b, "phase": p, **s} for (b, p), s in spend.items()]}


def _assemble(rows: list[dict], n_cells: int, analytic: Estimate, profiles: dict) -> Estimate:
    """The dry run's rows as an :class:`Estimate`: totals, phases and per-backend charges from
    the rows; backend time and the ``expected`` ratio from the analytic model."""
    est = Estimate(cells=rows, currency=analytic.currency, tasks_by_kind=dict(analytic.tasks_by_kind),
                   bound_method="dry run")
    totals = dict.fromkeys(_KEYS, 0.0)
    phases: dict = defaultdict(int)
    for r in rows:
        for k, rk in (("circuits", "circuits"), ("shots", "shots_total"), ("submissions", "submissions"),
                      ("tasks", "tasks"), ("qpu_seconds", "qpu_seconds"), ("cost", "cost")):
            totals[k] += r[rk]
        for s in r["spend"]:
            phases[s["phase"]] += int(s["shots"])
            prof = profiles.get(s["backend"]) or profile_of(s["backend"])
            b = est.by_backend.setdefault(prof.name, {"shots": 0, "cost": 0.0, "tasks": 0.0,
                                                      "budget": dict(prof.budget)})
            b["shots"] += int(s["shots"])
            b["cost"] += float(s["cost"])
            b["tasks"] += float(s.get("tasks", 0))
    totals["wall_time_s"] = float(analytic.totals.get("wall_time_s", 0.0))  # counted, not timed: the model's
    ints = ("circuits", "shots", "submissions", "tasks")
    est.totals = {k: (int(round(v)) if k in ints else float(v)) for k, v in totals.items()}
    est.totals["cells"] = n_cells
    est.phases = {p: v for p, v in sorted(phases.items()) if v or p in analytic.phases}
    est.analytic = dict(analytic.totals)
    # expected: the walk scaled by the analytic model's typical-early-stopping ratio
    est.expected = {k: (type(est.totals[k])(est.totals[k] * _ratio(analytic, k)) if k in est.totals else v)
                    for k, v in analytic.expected.items()}
    by_task = {r["task"]: r for r in analytic.cells if "task" in r}
    for r in rows:
        a = by_task.get(r.get("task"))
        if a is not None and "ref_spend" in a:  # the leases' share of a group's reference outputs
            r["ref_spend"] = a["ref_spend"]
        if a is not None and (r["shots_total"] > a["shots_total"] or r["tasks"] > a["tasks"] + 1e-9):
            est.mismatches.append(f"{r['cell']}: the dry run charged {r['shots_total']:,} shots in {r['tasks']:,} "
                                  f"tasks, the registered cost models count {a['shots_total']:,} shots in "
                                  f"{a['tasks']:,} tasks")
    return est


def _ratio(analytic: Estimate, key: str) -> float:
    bound = float(analytic.totals.get(key) or 0.0)
    return min(1.0, float(analytic.expected.get(key, 0.0)) / bound) if bound else 1.0
