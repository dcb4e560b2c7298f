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

from ..core.exceptions import BudgetExceededError, InvalidRequestError, QmuHwError
from ..core.journal import JobJournal
from ..core.ledger import LedgerEntry
from .config import StudyConfig
from .estimate import estimate_study
from .executors import RunSummary, _Progress, make_executor, run_tasks  # noqa: F401  (re-exported)
from .grid import Cell, profile_of
from .plan import StudyPlan, method_hyperparameters, train_settings  # noqa: F401  (re-exported)
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
        self.journal = JobJournal(Path(cfg.output) / "journal.sqlite")
        self.backends = Backends(cfg, self.journal)  # one ledger and budget for the whole study
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
                self.backends.get(cell.backend, cell.shots, cell.seed)

    # -- the run ---------------------------------------------------------------------------
    def run(self, *, max_cells: int | None = None, dry_run: bool = False, workers: int = 1,
            executor: str = "local", address: str | None = None) -> RunSummary:
        """Run every unfinished cell. ``workers > 1`` or ``executor="ray"`` runs teachers,
        oracles and cells as tasks in workers (see :mod:`qmu_hw.study.executors`; billed and
        journaled backends stay in this process); a cell's result does not depend on the
        order or process it runs in: every model and request is seeded from the cell."""
        cfg = self.cfg
        if workers < 1:
            raise InvalidRequestError(f"workers must be >= 1, got {workers}")
        if max_cells is not None and (isinstance(max_cells, bool) or not isinstance(max_cells, int) or max_cells < 1):
            # todo[:-1] would silently drop the last cell; 0 would look like a finished run
            raise InvalidRequestError(f"max_cells must be an integer >= 1 or None (all), got {max_cells!r}; "
                                      "use dry_run=True to run no cells")
        pool = make_executor(executor, workers, address)  # checks the name and that Ray is installed
        t0 = time.perf_counter()
        plan = self.plan()
        cells, ids = plan.cells, plan.ids
        if cfg.max_total_shots is not None or cfg.max_cost is not None or cfg.per_phase:
            reason = estimate_study(cfg, cells, measure_time=False).refusal(cfg)
            if reason:
                raise BudgetExceededError(f"refused before training: {reason}. See `qmu-hw estimate`.")
        with self.store.lock():
            statuses = self.store.statuses()
            todo = [c for c in cells if statuses.get(ids[c]) != "done"]
            skipped = len(cells) - len(todo)
            if max_cells is not None:
                todo = todo[:max_cells]
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
                if self._created_output:
                    shutil.rmtree(cfg.output, ignore_errors=True)
                raise
            self._save_config()
            self.store.set_meta("current_cells", sorted(ids.values()))
            self._charge_previous_runs(ids)
            summary = run_tasks(self, plan.for_cells(todo, pop_cells), pool)
        summary.total_cells, summary.skipped = len(cells), skipped
        summary.wall_time_s = time.perf_counter() - t0
        summary.phases = self.ledger.by_phase()
        return summary

    def _population_cells(self, cells: list[Cell], ids: dict, statuses: dict, todo: list[Cell]) -> list[Cell]:
        """``[evaluation.per_example]``: cells (finished or about to run) whose population metrics
        are not stored yet; their models already stored are skipped by the executors' driver."""
        if self.cfg.per_example is None:
            return []
        have = set(self.store.population_metrics())
        run = set(todo)
        return [c for c in cells if ids[c] not in have and (statuses.get(ids[c]) == "done" or c in run)]

    def _save_config(self) -> None:
        if self.cfg.path and Path(self.cfg.path).is_file():
            shutil.copyfile(self.cfg.path, Path(self.cfg.output) / "config.toml")
        self.store.set_meta("config_hash", self.cfg.digest())
        if self.cfg.path:  # `qmu-hw report` resolves the copy's relative paths against this folder
            self.store.set_meta("config_dir", str(Path(self.cfg.path).resolve().parent))

    def _charge_previous_runs(self, ids: dict) -> None:
        """A resumed study's budget (shots AND cost) includes what its finished cells already
        spent on unlearning and evaluation."""
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
        if broken:
            why = f"prerequisite {', '.join(label for label, _ in broken)} failed: {broken[0][1]}"
            self.store.fail(cell_id, why)
            return cell.label, why.splitlines()[-1] if why.strip() else why
        try:
            metrics, cost = self.work(cell).run_cell(cell)
        except (BudgetExceededError, KeyboardInterrupt):
            raise  # the cell stays 'running' and is redone on the next run
        except QmuHwError as exc:
            self.store.fail(cell_id, f"{type(exc).__name__}: {exc}")
            raise
        except Exception as exc:
            self.store.fail(cell_id, traceback.format_exc(limit=8))
            return cell.label, repr(exc)
        self.store.finish(cell_id, metrics, cost)
        return None
