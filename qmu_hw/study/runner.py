"""The grid runner: teachers and oracles once per (seed, train backend), cached as
checkpoints; then every unfinished cell, each written atomically to the results store."""

from __future__ import annotations

import contextlib
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..core.exceptions import BudgetExceededError, InvalidRequestError, QmuHwError
from ..core.ledger import Budgets, LedgerEntry, ShotBudget, ShotLedger
from ..models.training import load_checkpoint, save_checkpoint
from .accounting import LeaseBudget, LedgerRecord, carry_earlier, write_ledger_json
from .config import StudyConfig
from .estimate import estimate_study
from .grid import Cell, expand, profile_of
from .protocol import (
    Prepared,
    TrainSettings,
    evaluate,
    oracle_probs,
    prepare,
    reference_probs,
    train_oracle,
    train_teacher,
    transfer,
    unlearn_data,
)
from .references import exact_reference, method_hyperparameters, same_noise_reference, train_target
from .store import ResultsStore, UnwritableOutputError


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


def _settings(cfg: StudyConfig) -> TrainSettings:
    return TrainSettings(cfg.epochs, cfg.patience, cfg.lr, cfg.batch_size)


def _prepare(cfg: StudyConfig, seed: int) -> Prepared:
    return prepare(cfg.dataset, seed, data_dir=cfg.data_dir, per_class=cfg.per_class, model=cfg.model,
                   n_qubits=cfg.n_qubits, n_layers=cfg.n_layers, entangler=cfg.entangler, angle_range=cfg.angle_range,
                   model_extra=cfg.model_extra)


def _model_kw(cfg: StudyConfig, backend, shots: int | None) -> dict:
    """Backprop on the exact engine; the configured shot-based gradient elsewhere."""
    if shots is None and backend.capabilities.backprop:
        return {"gradient": "backprop", "shots": None}
    grad_shots = shots if cfg.grad_shots == "same" else cfg.grad_shots
    return {"gradient": cfg.gradient, "shots": shots, "grad_shots": grad_shots}


def _save_checkpoint(model, path: Path, extra: dict) -> None:
    """A checkpoint that cannot be written (full disk, permissions) stops the study with the
    path named, instead of failing every later cell with torch's bare writer error."""
    try:
        save_checkpoint(model, path, extra)
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "writ" not in str(exc).lower():
            raise
        Path(str(path) + ".tmp").unlink(missing_ok=True)
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise UnwritableOutputError(f"cannot write checkpoint {path} ({reason}); free space on the device or "
                                    "choose another --output, then rerun (finished cells are kept)") from None


def _method_hp(cfg: StudyConfig, method: str) -> dict:
    """A method's hyperparameters; ``retrain`` follows the [training] table (as the oracles
    do, and as ``qmu-hw estimate`` counts it) unless [methods.retrain] says otherwise, so
    that it is one more oracle and not a differently trained model."""
    return method_hyperparameters(cfg, method)


class StudyRunner:
    def __init__(self, cfg: StudyConfig, *, progress: bool = False, log=print, worker: bool = False) -> None:
        """``worker=True``: a task runner inside an executor's worker process; it reads and
        writes checkpoints but never opens the results store or the journal (the driver is
        their one writer)."""
        self.cfg = cfg
        # A run that stops before any work (no account, unknown device) leaves no folder behind.
        self._created_output = not Path(cfg.output).exists()
        self.store = None if worker else ResultsStore(cfg.output)
        self.ckpt_dir = Path(cfg.output) / "checkpoints"
        self.progress = progress
        self.log = log
        self.ledger = ShotLedger()
        self.budget = ShotBudget(total_shots=cfg.max_total_shots, per_phase=cfg.per_phase, max_cost=cfg.max_cost)
        self.lease = LeaseBudget()  # a worker task's share of the study's cap (accounting.Leases)
        # The ledger of record (results.sqlite ``ledger``); the driver is its one writer.
        self.record = None if worker else LedgerRecord(self.store.path)
        self.estimate = None
        self._backends: dict = {}
        self._reference: dict = {}  # teacher/oracle outputs of the current (seed, scenario, backend, shots)
        from ..core.journal import JobJournal

        self.journal = None if worker else JobJournal(Path(cfg.output) / "journal.sqlite")

    # -- backends share the study's ledger and budget ------------------------------------
    def backend(self, name: str, shots: int | None, seed: int):
        from ..adapters.registry import get_backend

        key = (name, shots, seed)
        if key not in self._backends:
            prof = profile_of(name)
            # The study's caps, the profile's own [budget] (what this backend was charged across
            # the whole study) and, in a worker, the task's lease: each refuses before submission.
            budget = Budgets((self.budget, ShotBudget(**prof.budget, scope=prof.name), self.lease))
            be = get_backend(name, shots=shots, seed=seed, ledger=self.ledger, budget=budget)
            be.attach_journal(self.journal)  # cloud adapters journal every submission; a no-op elsewhere
            self._backends[key] = be
        return self._backends[key]

    def _connect_cloud(self, todo: list[Cell]) -> None:
        """Open every cloud backend the cells need before any training: a missing account, an
        unknown device or a missing S3 bucket stops the run now, not after the teachers."""
        for cell in todo:
            if profile_of(cell.backend).is_cloud:
                self.backend(cell.backend, cell.shots, cell.seed)

    # -- teachers and oracles, cached ------------------------------------------------------
    def _ckpt(self, kind: str, seed: int, extra: str) -> Path:
        return self.ckpt_dir / f"{kind}-seed{seed}-{extra}-{self.cfg.digest()[:12]}.pt"

    def teacher(self, prep: Prepared, seed: int, backend_name: str, shots: int | None):
        be = self.backend(backend_name, shots, seed)
        path = self._ckpt("teacher", seed, f"{backend_name}@{shots}")
        if path.exists():
            return load_checkpoint(path, be, **_model_kw(self.cfg, be, shots))[0]
        self.log(f"training teacher (seed {seed}) on {backend_name}")
        model = train_teacher(prep, be, _settings(self.cfg), **_model_kw(self.cfg, be, shots))
        _save_checkpoint(model, path, {"seed": seed})
        return model

    def oracles(self, prep: Prepared, sc, seed: int, backend_name: str, shots: int | None):
        be = self.backend(backend_name, shots, seed)
        out = []
        for k in range(max(self.cfg.n_oracles, 1)):
            path = self._ckpt("oracle", seed, f"{sc.name.replace(':', '_')}-{k}-{backend_name}@{shots}")
            if path.exists():
                out.append(load_checkpoint(path, be, **_model_kw(self.cfg, be, shots))[0])
                continue
            self.log(f"training oracle {k + 1}/{self.cfg.n_oracles} (seed {seed}, {sc.name}) on {backend_name}")
            model = train_oracle(prep, sc, be, seed * 1000 + 17 * (k + 1), _settings(self.cfg),
                                 **_model_kw(self.cfg, be, shots))
            _save_checkpoint(model, path, {"seed": seed, "scenario": sc.name})
            out.append(model)
        return out

    # -- the run ---------------------------------------------------------------------------
    def run(self, *, max_cells: int | None = None, dry_run: bool = False, workers: int = 1,
            executor: str = "local", address: str | None = None) -> RunSummary:
        """Run every unfinished cell. ``workers > 1`` or ``executor="ray"`` runs teachers,
        oracles and cells as tasks (see :mod:`qmu_hw.study.executors`; billed and journaled
        backends stay in this process); a cell's result does not depend on the order or
        process it runs in: every model and request is seeded from the cell."""
        from .executors import make_executor

        cfg = self.cfg
        if workers < 1:
            raise InvalidRequestError(f"workers must be >= 1, got {workers}")
        if max_cells is not None and (isinstance(max_cells, bool) or not isinstance(max_cells, int) or max_cells < 1):
            # todo[:-1] would silently drop the last cell; 0 would look like a finished run
            raise InvalidRequestError(f"max_cells must be an integer >= 1 or None (all), got {max_cells!r}; "
                                      "use dry_run=True to run no cells")
        pool = make_executor(executor, workers, address)  # checks the name and that Ray is installed
        t0 = time.perf_counter()
        cells = expand(cfg)
        ids = {c: c.cell_id(cfg) for c in cells}
        with self.store.lock():
            statuses = self.store.statuses()
            todo = [c for c in cells if statuses.get(ids[c]) != "done"]
            skipped = len(cells) - len(todo)
            if max_cells is not None:
                todo = todo[:max_cells]
            self.record.record_killed_submissions(self.journal)
            earlier = self.record.earlier_spend()
            self._refuse_over_caps(todo, earlier)
            if dry_run:
                for c in todo:
                    self.log(f"would run: {c.label}")
                return RunSummary(len(cells), skipped, 0, 0, time.perf_counter() - t0, output=cfg.output)
            try:
                self._connect_cloud(todo)
            except QmuHwError:
                if self._created_output:
                    shutil.rmtree(cfg.output, ignore_errors=True)
                raise
            self._save_config()
            self.store.set_meta("current_cells", sorted(ids.values()))
            self._charge_previous_runs(ids, earlier)
            self._run_mark = len(self.ledger)
            self.record.attach(self.ledger)
            if pool is not None and todo:
                from .executors import run_tasks

                summary = run_tasks(self, todo, ids, pool)
            else:
                summary = self._run_cells(todo, ids)
        summary.total_cells, summary.skipped = len(cells), skipped
        summary.wall_time_s = time.perf_counter() - t0
        summary.phases = self.ledger.since(self._run_mark).by_phase()
        write_ledger_json(cfg.output, self.record, self.estimate)
        return summary

    def _refuse_over_caps(self, todo: list[Cell], earlier: dict) -> None:
        """Before any work: the plan's upper bound for the cells still to run, plus what earlier
        runs spent, against the study's [budget], each profile's [budget] and per_phase."""
        cfg = self.cfg
        names = {n for c in todo for n in (c.backend, cfg.surrogates.get(c.backend, c.backend),
                                           train_target(cfg, c)[0])}
        capped = (cfg.max_total_shots is not None or cfg.max_cost is not None or cfg.per_phase
                  or any(profile_of(n).budget for n in names))
        if not todo:
            return
        # Also the ``bound``/``expected`` of <output>/ledger.json (for the cells this run runs).
        if not (capped or earlier["entries"]):
            try:
                self.estimate = estimate_study(cfg, todo, measure_time=False, progress=False)
            except Exception as exc:  # no cap depends on it: the run goes on, ledger.json says so
                self.log(f"note: no estimate for ledger.json ({type(exc).__name__}: {exc})")
            return
        self.estimate = estimate_study(cfg, todo, measure_time=False, progress=False)
        reason = self.estimate.refusal(cfg, earlier)
        if reason:
            raise BudgetExceededError(f"refused before training: {reason}. See `qmu-hw estimate`.")

    def _save_config(self) -> None:
        if self.cfg.path and Path(self.cfg.path).is_file():
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

    def _run_cells(self, todo: list[Cell], ids: dict) -> RunSummary:
        cfg = self.cfg
        prog = _Progress(self.progress, len(todo))
        ran = failed = 0
        failures = []
        preps: dict[int, Prepared] = {}
        try:
            for cell in todo:
                prog.note(cell.label)
                if cell.seed not in preps:
                    preps = {cell.seed: _prepare(cfg, cell.seed)}  # one seed's data at a time
                prep = preps[cell.seed]
                with prog.requests_bar(self.ledger, cell.method):
                    error = self.attempt(prep, cell, ids[cell])
                if error is None:
                    ran += 1
                else:
                    failed += 1
                    failures.append(error)
                    self.log(f"cell failed: {error[0]}: {error[1]}")
                prog.advance()
        finally:
            prog.close()
        return RunSummary(0, 0, ran, failed, 0.0, output=cfg.output, failures=failures)

    def attempt(self, prep: Prepared, cell: Cell, cell_id: str) -> tuple[str, str] | None:
        """Run one cell and store it. A bug in one cell is stored as failed and returned
        (label, error) so the others go on; budget refusals and qmu-hw errors (e.g. a backend
        that became unavailable) stop the study and are re-raised."""
        self.store.start(cell_id, self.cfg.digest(), cell.key())
        if self.record is not None:
            self.record.task = cell.label
        try:
            metrics, cost = self.run_cell(prep, cell)
        except BudgetExceededError as exc:
            # Refused before submission: the cell is stored failed (budget), the study goes on.
            self.store.fail(cell_id, f"budget: {exc}")
            return cell.label, f"budget: {exc}"
        except KeyboardInterrupt:
            raise  # the cell stays 'running' and is redone on the next run
        except QmuHwError as exc:
            self.store.fail(cell_id, f"{type(exc).__name__}: {exc}")
            raise
        except Exception as exc:
            self.store.fail(cell_id, traceback.format_exc(limit=8))
            return cell.label, repr(exc)
        self.store.finish(cell_id, metrics, cost)
        return None

    def run_cell(self, prep: Prepared, cell: Cell) -> tuple[dict, dict]:
        from ..unlearning import unlearn

        cfg = self.cfg
        seed = cell.seed
        train_name, train_shots = train_target(cfg, cell)
        teacher = self.teacher(prep, seed, train_name, train_shots)
        sc = prep.scenario(cell.scenario)
        # Two reference ensembles: retrained exactly, and retrained under this noise level.
        exact_name, same_name = exact_reference(cfg), same_noise_reference(cfg, cell.backend)
        oracles_exact = self.oracles(prep, sc, seed, exact_name, None)
        oracles = oracles_exact if same_name == exact_name else self.oracles(prep, sc, seed, same_name, None)
        target = self.backend(cell.backend, cell.shots, seed)
        work_name = cfg.surrogates.get(cell.backend, cell.backend)
        work = self.backend(work_name, cell.shots, seed)
        parts = prep.scenario_splits(sc)
        mark = len(self.ledger)
        t0 = time.perf_counter()
        teacher_w = transfer(teacher, prep, work, seed, **_model_kw(cfg, work, cell.shots))
        data = unlearn_data(parts, prep.dataset.n_classes, sc, cfg.batch_size)
        # IBM Batch/Session (per profile) stays open across one method's steps.
        with work.execution_context():
            model, report = unlearn(cell.method, teacher_w, data, seed=seed,
                                    **_method_hp(cfg, cell.method))
        t_unlearn = time.perf_counter() - t0
        kw_eval = _model_kw(cfg, target, cell.shots)
        model_e = transfer(model, prep, target, seed, **kw_eval)
        t1 = time.perf_counter()
        ref_key = (seed, cell.scenario, cell.backend, cell.shots, train_name)
        ref_from = ref_to = len(self.ledger)
        if ref_key not in self._reference:
            T, O = reference_probs(transfer(teacher, prep, target, seed, **kw_eval),
                                   [transfer(o, prep, target, seed, **kw_eval) for o in oracles], parts)
            OX = O if oracles_exact is oracles else oracle_probs(
                [transfer(o, prep, target, seed, **kw_eval) for o in oracles_exact], parts)
            self._reference = {ref_key: (T, O, OX)}
            ref_to = len(self.ledger)
        T, O, OX = self._reference[ref_key]
        metrics = evaluate(model_e, T, O, parts, sc, seed, exact_oracles=OX)
        t_eval = time.perf_counter() - t1
        # The teacher/oracle reference outputs are shared by the cells of one (seed, scenario,
        # backend) and computed by whichever cell of them runs first in a process: they are
        # not this cell's evaluation, so its eval columns leave them out (else the columns
        # depend on the executor's order: 165 vs 507 eval circuits, sequential vs Ray).
        entries = self.ledger.entries
        spent = ShotLedger()
        spent._entries = entries[mark:ref_from] + entries[ref_to:]
        unl = spent.summary("unlearn")
        ev = spent.summary("eval")
        cost = {
            "circuits": unl["circuits"], "shots": unl["shots"], "submissions": unl["submissions"],
            "qpu_cost": unl["cost"], "unlearn_wall_s": t_unlearn, "eval_wall_s": t_eval,
            "eval_circuits": ev["circuits"], "eval_shots": ev["shots"], "eval_cost": ev["cost"],
            "steps": report.steps,
            "surrogate": work_name if work_name != cell.backend else None,
            "reference_same": same_name, "reference_exact": exact_name,
        }
        metrics.update({f"detail_{k}": v for k, v in report.details.items() if isinstance(v, (int, float))})
        return metrics, cost

