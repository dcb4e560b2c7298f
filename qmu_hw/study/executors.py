"""Where a study's work runs: a local process pool or Ray.

A run is a small task graph. Prerequisite tasks train (or load) the teacher of a (seed,
train backend) and the oracle set of a (seed, scenario, train backend) and leave them as
checkpoints in ``<output>/checkpoints``; a cell task waits for the prerequisites it needs,
loads those checkpoints and returns its metrics. Every task runs in a worker with one torch
thread and returns plain data; the driver (this process) is the only writer of the results
store and the journal, shows progress, and records each cell as it arrives, so a killed
driver loses at most the cells in flight and a rerun redoes exactly those.

Cells that touch a billed or journaled backend (cloud devices, anything that asks for
confirmation) run on the driver, in the study's own process: the journal keeps one writer,
the confirmation prompt and the budget stay in one place, and such cells wait on the
provider, not on local CPUs. Their teachers and oracles, trained on a local train backend,
still go to the workers.

The executors themselves (process pool, Ray) are in :mod:`.executor_backends`; this module
holds the task graph, the worker-side task functions, :func:`make_executor` and the driver
loop :func:`run_tasks`.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any

from ..core.exceptions import (
    BudgetExceededError,
    InvalidRequestError,
    MissingDependencyError,
    QmuHwError,
)
from ..core.ledger import LedgerEntry
from .accounting import Leases, charge_spend, spend_of
from .executor_backends import MAX_RETRIES, LocalExecutor, RayExecutor  # noqa: F401  (re-exported)
from .grid import Cell, profile_of
from .references import train_target

EXECUTORS = ("local", "ray")


# -- the task graph -------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainTask:
    """A teacher (``scenario`` None) or the oracle set of one scenario, on a train target."""

    seed: int
    scenario: str | None
    backend: str
    shots: int | None

    @property
    def label(self) -> str:
        what = "teacher" if self.scenario is None else f"oracles {self.scenario}"
        return f"{what} seed={self.seed} {self.backend}@{'exact' if self.shots is None else self.shots}"


def on_driver(backend: str) -> bool:
    """Billed, cloud or journaled backends (adapters that take a job journal): their
    requests stay in the driver process."""
    from ..core.backend import adapter_info

    prof = profile_of(backend)
    info = adapter_info(prof)
    return bool(info.remote or info.billed or prof.requires_confirmation or info.journaled)


def cell_on_driver(cfg, cell: Cell) -> bool:
    return on_driver(cell.backend) or on_driver(cfg.surrogates.get(cell.backend, cell.backend))


def plan(cfg, todo: list[Cell]) -> tuple[list[TrainTask], dict[Cell, list[TrainTask]]]:
    """Prerequisite tasks (on local train targets only) and, per cell, the ones it waits for."""
    from .references import exact_reference, same_noise_reference

    tasks: dict[TrainTask, None] = {}
    needs: dict[Cell, list[TrainTask]] = {}
    for cell in todo:
        name, shots = train_target(cfg, cell)
        if on_driver(name):  # trained on a billed backend: the driver cell trains it itself
            needs[cell] = []
            continue
        # The two oracle ensembles run_cell compares with: retrained exactly and retrained
        # under the cell's noise level (references.py); each trained once, in exact mode.
        refs = dict.fromkeys((exact_reference(cfg), same_noise_reference(cfg, cell.backend)))
        deps = [TrainTask(cell.seed, None, name, shots)]
        deps += [TrainTask(cell.seed, cell.scenario, ref, None) for ref in refs if not on_driver(ref)]
        for d in deps:
            tasks.setdefault(d, None)
        needs[cell] = deps
    return list(tasks), needs


def task_resources(cfg) -> dict:
    """Ray resources of one task: one CPU, and memory once the register makes it matter
    (a density matrix is 4^n amplitudes per row, a statevector 2^n; parameter shift sends
    ~2·3·n·layers shifted rows per sample). A scheduling hint, capped so a task always fits
    a typical node."""
    from .protocol import DEFAULT_QUBITS

    n = cfg.n_qubits or DEFAULT_QUBITS.get(cfg.dataset, 4)
    noisy = any(profile_of(b).noise_kind != "none" for b in cfg.backends)
    amplitudes = 4 ** n if noisy else 2 ** n
    rows = cfg.batch_size * (2 * 3 * n * (cfg.n_layers or 2) + 1)
    need = amplitudes * 16 * rows * 2
    res: dict[str, Any] = {"num_cpus": 1}
    if need >= 256 * 2 ** 20:
        res["memory"] = int(min(need, 8 * 2 ** 30))
    return res


# -- what runs inside a worker --------------------------------------------------------------
_STATE: dict = {}  # per worker process: one runner and one seed's data, reused across tasks


def _worker(cfg, seed: int):
    import torch

    torch.set_num_threads(1)  # one core per task
    from .runner import StudyRunner, _prepare

    key = (cfg.digest(), str(cfg.output))
    if _STATE.get("key") != key:
        _STATE.clear()
        _STATE.update(key=key, runner=StudyRunner(cfg, log=lambda *_: None, worker=True), preps={})
    if seed not in _STATE["preps"]:
        _STATE["preps"] = {seed: _prepare(cfg, seed)}
    return _STATE["runner"], _STATE["preps"][seed]


def train_task(cfg, task: TrainTask, lease: int | None = None, *_prerequisites) -> dict:
    """Train (or load) a teacher or an oracle set; the checkpoints are the result. ``lease``:
    the shots the driver granted this task (accounting.Leases)."""
    runner, prep = _worker(cfg, task.seed)
    mark, t0 = len(runner.ledger), time.perf_counter()
    runner.lease.hold(lease, mark)
    try:
        if task.scenario is None:
            runner.teacher(prep, task.seed, task.backend, task.shots)
        else:
            runner.oracles(prep, prep.scenario(task.scenario), task.seed, task.backend, task.shots)
    finally:
        runner.lease.hold(None, 0)
    return {"phases": runner.ledger.since(mark).by_phase(), "spend": spend_of(runner.ledger.since(mark)),
            "wall_s": time.perf_counter() - t0}


def cell_task(cfg, cell: Cell, lease: int | None = None, *_prerequisites) -> dict:
    """One cell; never writes the store. A bug becomes a 'failed' outcome with its traceback;
    a budget refusal a 'budget' outcome (the cell is stored failed, the study goes on); any
    other qmu-hw error (unavailable backend) becomes 'stop', which ends the study."""
    runner, prep = _worker(cfg, cell.seed)
    mark, t0 = len(runner.ledger), time.perf_counter()
    runner.lease.hold(lease, mark)
    out: dict[str, Any] = {"status": "done", "metrics": None, "cost": None, "error": None}
    try:
        out["metrics"], out["cost"] = runner.run_cell(prep, cell)
    except BudgetExceededError as exc:
        out.update(status="budget", error=f"budget: {exc}", short=f"budget: {exc}")
    except QmuHwError as exc:
        out.update(status="stop", error=f"{type(exc).__name__}: {exc}", exc_type=type(exc).__name__)
    except Exception as exc:
        out.update(status="failed", error=traceback.format_exc(limit=8), short=repr(exc))
    finally:
        runner.lease.hold(None, 0)
    out["phases"] = runner.ledger.since(mark).by_phase()
    out["spend"] = spend_of(runner.ledger.since(mark))
    out["wall_s"] = time.perf_counter() - t0
    return out


# -- choosing an executor (the classes are in executor_backends) ---------------------------
def make_executor(name: str, workers: int, address: str | None = None):
    """The executor for ``--executor``/``--workers``/``--address``, not yet started; None
    means "run the cells one after another in this process" (local, one worker)."""
    if name not in EXECUTORS:
        raise InvalidRequestError(f"unknown executor {name!r}; expected one of {list(EXECUTORS)}")
    if address and name != "ray":
        raise InvalidRequestError(f"--address {address} needs --executor ray")
    if name == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise MissingDependencyError(
                "--executor ray needs Ray, which is not installed; run: pip install 'qmu-hw[ray]'"
            ) from None
        return RayExecutor(workers, address)
    return LocalExecutor(workers) if workers > 1 else None


# -- the driver -----------------------------------------------------------------------------
def run_tasks(runner, todo: list[Cell], ids: dict, executor):
    """Run ``todo`` through ``executor``; the driver writes every cell to the store."""
    from .runner import RunSummary, _prepare, _Progress

    cfg = runner.cfg
    prereqs, needs = plan(cfg, todo)
    local = [c for c in todo if not cell_on_driver(cfg, c)]
    driver = [c for c in todo if cell_on_driver(cfg, c)]
    res = task_resources(cfg)
    prog = _Progress(runner.progress, len(todo))
    state = {"ran": 0, "failed": 0, "failures": [], "stop": None, "broken": set()}
    leases = _leases(runner)
    bounds = _task_bounds(runner.estimate)
    executor.start()
    try:
        train = {t: executor.submit(train_task, (cfg, t, leases.grant(t, bounds.get(_train_key(t)))), [], res)
                 for t in prereqs}
        label = {h: t for t, h in train.items()}
        cells = {executor.submit(cell_task, (cfg, c, leases.grant(c, bounds.get(("cell", c.label)))),
                                 [train[d] for d in needs[c]], res): c for c in local}
        runner._leases = leases
        pending = dict.fromkeys([*train.values(), *cells])  # ordered set of handles in flight

        def drain(timeout: float) -> None:
            if not pending:
                return
            for h in executor.wait(list(pending), timeout):
                del pending[h]
                if h in cells:
                    broken = [d.label for d in needs[cells[h]] if d in state["broken"]]
                    _record_cell(runner, cells[h], ids[cells[h]], h, executor, state, prog, broken)
                elif not _record_train(runner, label[h], h, executor):
                    state["broken"].add(next(t for t, x in train.items() if x == h))

        preps: dict = {}
        for cell in driver:  # billed / journaled cells: here, after their prerequisites
            if state["stop"] is not None:
                break
            while any(train[d] in pending for d in needs[cell]):
                drain(1.0)
            prog.note(cell.label)
            if cell.seed not in preps:
                preps = {cell.seed: _prepare(cfg, cell.seed)}  # one seed's data at a time
            with prog.requests_bar(runner.ledger, cell.method):
                error = runner.attempt(preps[cell.seed], cell, ids[cell])
            state["ran" if error is None else "failed"] += 1
            if error is not None:
                state["failures"].append(error)
                runner.log(f"cell failed: {error[0]}: {error[1]}")
            prog.advance()
            drain(0.0)
        while pending and state["stop"] is None:
            drain(1.0)
    finally:
        prog.close()
        executor.close()
    if state["stop"] is not None:
        raise state["stop"]
    return RunSummary(0, 0, state["ran"], state["failed"], 0.0, output=cfg.output, failures=state["failures"])


def _leases(runner) -> Leases:
    """The driver's leases against the study's shot cap (``None``: uncapped), starting from
    what is already on the ledger (earlier runs, driver cells)."""
    return Leases(runner.cfg.max_total_shots, runner.ledger.paid_shots())


def _task_bounds(estimate) -> dict:
    """Each task's upper bound in shots, keyed like the estimate's rows (``row["task"]``)."""
    if estimate is None:
        return {}
    return {row["task"]: int(row["shots_total"]) for row in estimate.cells if "task" in row}


def _train_key(t: TrainTask) -> tuple:
    return ("teacher", t.seed, t.backend, t.shots) if t.scenario is None else ("oracle", t.seed, t.scenario,
                                                                                t.backend)


def _charge(runner, out: dict, where: str, task=None, label: str = "-") -> None:
    """A worker's spending, added to the study's ledger (budget, phase times and the record,
    under its own backend) and its lease settled."""
    if runner.record is not None:
        runner.record.task = label
    if "spend" in out:
        paid = charge_spend(runner.ledger, out["spend"])
    else:
        paid = 0
        for phase, s in out.get("phases", {}).items():
            runner.ledger.record(LedgerEntry(phase, where, "-", int(s["circuits"]), int(s["shots"]),
                                             int(s["submissions"]), s["wall_time_s"], s["cost"], s["shots"] == 0))
            paid += int(s["shots"])
    leases = getattr(runner, "_leases", None)
    if leases is not None and task is not None:
        leases.settle(task, paid)


def _record_train(runner, task: TrainTask, handle, executor) -> bool:
    """False if the task raised: its cells then fail with its error (Ray) or meet the
    same error themselves (local pool), and are recorded failed."""
    try:
        out = executor.result(handle)
    except Exception as exc:
        runner.log(f"{task.label} failed: {type(exc).__name__}: {exc}")
        return False
    _charge(runner, out, executor.name, task, task.label)
    runner.log(f"{task.label} ready ({out['wall_s']:.1f}s)")
    return True


def _qmu_error(out: dict) -> QmuHwError:
    """The worker's qmu-hw error again, with its class (the CLI maps classes to exit codes)."""
    from ..core import exceptions

    cls = getattr(exceptions, out.get("exc_type", ""), QmuHwError)
    if not (isinstance(cls, type) and issubclass(cls, QmuHwError)):
        cls = QmuHwError
    return cls(out["error"].split(": ", 1)[-1])


def _record_cell(runner, cell: Cell, cell_id: str, handle, executor, state: dict, prog, broken: list) -> None:
    store, digest = runner.store, runner.cfg.digest()
    try:
        out = executor.result(handle)
    except Exception as exc:  # retries exhausted, or a prerequisite raised
        why = f"{type(exc).__name__}: {exc}"
        if broken:
            why = f"prerequisite {', '.join(broken)} failed: {why}"
        out = {"status": "failed", "error": why, "short": why, "phases": {}}
    _charge(runner, out, executor.name, cell, cell.label)
    store.start(cell_id, digest, cell.key())
    if out["status"] == "done":
        store.finish(cell_id, out["metrics"], out["cost"])
        state["ran"] += 1
    else:
        store.fail(cell_id, out["error"])
        state["failed"] += 1
        if out["status"] == "stop" and out.get("exc_type") != "BudgetExceededError":
            state["stop"] = _qmu_error(out)
        else:
            state["failures"].append((cell.label, out.get("short", out["error"])))
            runner.log(f"cell failed: {cell.label}: {out.get('short', out['error'])}")
    prog.note(cell.label)
    prog.advance()
