"""Where a study's work runs: in this process (inline), a local process pool, or Ray.

A run is the task graph of the study's :class:`~.plan.StudyPlan`. Teacher and oracle tasks
train (or load) models and leave them as checkpoints in ``<output>/checkpoints``; a cell
task waits for the tasks it needs, loads those checkpoints and returns its metrics. Worker
tasks run with one torch thread and return plain data; the driver (this process) is the only
writer of the results store and the journal, shows progress, and records each cell as it
arrives, so a killed driver loses at most the cells in flight and a rerun redoes exactly
those.

The sequential run is the same graph through the inline executor: every task runs here, in
order, on the study's own backends (one ledger, budget and journal). With a pool, tasks and
cells that touch a billed or journaled backend (cloud devices, anything that asks for
confirmation) still run here: the journal keeps one writer, the confirmation prompt and the
budget stay in one place, and such cells wait on the provider, not on local CPUs.

The executors themselves are in :mod:`.executor_backends`; this module holds the worker-side
task functions, :func:`make_executor` and the driver loop :func:`run_tasks`.

Hook points: a worker's spending is added to the study's ledger by
:func:`.accounting.charge_worker`; population models are the driver's
:class:`.population_driver.PopulationDriver`; a
cell's row is written in :func:`_record_cell` (pool) and ``StudyRunner.attempt`` (here).
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..core.exceptions import (
    BudgetExceededError,
    InvalidRequestError,
    MissingDependencyError,
    QmuHwError,
)
from ..core.ledger import ShotLedger
from .accounting import charge_worker, spend_of
from .executor_backends import MAX_RETRIES, InlineExecutor, LocalExecutor, RayExecutor  # noqa: F401  (re-exported)
from .grid import Cell, profile_of
from .leases import Leases, study_caps
from .plan import StudyPlan
from .population_driver import PopulationDriver, teacher_state

EXECUTORS = ("local", "ray")


@dataclass
class RunSummary:
    total_cells: int
    skipped: int
    ran: int
    failed: int
    wall_time_s: float
    phases: dict = field(default_factory=dict)
    output: str = ""
    failures: list = field(default_factory=list)
    # Tasks this run carried out (trained or loaded from a checkpoint): {"teacher", "oracle", "cell"}.
    tasks: dict = field(default_factory=dict)


class _Progress:
    """tqdm bars when asked for, silent otherwise."""

    def __init__(self, enabled: bool, total: int):
        self.enabled = enabled
        self.cells = None
        if enabled:
            from tqdm.auto import tqdm

            self.cells = tqdm(total=total, desc="cells", unit="cell", position=0)

    def note(self, text: str) -> None:
        if self.cells is not None:
            self.cells.set_postfix_str(text[:60])

    @contextlib.contextmanager
    def requests_bar(self, ledger: ShotLedger, desc: str):
        """A second bar counting the backend requests (training / unlearning steps and
        evaluations) of the cell in flight."""
        if not self.enabled:
            yield
            return
        from tqdm.auto import tqdm

        bar = tqdm(desc=desc[:40], unit="req", position=1, leave=False)

        def tick(entry):
            bar.update(1)
            bar.set_postfix_str(entry.phase[:24])

        ledger.listeners.append(tick)
        try:
            yield
        finally:
            ledger.listeners.remove(tick)
            bar.close()

    def advance(self) -> None:
        if self.cells is not None:
            self.cells.update(1)

    def close(self) -> None:
        if self.cells is not None:
            self.cells.close()


# -- where each task runs ---------------------------------------------------------------------
def on_driver(backend: str) -> bool:
    """Billed, cloud or journaled backends (adapters that take a job journal): their
    requests stay in the driver process."""
    from ..core.backend import adapter_info

    prof = profile_of(backend)
    info = adapter_info(prof)
    return bool(info.remote or info.billed or prof.requires_confirmation or info.journaled)


def cell_on_driver(cfg, cell: Cell) -> bool:
    return on_driver(cell.backend) or on_driver(cfg.surrogates.get(cell.backend, cell.backend))


def here(plan: StudyPlan, cell: Cell, executor) -> bool:
    """Whether a cell runs in the driver: always with the inline executor; with a pool when
    it, its surrogate or a model it needs touches a billed or journaled backend."""
    return (executor.inline or cell_on_driver(plan.config_of(cell), cell)
            or any(on_driver(t.backend) for t in plan.needs[cell]))


def task_resources(cfg) -> dict:
    """Ray resources of one task: one CPU, and memory once the register makes it matter
    (a density matrix is 4^n amplitudes per row, a statevector 2^n; parameter shift sends
    ~2·3·n·layers shifted rows per sample). A scheduling hint, capped so a task always fits
    a typical node."""
    from .protocol import DEFAULT_QUBITS

    need = 0
    for _, c in cfg.combinations():  # the largest combination decides
        n = c.n_qubits or DEFAULT_QUBITS.get(c.dataset, 4)
        noisy = any(profile_of(b).noise_kind != "none" for b in c.backends)
        amplitudes = 4 ** n if noisy else 2 ** n
        rows = c.batch_size * (2 * 3 * n * (c.n_layers or 2) + 1)
        need = max(need, amplitudes * 16 * rows * 2)
    res: dict[str, Any] = {"num_cpus": 1}
    if need >= 256 * 2 ** 20:
        res["memory"] = int(min(need, 8 * 2 ** 30))
    return res


# -- what runs inside a worker --------------------------------------------------------------
_STATE: dict = {}  # per worker process: one task runner per combination, reused across tasks


def _worker(cfg):
    """The worker's task runner of ``cfg`` (one axis combination's config).

    The worker follows the study's thread policy (``[execution] threads``, else
    ``QMU_HW_THREADS``, else single-threaded below the size where threads pay)."""
    from ..adapters.threads import apply_thread_policy
    from .tasks import Backends, TaskRunner

    apply_thread_policy(cfg.tables.execution.threads)

    key = (cfg.digest(), str(cfg.output))
    if _STATE.get("key") != key:
        _STATE.clear()
        _STATE.update(key=key, runner=TaskRunner(cfg, Backends(cfg), log=lambda *_: None))
    return _STATE["runner"]


def train_task(cfg, task, lease: list | None = None, *_prerequisites) -> dict:
    """Train (or load) a teacher or an oracle ensemble; the checkpoints are the result.
    ``lease``: the task's share of every cap, granted by the driver (:class:`.leases.Leases`)."""
    runner = _worker(cfg)
    mark, t0 = len(runner.ledger), time.perf_counter()
    runner.lease.hold(lease, mark)
    try:
        runner.train(task)
    except SystemExit as exc:  # user code (a model factory) calling sys.exit: a failed task, not the driver's exit
        raise RuntimeError(f"SystemExit({exc.code!r}) raised inside the task") from None
    finally:
        runner.lease.hold(None, 0)
    return {"phases": runner.ledger.since(mark).by_phase(), "spend": spend_of(runner.ledger.since(mark)),
            "wall_s": time.perf_counter() - t0}


def cell_task(cfg, cell: Cell, lease: list | None = None, *_prerequisites) -> dict:
    """One cell; never writes the store. A bug becomes a 'failed' outcome with its traceback;
    a budget refusal a 'budget' outcome (the cell is stored failed, the study goes on); any
    other qmu-hw error (unavailable backend) becomes 'stop', which ends the study."""
    runner = _worker(cfg)
    mark, t0 = len(runner.ledger), time.perf_counter()
    runner.lease.hold(lease, mark)
    out: dict[str, Any] = {"status": "done", "metrics": None, "cost": None, "error": None}
    try:
        out["metrics"], out["cost"] = runner.run_cell(cell)
    except BudgetExceededError as exc:
        out.update(status="budget", error=f"budget: {exc}", short=f"budget: {exc}")
    except QmuHwError as exc:
        out.update(status="stop", error=f"{type(exc).__name__}: {exc}", exc_type=type(exc).__name__)
    except (Exception, SystemExit) as exc:  # SystemExit: user code calling sys.exit fails the cell
        out.update(status="failed", error=traceback.format_exc(limit=8), short=repr(exc))
    finally:
        runner.lease.hold(None, 0)
    out["phases"] = runner.ledger.since(mark).by_phase()
    out["spend"] = spend_of(runner.ledger.since(mark))
    out["wall_s"] = time.perf_counter() - t0
    return out


def population_task(cfg, task, teacher, *_prerequisites) -> dict:
    """One model of a population (:func:`.populations.run_model_task`) from its teacher's
    checkpoint; returns its per-example outputs as a plain record (the driver stores it)."""
    from .populations import run_model_task

    runner = _worker(cfg)
    return run_model_task(task, teacher_state(runner, teacher)).as_record()


# -- choosing an executor (the classes are in executor_backends) ---------------------------
def make_executor(name: str, workers: int, address: str | None = None):
    """The executor for ``--executor``/``--workers``/``--address``, not yet started; local
    with one worker is the inline executor (every task in this process, in order)."""
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
    return LocalExecutor(workers) if workers > 1 else InlineExecutor()


# -- the driver -----------------------------------------------------------------------------
def run_tasks(runner, plan: StudyPlan, executor) -> RunSummary:
    """Run ``plan`` (the unfinished part of the study) through ``executor``; the driver
    writes every cell to the store."""
    cfg = runner.cfg
    mine = [c for c in plan.cells if here(plan, c, executor)]
    theirs = [c for c in plan.cells if not here(plan, c, executor)]
    at_home = {t for t in plan.tasks if executor.inline or on_driver(t.backend)}
    res = task_resources(cfg)
    prog = _Progress(runner.progress, len(plan.cells))
    state = {"ran": 0, "failed": 0, "failures": [], "stop": None, "broken": {}, "tasks": Counter()}
    # The driver is the one accountant: each worker task holds a lease on every cap (at most
    # what is left of it, at most the task's upper bound), settled once its spending is recorded.
    leases = runner.leases = Leases(study_caps(cfg, _profiles(plan)), runner.ledger)
    bounds = _task_bounds(runner.estimate)
    executor.start()
    try:
        train = {t: executor.submit(train_task, (plan.config_of(t), t, leases.grant(t, bounds.get(_bound_key(t)))),
                                    [], res)
                 for t in plan.tasks if t not in at_home}
        task_of = {h: t for t, h in train.items()}
        cells = {executor.submit(cell_task, (plan.config_of(c), c, leases.grant(c, bounds.get(("cell", c.label)))),
                                 [train[d] for d in plan.needs[c]], res): c
                 for c in theirs}
        pops = PopulationDriver(runner, plan, state)
        popped = {} if executor.inline else {
            executor.submit(population_task, (plan.config_of(plan.population_owner[t.key]), t, pops.teacher(t)),
                            [train[d] for d in (pops.teacher(t),) if d in train], res): t for t in pops.todo}
        pending = dict.fromkeys([*train.values(), *cells, *popped])  # ordered set of handles in flight

        def drain(timeout: float) -> None:
            if not pending:
                return
            for h in executor.wait(list(pending), timeout):
                del pending[h]
                if h in popped:
                    pops.record(popped[h], h, executor)
                elif h in cells:
                    c = cells[h]
                    broken = [d.label for d in plan.needs[c] if d in state["broken"]]
                    _record_cell(runner, plan, c, h, executor, state, prog, broken)
                else:
                    _record_train(runner, task_of[h], h, executor, state)

        done_here: set = set()
        for cell in mine:  # inline, billed or journaled: here, in order, after their prerequisites
            if state["stop"] is not None:
                break
            while any(train[d] in pending for d in plan.needs[cell] if d in train):
                drain(1.0)
            for d in plan.needs[cell]:
                if d in at_home and d not in done_here:
                    done_here.add(d)
                    _train_here(runner, plan, d, state)
            prog.note(cell.label)
            broken = [(d.label, state["broken"][d]) for d in plan.needs[cell] if d in state["broken"]]
            with prog.requests_bar(runner.ledger, cell.method):
                error = runner.attempt(plan, cell, broken)
            state["tasks"]["cell"] += 1
            state["ran" if error is None else "failed"] += 1
            if error is not None:
                state["failures"].append(error)
                runner.log(f"cell failed: {error[0]}: {error[1]}")
            prog.advance()
            drain(0.0)
        if executor.inline:  # population models here, in order, after every cell
            for t in pops.todo:
                if state["stop"] is not None:
                    break
                pops.run_here(t)
        while pending and state["stop"] is None:
            drain(1.0)
    finally:
        prog.close()
        executor.close()
    if state["stop"] is not None:
        raise state["stop"]
    kinds = ("teacher", "oracle", "cell", *(("population",) if cfg.per_example is not None else ()))
    return RunSummary(0, 0, state["ran"], state["failed"], 0.0, output=cfg.output, failures=state["failures"],
                      tasks={k: state["tasks"][k] for k in kinds})


def _train_here(runner, plan: StudyPlan, task, state: dict) -> None:
    """A teacher or oracle task in the driver, on the study's own backends. A qmu-hw error
    (budget, unavailable backend) stops the study as in any sequential run; a bug marks the
    task broken, and the cells that need it are stored failed with its traceback."""
    if runner.record is not None:
        runner.record.task = task.label
    try:
        runner.work(task).train(task)
    except SystemExit as exc:  # user code (a model factory) calling sys.exit: the task fails, not the driver
        state["broken"][task] = f"SystemExit({exc.code!r}) raised inside the cell (by a model factory?)"
        runner.log(f"{task.label} failed: SystemExit({exc.code!r}) raised inside the task")
        return
    except Exception as exc:
        if isinstance(exc, QmuHwError):
            raise
        state["broken"][task] = traceback.format_exc(limit=8)
        runner.log(f"{task.label} failed: {type(exc).__name__}: {exc}")
        return
    state["tasks"][task.kind] += 1


def _task_bounds(estimate) -> dict:
    """Each task's row of the estimate (its upper bound, per phase and backend), keyed by
    ``row["task"]``."""
    if estimate is None:
        return {}
    return {row["task"]: row for row in estimate.cells if "task" in row}


def _profiles(plan: StudyPlan) -> list:
    """The profiles of every backend the plan's cells and tasks use (their ``[budget]`` caps)."""
    names = {t.backend for t in plan.tasks}
    for c in plan.cells:
        names |= {c.backend, plan.config_of(c).surrogates.get(c.backend, c.backend)}
    return [profile_of(n) for n in sorted(names)]


def _bound_key(t) -> tuple:
    """A teacher or oracle task's key among the estimate's rows."""
    return ("teacher", t.seed, t.backend, t.shots) if t.kind == "teacher" else ("oracle", t.seed, t.scenario,
                                                                                 t.backend)


def _record_train(runner, task, handle, executor, state: dict) -> None:
    """A worker's teacher or oracle task. If it raised, its cells fail with its error (Ray)
    or meet the same error themselves (local pool), and are recorded failed."""
    try:
        out = executor.result(handle)
    except Exception as exc:
        state["broken"][task] = f"{type(exc).__name__}: {exc}"
        runner.log(f"{task.label} failed: {type(exc).__name__}: {exc}")
        return
    charge_worker(runner, out, executor.name, task, task.label)
    state["tasks"][task.kind] += 1
    runner.log(f"{task.label} ready ({out['wall_s']:.1f}s)")


def _qmu_error(out: dict) -> QmuHwError:
    """The worker's qmu-hw error again, with its class (the CLI maps classes to exit codes)."""
    from ..core import exceptions

    cls = getattr(exceptions, out.get("exc_type", ""), QmuHwError)
    if not (isinstance(cls, type) and issubclass(cls, QmuHwError)):
        cls = QmuHwError
    return cls(out["error"].split(": ", 1)[-1])


def _record_cell(runner, plan: StudyPlan, cell: Cell, handle, executor, state: dict, prog, broken: list) -> None:
    store, digest, cell_id = runner.store, plan.config_of(cell).digest(), plan.ids[cell]
    try:
        out = executor.result(handle)
    except Exception as exc:  # retries exhausted, or a prerequisite raised
        why = f"{type(exc).__name__}: {exc}"
        if broken:
            why = f"prerequisite {', '.join(broken)} failed: {why}"
        out = {"status": "failed", "error": why, "short": why, "phases": {}}
    charge_worker(runner, out, executor.name, cell, cell.label)
    store.start(cell_id, digest, cell.key())
    state["tasks"]["cell"] += 1
    if out["status"] == "done":
        store.finish(cell_id, out["metrics"], out["cost"])
        state["ran"] += 1
    else:
        store.fail(cell_id, out["error"])
        state["failed"] += 1
        if out["status"] == "stop":
            state["stop"] = _qmu_error(out)
        else:
            state["failures"].append((cell.label, out.get("short", out["error"])))
            runner.log(f"cell failed: {cell.label}: {out.get('short', out['error'])}")
    prog.note(cell.label)
    prog.advance()
