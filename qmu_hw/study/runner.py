"""The study runner (the driver): computes the study's plan, takes the output folder's lock,
skips finished cells, and runs the rest through an executor (:mod:`.executors`; the
sequential run is the inline executor). Teachers and oracles are trained once per (axis
combination, seed, train backend) and cached as checkpoints; every cell is written
atomically to the results store.

Hook points: the output folder's lock is taken in :meth:`StudyRunner.run`; the budget
check before training is there too; a driver-run cell is stored in :meth:`StudyRunner.attempt`.
"""

from __future__ import annotations

import shutil
import time
import traceback
from pathlib import Path

from ..core.backend import adapter_info
from ..core.exceptions import (
    BackendUnavailableError,
    BudgetExceededError,
    InvalidRequestError,
    QmuHwError,
)
from ..core.journal import JobJournal
from ..core.ledger import LedgerEntry
from .accounting import LedgerRecord, carry_earlier, write_ledger_json
from .config import StudyConfig
from .estimate import estimate_study
from .executors import RunSummary, _Progress, make_executor, run_tasks  # noqa: F401  (re-exported)
from .grid import Cell, profile_of
from .plan import StudyPlan, method_hyperparameters, train_settings  # noqa: F401  (re-exported)
from .references import train_target
from .store import ResultsStore
from .tasks import Backends, TaskRunner, _save_checkpoint, model_kw, prepare_data  # noqa: F401  (re-exported)

# Old private names, kept for code that imported them from here.
_prepare, _model_kw, _settings, _method_hp = prepare_data, model_kw, train_settings, method_hyperparameters


class StudyRunner:
    def __init__(self, cfg: StudyConfig, *, progress: bool = False, log=print) -> None:
        self.cfg = cfg
        # A run that stops before any work (no account, unknown device) leaves no folder behind.
        self._created_output = not Path(cfg.output).exists()
        self.store = ResultsStore(cfg.output)
        self.progress = progress
        self.log = log
        self.config_text: str | None = None  # set by study.run for a dict config; written under the lock
        self.journal = JobJournal(Path(cfg.output) / "journal.sqlite")
        self.backends = Backends(cfg, self.journal)  # one ledger and budget for the whole study
        # The ledger of record (results.sqlite ``ledger``); the driver is its one writer.
        self.record = LedgerRecord(self.store.path)
        self.estimate = None  # the plan's bound for the cells this run runs (ledger.json, leases)
        self.leases = None  # set by executors.run_tasks: the worker tasks' shares of the cap
        self._work: dict = {}

    @property
    def ledger(self):
        return self.backends.ledger

    @property
    def budget(self):
        return self.backends.budget

    def work(self, item) -> TaskRunner:
        """The driver's task runner of a cell's or task's axis combination."""
        key = tuple(item.axes)
        if key not in self._work:
            cfg = self.cfg.combination(dict(key)) if key else self.cfg
            self._work[key] = TaskRunner(cfg, self.backends, self.log)
        return self._work[key]

    def plan(self) -> StudyPlan:
        """Every cell and task of the study (the estimate counts the same plan)."""
        return StudyPlan.of(self.cfg)

    def _connect_cloud(self, todo: list[Cell]) -> None:
        """Open every cloud backend the cells need before any training: a missing account, an
        unknown device or a missing S3 bucket stops the run now, not after the teachers."""
        for cell in todo:
            if profile_of(cell.backend).is_cloud:
                try:
                    self.backends.get(cell.backend, cell.shots, cell.seed)
                except QmuHwError:
                    raise
                except Exception as exc:  # the SDK's own error (no network, endpoint down): one line
                    said = " ".join(str(exc).split())[:200]
                    raise BackendUnavailableError(f"cannot reach backend {cell.backend!r} ({type(exc).__name__}: "
                                                  f"{said}); check the network and the account, then rerun") from None

    # -- the run ---------------------------------------------------------------------------
    def run(self, *, max_cells: int | None = None, dry_run: bool = False, workers: int = 1,
            executor: str = "local", address: str | None = None) -> RunSummary:
        """Run every unfinished cell. ``workers > 1`` or ``executor="ray"`` runs teachers,
        oracles and cells as tasks in workers (see :mod:`qmu_hw.study.executors`; billed and
        journaled backends stay in this process); a cell's result does not depend on the
        order or process it runs in: every model and request is seeded from the cell."""
        cfg = self.cfg
        t0 = time.perf_counter()
        try:
            if workers < 1:
                raise InvalidRequestError(f"workers must be >= 1, got {workers}")
            if max_cells is not None and (isinstance(max_cells, bool) or not isinstance(max_cells, int)
                                          or max_cells < 1):
                # todo[:-1] would silently drop the last cell; 0 would look like a finished run
                raise InvalidRequestError(f"max_cells must be an integer >= 1 or None (all), got {max_cells!r}; "
                                          "use dry_run=True to run no cells")
            pool = make_executor(executor, workers, address)  # the name, Ray installed, the head reachable
            plan = self.plan()
            cells, ids = plan.cells, plan.ids
        except QmuHwError:
            self._discard_new_output()
            raise
        with self.store.lock():
            statuses = self.store.statuses()
            todo = [c for c in cells if statuses.get(ids[c]) != "done"]
            skipped = len(cells) - len(todo)
            if max_cells is not None:
                todo = todo[:max_cells]
            try:
                # what killed runs submitted is charged first, then every cap is checked
                # against the plan's bound for the cells still to run plus earlier spending
                self.record.record_killed_submissions(self.journal)
                earlier = self.record.earlier_spend()
                self._refuse_over_caps(todo, earlier)
            except QmuHwError:
                self._discard_new_output()
                raise
            pop_cells = self._population_cells(cells, ids, statuses, todo)
            if dry_run:
                for c in todo:
                    self.log(f"would run: {c.label}")
                if pop_cells:
                    self.log(f"would run the populations of {len(pop_cells)} cells")
                return RunSummary(len(cells), skipped, 0, 0, time.perf_counter() - t0, output=cfg.output)
            try:
                self._connect_cloud(todo)
            except QmuHwError:
                self._discard_new_output()
                raise
            self._save_config()
            self.store.set_meta("current_cells", sorted(ids.values()))
            self._charge_previous_runs(ids, earlier)
            run_mark = len(self.ledger)
            self.record.attach(self.ledger)
            summary = run_tasks(self, plan.for_cells(todo, pop_cells), pool)
        summary.total_cells, summary.skipped = len(cells), skipped
        summary.wall_time_s = time.perf_counter() - t0
        summary.phases = self.ledger.since(run_mark).by_phase()
        write_ledger_json(cfg.output, self.record, self.estimate)
        return summary

    def _refuse_over_caps(self, todo: list[Cell], earlier: dict) -> None:
        """Before any work: the plan's upper bound for the cells still to run, plus what earlier
        runs spent, against the study's [budget], each profile's [budget] and per_phase."""
        cfg = self.cfg
        if not todo:
            return
        names = {n for c in todo for n in (c.backend, cfg.surrogates.get(c.backend, c.backend),
                                           train_target(cfg, c)[0])}
        capped = (cfg.max_total_shots is not None or cfg.max_cost is not None or cfg.per_phase
                  or any(profile_of(n).budget for n in names))
        try:
            self.estimate = self._bound(todo)
        except (Exception, SystemExit) as exc:  # SystemExit: a user model factory calling sys.exit
            if capped:
                # a cap that cannot be checked is not a cap: refuse rather than spend blind
                raise BudgetExceededError(f"refused before training: a budget cap applies but the study's upper "
                                          f"bound cannot be computed ({type(exc).__name__}: {exc})") from None
            # only the ``bound``/``expected`` of <output>/ledger.json depend on it: go on
            self.log(f"note: no estimate for ledger.json ({type(exc).__name__}: {exc})")
            return
        if not (capped or earlier["entries"]):
            return
        reason = self.estimate.refusal(cfg, earlier)
        if reason:
            raise BudgetExceededError(f"refused before training: {reason}. See `qmu-hw estimate`.")

    def _bound(self, todo: list[Cell]):
        """The plan's upper bound for ``todo``. A study that touches a billed profile (money at
        stake, and a hardware study is small) is checked by the dry run of its request schedule
        (a few seconds for the hardware examples); any other by the analytic model (well under
        a second, where the dry run of a large simulator study trains every model and takes
        minutes: ``qmu-hw estimate`` shows the dry run). Both are upper bounds; the tests
        hold the analytic model to be at least the dry run on every task."""
        cfg = self.cfg
        billed = any(adapter_info(profile_of(n)).billed for c in todo
                     for n in (c.backend, cfg.surrogates.get(c.backend, c.backend)))
        if billed:
            from .dry_run import dry_run_estimate

            return dry_run_estimate(cfg, todo, measure_time=False, progress=False)
        return estimate_study(cfg, todo, measure_time=False, progress=False)

    def _discard_new_output(self) -> None:
        """A run refused before any work leaves no folder behind (if it created one)."""
        if self._created_output:
            shutil.rmtree(self.cfg.output, ignore_errors=True)

    def _population_cells(self, cells: list[Cell], ids: dict, statuses: dict, todo: list[Cell]) -> list[Cell]:
        """``[evaluation.per_example]``: cells (finished or about to run) whose population metrics
        are not stored yet; their models already stored are skipped by the executors' driver."""
        if self.cfg.per_example is None:
            return []
        have = set(self.store.population_metrics())
        run = set(todo)
        return [c for c in cells if ids[c] not in have and (statuses.get(ids[c]) == "done" or c in run)]

    def _save_config(self) -> None:
        """Called under the study lock, never before it (a refused run writes nothing)."""
        if self.config_text is not None:  # a dict config (study.run(dict)): its TOML text
            (Path(self.cfg.output) / "config.toml").write_text(self.config_text)
        elif self.cfg.path and Path(self.cfg.path).is_file():
            shutil.copyfile(self.cfg.path, Path(self.cfg.output) / "config.toml")
        self.store.set_meta("config_hash", self.cfg.digest())
        if self.cfg.path:  # `qmu-hw report` resolves the copy's relative paths against this folder
            self.store.set_meta("config_dir", str(Path(self.cfg.path).resolve().parent))

    def _charge_previous_runs(self, ids: dict, earlier: dict | None = None) -> None:
        """A resumed study's budget (shots AND cost) includes what its earlier runs spent: from
        the ledger of record (killed runs included); a store written before the record existed
        falls back to its finished cells' unlearning and evaluation columns."""
        earlier = earlier if earlier is not None else self.record.earlier_spend()
        if earlier["entries"]:
            carry_earlier(self.ledger, earlier)
            return
        rows = self.store.rows(set(ids.values()))
        shots = sum(int(r.get("cost_shots") or 0) + int(r.get("cost_eval_shots") or 0) for r in rows)
        cost = sum(float(r.get("cost_qpu_cost") or 0.0) + float(r.get("cost_eval_cost") or 0.0) for r in rows)
        if shots or cost:
            self.ledger.record(LedgerEntry("previous-runs", "-", "-", 0, shots, 0, 0.0, cost, False))

    def attempt(self, plan: StudyPlan, cell: Cell, broken: list | None = None) -> tuple[str, str] | None:
        """Run one cell here and store it. A bug in one cell (or in a model it needs,
        ``broken``: (label, error) pairs) is stored as failed and returned (label, error) so
        the others go on; budget refusals and qmu-hw errors (e.g. a backend that became
        unavailable) stop the study and are re-raised."""
        cell_id = plan.ids[cell]
        self.store.start(cell_id, plan.config_of(cell).digest(), cell.key())
        self.record.task = cell.label
        if broken:
            why = f"prerequisite {', '.join(label for label, _ in broken)} failed: {broken[0][1]}"
            self.store.fail(cell_id, why)
            return cell.label, why.splitlines()[-1] if why.strip() else why
        try:
            metrics, cost = self.work(cell).run_cell(cell)
        except BudgetExceededError as exc:
            # Refused before submission: the cell is stored failed (budget), the study goes on.
            self.store.fail(cell_id, f"budget: {exc}")
            return cell.label, f"budget: {exc}"
        except KeyboardInterrupt:
            raise  # the cell stays 'running' and is redone on the next run
        except QmuHwError as exc:
            self.store.fail(cell_id, f"{type(exc).__name__}: {exc}")
            raise
        except SystemExit as exc:  # user code (a model factory) calling sys.exit: a failed cell, not exit 0
            self.store.fail(cell_id, f"SystemExit({exc.code!r}) raised inside the cell")
            return cell.label, f"SystemExit({exc.code!r}) raised inside the cell (by a model factory?)"
        except Exception as exc:
            self.store.fail(cell_id, traceback.format_exc(limit=8))
            return cell.label, repr(exc)
        self.store.finish(cell_id, metrics, cost)
        return None
