"""What one task of the plan does: train (or load) a teacher or an oracle ensemble, or run
one cell. The same code runs in the driver (the sequential, inline path and billed cells)
and in executor workers; only the :class:`Backends` differ (the driver's share the study's
ledger, budget and job journal; a worker's have their own ledger, sent back to the driver).
"""

from __future__ import annotations

import time
from pathlib import Path

from ..core.exceptions import CorruptCheckpointError
from ..core.ledger import Budgets, ShotBudget, ShotLedger
from ..models.training import load_checkpoint, save_checkpoint
from . import reference_outputs
from .grid import Cell, profile_of
from .leases import LeaseBudget
from .plan import OracleTask, TeacherTask, method_hyperparameters, train_settings
from .protocol import (
    Prepared,
    evaluate,
    oracle_probs,
    prepare,
    reference_probs,
    train_oracle,
    train_teacher,
    transfer,
    unlearn_data,
)
from .references import exact_reference, same_noise_reference, train_target
from .store import UnwritableOutputError


class Backends:
    """Backends by (name, shots, seed), all charging one ledger and budget.

    Hook point: every backend a task uses is created here (``get``)."""

    def __init__(self, cfg, journal=None) -> None:
        self.ledger = ShotLedger()
        self.budget = ShotBudget(total_shots=cfg.max_total_shots, per_phase=cfg.per_phase, max_cost=cfg.max_cost)
        self.lease = LeaseBudget()  # in a worker: the task's share of every cap (leases.Leases)
        self.journal = journal
        self._made: dict = {}

    def get(self, name: str, shots: int | None, seed: int):
        from ..adapters.registry import get_backend

        key = (name, shots, seed)
        if key not in self._made:
            prof = profile_of(name)
            # The study's caps, the profile's own [budget] (what this backend was charged across
            # the whole study) and, in a worker, the task's lease: each refuses before submission.
            budget = Budgets((self.budget, ShotBudget(**prof.budget, scope=prof.name), self.lease))
            be = get_backend(name, shots=shots, seed=seed, ledger=self.ledger, budget=budget)
            be.attach_journal(self.journal)  # cloud adapters journal every submission; a no-op elsewhere
            self._made[key] = be
        return self._made[key]


def prepare_data(cfg, seed: int) -> Prepared:
    """One seed's data, splits and model arguments for a combination's config."""
    return prepare(cfg.dataset, seed, data_dir=cfg.data_dir, per_class=cfg.per_class, model=cfg.model,
                   n_qubits=cfg.n_qubits, n_layers=cfg.n_layers, entangler=cfg.entangler, angle_range=cfg.angle_range,
                   model_extra=cfg.model_extra)


def model_kw(cfg, backend, shots: int | None) -> dict:
    """Backprop on the exact engine; the configured shot-based gradient elsewhere."""
    if shots is None and backend.capabilities.backprop:
        return {"gradient": "backprop", "shots": None}
    grad_shots = shots if cfg.grad_shots == "same" else cfg.grad_shots
    return {"gradient": cfg.gradient, "shots": shots, "grad_shots": grad_shots}


def prep_seed(path: Path) -> str:
    """The seed in a checkpoint's name (``teacher-seed3-...``; see ``TaskRunner._ckpt``)."""
    return path.name.split("-seed", 1)[1].split("-", 1)[0]


def _save_checkpoint(model, path: Path, extra: dict) -> None:
    """A checkpoint that cannot be written (full disk, permissions) stops the study with the
    path named, instead of failing every later cell with torch's bare writer error."""
    try:
        save_checkpoint(model, path, extra)
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "writ" not in str(exc).lower():
            raise
        for tmp in (str(path) + ".tmp", str(path) + ".json.tmp"):
            Path(tmp).unlink(missing_ok=True)
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise UnwritableOutputError(f"cannot write checkpoint {path} ({reason}); free space on the device or "
                                    "choose another --output, then rerun (finished cells are kept)") from None


class TaskRunner:
    """Runs the tasks of ONE axis combination (``cfg`` is that combination's config)."""

    def __init__(self, cfg, backends: Backends, log=print) -> None:
        self.cfg = cfg
        self.backends = backends
        self.log = log
        self.ckpt_dir = Path(cfg.output) / "checkpoints"
        self._preps: dict[int, Prepared] = {}
        self._reference: dict = {}  # teacher/oracle outputs of the current (seed, scenario, backend, shots)

    @property
    def ledger(self) -> ShotLedger:
        return self.backends.ledger

    @property
    def lease(self) -> LeaseBudget:
        return self.backends.lease

    def backend(self, name: str, shots: int | None, seed: int):
        return self.backends.get(name, shots, seed)

    def prep(self, seed: int) -> Prepared:
        if seed not in self._preps:
            self._preps = {seed: prepare_data(self.cfg, seed)}  # one seed's data at a time
        return self._preps[seed]

    # -- teachers and oracles, cached as checkpoints ------------------------------------
    def _ckpt(self, kind: str, seed: int, extra: str) -> Path:
        # The combination's digest: each axis combination trains its own models.
        return self.ckpt_dir / f"{kind}-seed{seed}-{extra}-{self.cfg.digest()[:12]}.pt"

    def _load(self, prep: Prepared, path: Path, be, shots: int | None):
        """The checkpointed model, or None when there is none or it cannot be read as plain
        weights (truncated, corrupted, foreign, a pickle payload): that one is named, set
        aside and retrained, so a rerun recovers and nothing in the folder is executed."""
        if not path.exists():
            return None
        try:
            return load_checkpoint(path, be, expect_model=prep.model_kwargs["name"],
                                   **model_kw(self.cfg, be, shots))[0]
        except CorruptCheckpointError as exc:
            self.log(f"{exc}; retraining it")
            for p in (path, Path(str(path) + ".json")):
                p.unlink(missing_ok=True)
            # reference outputs computed from the unreadable model are stale once it is retrained
            for p in self.ckpt_dir.glob(f"reference-seed{prep_seed(path)}-*"):
                p.unlink(missing_ok=True)
            return None

    def teacher(self, prep: Prepared, seed: int, backend_name: str, shots: int | None):
        be = self.backend(backend_name, shots, seed)
        path = self._ckpt("teacher", seed, f"{backend_name}@{shots}")
        model = self._load(prep, path, be, shots)
        if model is not None:
            return model
        self.log(f"training teacher (seed {seed}) on {backend_name}")
        model = train_teacher(prep, be, train_settings(self.cfg), **model_kw(self.cfg, be, shots))
        _save_checkpoint(model, path, {"seed": seed})
        return model

    def oracles(self, prep: Prepared, sc, seed: int, backend_name: str, shots: int | None):
        be = self.backend(backend_name, shots, seed)
        out = []
        for k in range(max(self.cfg.n_oracles, 1)):
            path = self._ckpt("oracle", seed, f"{sc.name.replace(':', '_')}-{k}-{backend_name}@{shots}")
            model = self._load(prep, path, be, shots)
            if model is not None:
                out.append(model)
                continue
            self.log(f"training oracle {k + 1}/{self.cfg.n_oracles} (seed {seed}, {sc.name}) on {backend_name}")
            model = train_oracle(prep, sc, be, seed * 1000 + 17 * (k + 1), train_settings(self.cfg),
                                 **model_kw(self.cfg, be, shots))
            _save_checkpoint(model, path, {"seed": seed, "scenario": sc.name})
            out.append(model)
        return out

    def train(self, task: TeacherTask | OracleTask) -> None:
        """Train (or load) the models of a teacher or oracle task; checkpoints are the result."""
        prep = self.prep(task.seed)
        if task.kind == "teacher":
            self.teacher(prep, task.seed, task.backend, task.shots)
        else:
            self.oracles(prep, prep.scenario(task.scenario), task.seed, task.backend, task.shots)

    # -- one cell ------------------------------------------------------------------------
    def run_cell(self, cell: Cell) -> tuple[dict, dict]:
        from ..unlearning import unlearn

        cfg = self.cfg
        seed = cell.seed
        prep = self.prep(seed)
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
        teacher_w = transfer(teacher, prep, work, seed, **model_kw(cfg, work, cell.shots))
        data = unlearn_data(parts, prep.dataset.n_classes, sc, cfg.batch_size)
        # IBM Batch/Session (per profile) stays open across one method's steps.
        with work.execution_context():
            model, report = unlearn(cell.method, teacher_w, data, seed=seed,
                                    **method_hyperparameters(cfg, cell.method))
        t_unlearn = time.perf_counter() - t0
        kw_eval = model_kw(cfg, target, cell.shots)
        model_e = transfer(model, prep, target, seed, **kw_eval)
        t1 = time.perf_counter()
        ref_key = (seed, cell.scenario, cell.backend, cell.shots, train_name)
        ref_from = ref_to = len(self.ledger)
        if ref_key not in self._reference:
            # Once per group per study, in whichever process gets there first (reference_outputs).
            path = reference_outputs.path_for(self.ckpt_dir, ref_key, cfg.digest())
            with reference_outputs.group_lock(path):
                got = reference_outputs.load(path)
                if got is None:
                    T, O = reference_probs(transfer(teacher, prep, target, seed, **kw_eval),
                                           [transfer(o, prep, target, seed, **kw_eval) for o in oracles], parts)
                    OX = O if oracles_exact is oracles else oracle_probs(
                        [transfer(o, prep, target, seed, **kw_eval) for o in oracles_exact], parts)
                    reference_outputs.save(path, T, O, None if OX is O else OX)
                    got = (T, O, OX)
            self._reference = {ref_key: got}
            ref_to = len(self.ledger)
        T, O, OX = self._reference[ref_key]
        metrics = evaluate(model_e, T, O, parts, sc, seed, exact_oracles=OX)
        t_eval = time.perf_counter() - t1
        # The teacher/oracle reference outputs are shared by the cells of one (seed, scenario,
        # backend) and computed by whichever cell of them runs first: they are not this cell's
        # evaluation, so its eval columns leave them out (else the columns depend on the
        # executor's order: 165 vs 507 eval circuits, sequential vs Ray). The study's ledger
        # charges them once per group (reference_outputs), whatever the executor.
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
