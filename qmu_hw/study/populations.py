"""Populations of models for per-example forgetting quality: ``n_models`` retrained models
and ``n_models`` runs of one unlearning method from the same teacher, as independent tasks.

The unlearning challenge's ε (:mod:`qmu_hw.metrics.per_example`) and U-LiRA
(:mod:`qmu_hw.metrics.ulira`) compare, per forget example, the output distribution of a
method's runs with that of retraining. This module makes those distributions:

* :class:`PopulationSpec` — one (data seed, scenario, method, backend arm): where the teacher
  trained, where the method runs (the target, or its surrogate), where the retrained models
  train (the cell's same-noise reference, as the oracles), and where every model is
  evaluated (the target);
* :func:`population_tasks` — ``2 · n_models`` :class:`ModelTask` values, each one model;
* :func:`run_model_task` — a top-level, picklable task function: builds its own data and
  backends, trains (or unlearns) ONE model and returns plain data (:class:`ModelOutputs`:
  the forget set's and a calibration set's logit-scaled confidences on the true class, the
  example ids, utilities), never a model file;
* :func:`collect` — stacks the outputs into (n_models, n_examples) float64 arrays, checking
  that every model saw the same examples in the same order.

Seeds: retrained model k trains with seed ``SeedSequence([data_seed, 0, k])``, method run k
with ``SeedSequence([data_seed, 1, k])`` (distinct streams; the study's K oracles use
``seed·1000 + 17(k+1)`` and are not reused, so the population is independent of them).
A task's :attr:`ModelTask.key` is a digest of everything that determines its result, for
the driver's resume ("done" = the key is in the store).

Integration: with ``[evaluation.per_example]`` the study's plan (:mod:`.plan`,
``population_spec``) holds one spec per cell and the distinct tasks; the executors
(:mod:`.executors`' ``population_task`` and :class:`.population_driver.PopulationDriver`) run ``run_model_task``
for the keys not yet in the results store (``population_outputs``), with the cell's teacher
checkpoint as ``teacher_state``, store each output as it arrives and, once a cell's pair is
complete, :func:`collect` and :func:`population_metrics` into the ``populations`` and
``per_example`` tables. :func:`build_populations` is the same loop for use outside a study.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.exceptions import InvalidRequestError
from ..data.tensors import Split
from ..metrics.per_example import logit_confidence_from_logits
from .per_example_settings import DEFAULT_MODELS, MIN_MODELS, PerExampleSettings  # noqa: F401  (re-exported)
from .protocol import (
    Prepared,
    TrainSettings,
    new_model,
    prepare,
    train_oracle,
    train_teacher,
    unlearn_data,
)

KINDS = ("retrained", "unlearned")
CALIBRATION_PARTS = ("pool", "test")  # never trained on, never used for selection


def model_kwargs(backend, shots: int | None, gradient: str, grad_shots: Any) -> dict:
    """The study runner's rule (runner._model_kw): backprop on an exact engine, the configured
    shot-based gradient elsewhere. Repeated here so tasks do not depend on a StudyConfig."""
    if shots is None and backend.capabilities.backprop:
        return {"gradient": "backprop", "shots": None}
    return {"gradient": gradient, "shots": shots, "grad_shots": shots if grad_shots == "same" else grad_shots}


def _method_hp(method: str, hp: dict, settings: TrainSettings) -> dict:
    """``retrain`` follows the training settings unless told otherwise (runner._method_hp)."""
    base = {"epochs": settings.epochs, "patience": settings.patience, "lr": settings.lr} if method == "retrain" else {}
    return {**base, **hp}


@dataclass(frozen=True)
class PopulationSpec:
    """One population pair. ``backend``/``shots``: the target (the method runs there unless
    ``work_backend`` names a surrogate; every model is evaluated there). ``reference_backend``:
    where the retrained models train, in exact mode (None: the target's engine)."""

    dataset: str
    data_seed: int
    scenario: str
    method: str
    backend: str = "exact"
    shots: int | None = None
    reference_backend: str | None = None
    work_backend: str | None = None
    teacher_backend: str = "exact"
    teacher_shots: int | None = None
    hyperparameters: tuple = ()  # sorted (name, value) pairs: hashable and picklable
    settings: TrainSettings = field(default_factory=TrainSettings)
    gradient: str = "parameter-shift"
    grad_shots: Any = "same"
    prepare_kw: tuple = ()  # sorted (name, value) pairs for protocol.prepare

    def __post_init__(self) -> None:
        from ..data.splits import parse_scenario
        from ..unlearning import method_names

        parse_scenario(self.scenario)  # raises with the expected forms
        if self.method not in method_names():
            raise InvalidRequestError(f"unknown unlearning method {self.method!r}; expected one of {method_names()}")
        from .grid import profile_of

        for role in ("backend", "work_backend", "reference_backend", "teacher_backend"):
            name = getattr(self, role)
            if name is None:
                continue
            prof = profile_of(name)  # an unknown name fails here, naming the known ones
            if prof.is_cloud or prof.requires_confirmation:
                # 2 · n_models runs per method on a billed device: such arms need the driver's
                # journal, confirmation and budget, which a standalone worker task does not have.
                raise InvalidRequestError(
                    f"PopulationSpec.{role} = {name!r} is a billed/cloud backend; populations run as local worker "
                    "tasks only (use its local surrogate as work_backend/reference_backend and evaluate there)")
        for name in ("hyperparameters", "prepare_kw"):
            v = getattr(self, name)
            if isinstance(v, dict):
                object.__setattr__(self, name, tuple(sorted(v.items())))
            elif not isinstance(v, tuple):
                raise InvalidRequestError(f"PopulationSpec.{name}: expected a dict or (name, value) pairs, got {v!r}")

    @property
    def reference(self) -> str:
        return self.reference_backend or self.backend

    @property
    def work(self) -> str:
        return self.work_backend or self.backend

    def digest(self, kind: str = "unlearned") -> str:
        """Everything a model of ``kind`` depends on. A retrained model does not depend on the
        method, its hyperparameters, the teacher or the surrogate, so every method of one
        (seed, scenario, backend arm) shares one retrained population."""
        payload = asdict(self)
        if kind == "retrained":
            for k in ("method", "hyperparameters", "work_backend", "teacher_backend", "teacher_shots"):
                payload.pop(k)
            payload["reference_backend"] = self.reference
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=repr).encode()).hexdigest()


@dataclass(frozen=True)
class ModelTask:
    """One model of a population: ``kind`` ("retrained" or "unlearned"), index ``k``."""

    spec: PopulationSpec
    kind: str
    k: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidRequestError(f"unknown population kind {self.kind!r}; expected one of {KINDS}")
        if not isinstance(self.k, int) or self.k < 0:
            raise InvalidRequestError(f"model index k: expected a non-negative integer, got {self.k!r}")

    @property
    def seed(self) -> int:
        ss = np.random.SeedSequence([int(self.spec.data_seed), KINDS.index(self.kind), int(self.k)])
        return int(ss.generate_state(1)[0] % (2**31 - 1))

    @property
    def key(self) -> str:
        """Identity for resume and sharing: what the model depends on (PopulationSpec.digest),
        the kind and k. Retrained models of different methods have the same key."""
        return hashlib.sha256(f"{self.spec.digest(self.kind)}/{self.kind}/{self.k}".encode()).hexdigest()[:24]

    @property
    def label(self) -> str:
        s = self.spec
        return (f"{self.kind} {self.k} seed={s.data_seed} {s.scenario} {s.method if self.kind == 'unlearned' else ''}"
                f" {s.backend}@{'exact' if s.shots is None else s.shots}").replace("  ", " ")


@dataclass(frozen=True)
class ModelOutputs:
    """What one model task returns: plain arrays, no model."""

    key: str
    kind: str
    k: int
    seed: int
    forget_ids: np.ndarray  # dataset row indices, in evaluation order
    forget_phi: np.ndarray  # float64 logit-scaled confidence on the true class
    calibration_ids: np.ndarray
    calibration_phi: np.ndarray
    acc_retain: float
    acc_forget: float
    acc_test: float
    wall_s: float
    phases: dict = field(default_factory=dict)  # the task's ledger by phase (for the driver's ledger)

    def as_record(self) -> dict:
        """JSON-friendly (lists), for the results store."""
        out = asdict(self)
        for k in ("forget_ids", "forget_phi", "calibration_ids", "calibration_phi"):
            out[k] = np.asarray(out[k]).tolist()
        return out

    @classmethod
    def from_record(cls, rec: dict) -> ModelOutputs:
        rec = dict(rec)
        for k in ("forget_ids", "calibration_ids"):
            rec[k] = np.asarray(rec[k], dtype=np.int64)
        for k in ("forget_phi", "calibration_phi"):
            rec[k] = np.asarray(rec[k], dtype=np.float64)
        return cls(**rec)


def population_tasks(spec: PopulationSpec, n_models: int) -> list[ModelTask]:
    """``n_models`` retrained models and ``n_models`` method runs."""
    n = PerExampleSettings(n_models).n_models
    return [ModelTask(spec, kind, k) for kind in KINDS for k in range(n)]


def unique_tasks(specs: list[PopulationSpec], n_models: int) -> list[ModelTask]:
    """Every distinct model a set of population pairs needs: the retrained population of a
    (seed, scenario, backend arm) is shared by its methods (same key), so it is listed once.
    ``qmu-hw estimate`` can price these by kind and backend; a driver submits them."""
    out: dict[str, ModelTask] = {}
    for spec in specs:
        for t in population_tasks(spec, n_models):
            out.setdefault(t.key, t)
    return list(out.values())


# -- what runs in a worker ------------------------------------------------------------------
_CACHE: dict = {}  # per process: the last data preparation and teacher (tasks of one spec share them)


def _prepared(spec: PopulationSpec) -> Prepared:
    key = ("prep", spec.dataset, spec.data_seed, spec.prepare_kw)
    if _CACHE.get("prep_key") != key:
        _CACHE.clear()
        kw = dict(spec.prepare_kw)
        if "model_extra" in kw:  # stored as (name, tuple) pairs so that the spec stays hashable
            kw["model_extra"] = {k: list(v) for k, v in kw["model_extra"]}
        _CACHE.update(prep_key=key, prep=prepare(spec.dataset, spec.data_seed, **kw))
    return _CACHE["prep"]


def _teacher_state(spec: PopulationSpec, prep: Prepared, ledger) -> dict:
    """The teacher protocol.train_teacher trains for this data seed (deterministic), once per process."""
    from ..adapters.registry import get_backend

    key = ("teacher", spec.teacher_backend, spec.teacher_shots, spec.settings, spec.gradient, spec.grad_shots)
    if _CACHE.get("teacher_key") != key:
        be = get_backend(spec.teacher_backend, shots=spec.teacher_shots, seed=spec.data_seed, ledger=ledger)
        kw = model_kwargs(be, spec.teacher_shots, spec.gradient, spec.grad_shots)
        teacher = train_teacher(prep, be, spec.settings, **kw)
        _CACHE.update(teacher_key=key, teacher={k: v.detach().clone() for k, v in teacher.state_dict().items()})
    return _CACHE["teacher"]


@torch.no_grad()
def _phi(model, split: Split) -> np.ndarray:
    model.set_phase("eval")
    model.eval()
    logits = torch.cat([model(split.X[i:i + 256]) for i in range(0, len(split), 256)]) if len(split) else \
        torch.zeros((0, 2))
    return logit_confidence_from_logits(logits.double().numpy(), split.y.numpy())


@torch.no_grad()
def _accuracy(model, split: Split) -> float:
    if len(split) == 0:
        return float("nan")
    model.eval()
    return float((model(split.X).argmax(1) == split.y).double().mean())


def run_model_task(task: ModelTask, teacher_state: dict | None = None) -> ModelOutputs:
    """Train (retrained) or unlearn (unlearned) ONE model and measure it on the target.

    ``teacher_state``: the teacher's weights (a state dict, e.g. from the study's teacher
    checkpoint); None trains protocol's teacher for the spec here (deterministic, cached
    per process). Retrained models ignore it."""
    from ..adapters.registry import get_backend
    from ..core.ledger import ShotLedger
    from ..unlearning import unlearn

    torch.set_num_threads(1)  # one core per task, as the study's workers
    spec = task.spec
    t0 = time.perf_counter()
    ledger = ShotLedger()
    prep = _prepared(spec)
    sc = prep.scenario(spec.scenario)
    parts = prep.scenario_splits(sc)
    target = get_backend(spec.backend, shots=spec.shots, seed=task.seed, ledger=ledger)
    kw_eval = model_kwargs(target, spec.shots, spec.gradient, spec.grad_shots)
    if task.kind == "retrained":
        ref = get_backend(spec.reference, shots=None, seed=task.seed, ledger=ledger)
        trained = train_oracle(prep, sc, ref, task.seed, spec.settings,
                               **model_kwargs(ref, None, spec.gradient, spec.grad_shots))
    else:
        state = teacher_state if teacher_state is not None else _teacher_state(spec, prep, ledger)
        work = get_backend(spec.work, shots=spec.shots, seed=task.seed, ledger=ledger)
        teacher = new_model(prep, work, spec.data_seed, **model_kwargs(work, spec.shots, spec.gradient,
                                                                        spec.grad_shots))
        teacher.load_state_dict(state)
        teacher.set_phase("eval")
        data = unlearn_data(parts, prep.dataset.n_classes, sc, spec.settings.batch_size)
        trained, _ = unlearn(spec.method, teacher, data, seed=task.seed,
                             **_method_hp(spec.method, dict(spec.hyperparameters), spec.settings))
    # Evaluated on the target, as the study's cells evaluate oracles and methods.
    model = new_model(prep, target, task.seed, **kw_eval)
    model.load_state_dict(trained.state_dict())
    calib = _calibration(parts)
    return ModelOutputs(
        key=task.key, kind=task.kind, k=task.k, seed=task.seed,
        forget_ids=np.asarray(parts["forget"].index, dtype=np.int64), forget_phi=_phi(model, parts["forget"]),
        calibration_ids=np.asarray(calib.index, dtype=np.int64), calibration_phi=_phi(model, calib),
        acc_retain=_accuracy(model, parts["retain"]), acc_forget=_accuracy(model, parts["forget"]),
        acc_test=_accuracy(model, parts["test"]), wall_s=time.perf_counter() - t0, phases=ledger.by_phase(),
    )


def _calibration(parts: dict[str, Split]) -> Split:
    """Examples no model of either population trained on or selected with: φ there should be
    indistinguishable between the populations (ε ≈ 0), the evaluation's own control."""
    ps = [parts[p] for p in CALIBRATION_PARTS]
    return Split(torch.cat([p.X for p in ps]), torch.cat([p.y for p in ps]), np.concatenate([p.index for p in ps]))


# -- the driver side --------------------------------------------------------------------------
@dataclass(frozen=True)
class Populations:
    """Stacked outputs of one population pair: arrays (n_models, n_examples), float64."""

    forget_ids: np.ndarray
    calibration_ids: np.ndarray
    unlearned: np.ndarray
    retrained: np.ndarray
    calibration_unlearned: np.ndarray
    calibration_retrained: np.ndarray
    utility: dict  # ra_/ta_/fa_ unlearned/retrained per-model arrays (the challenge's final score)
    wall_s: float


def collect(outputs: list[ModelOutputs]) -> Populations:
    """Stack per-model outputs (any order) by kind and k; every model must have measured the
    same forget and calibration examples in the same order."""
    by = {kind: sorted((o for o in outputs if o.kind == kind), key=lambda o: o.k) for kind in KINDS}
    for kind in KINDS:
        if len(by[kind]) < 2:
            raise InvalidRequestError(f"a population needs at least 2 {kind} models, got {len(by[kind])}")
        ks = [o.k for o in by[kind]]
        if len(set(ks)) != len(ks):
            raise InvalidRequestError(f"{kind} model indices repeat: {ks}")
    first = by["retrained"][0]
    for o in outputs:
        if not (np.array_equal(o.forget_ids, first.forget_ids)
                and np.array_equal(o.calibration_ids, first.calibration_ids)):
            raise InvalidRequestError(f"{o.kind} model {o.k} measured other examples than retrained model "
                                      f"{first.k}: outputs of different forget sets cannot be stacked")

    def stack(kind, attr):
        return np.stack([np.asarray(getattr(o, attr), dtype=np.float64) for o in by[kind]])

    utility = {f"{a}_{kind}": np.array([getattr(o, f"acc_{n}") for o in by[kind]])
               for kind in KINDS for a, n in (("ra", "retain"), ("ta", "test"), ("fa", "forget"))}
    return Populations(first.forget_ids.copy(), first.calibration_ids.copy(), stack("unlearned", "forget_phi"),
                       stack("retrained", "forget_phi"), stack("unlearned", "calibration_phi"),
                       stack("retrained", "calibration_phi"), utility, float(sum(o.wall_s for o in outputs)))


def build_populations(spec: PopulationSpec, n_models: int, *, teacher_state: dict | None = None,
                      map_fn=map, done: dict[str, ModelOutputs] | None = None) -> tuple[Populations, dict]:
    """Run every task not in ``done`` (keyed by :attr:`ModelTask.key`) with ``map_fn`` (the
    builtin ``map``, or an executor's map over processes) and collect. Returns the
    populations and the outputs by key (``done`` plus the new ones), so a caller can persist
    them as they come and resume without training a model twice."""
    tasks = population_tasks(spec, n_models)
    have = dict(done or {})
    todo = [t for t in tasks if t.key not in have]
    for out in map_fn(run_model_task, todo, [teacher_state] * len(todo)):
        have[out.key] = out
    return collect([have[t.key] for t in tasks]), have


def population_metrics(pops: Populations, *, seed: int = 0) -> tuple[dict, np.ndarray]:
    """The results.csv columns of one (method, scenario, backend) population pair, and ε̂ per
    forget example (for per_example.csv). Columns: the challenge's ``epsilon_median``,
    ``epsilon_p90``, ``forgetting_score`` (F), ``challenge_score`` (F · RA/RA_R · TA/TA_R),
    ``epsilon_max`` (the ceiling the population size can certify); the same ε on the
    calibration examples (``epsilon_calibration_median``: neither population trained on them, so
    it should be ≈ 0 unless the populations differ everywhere, as a single teacher does);
    U-LiRA's ``ulira_*``."""
    from ..metrics.per_example import forgetting_score
    from ..metrics.ulira import ulira

    util = {k: pops.utility[k] for k in ("ra_unlearned", "ra_retrained", "ta_unlearned", "ta_retrained")}
    summary, eps = forgetting_score(pops.unlearned, pops.retrained, utility=util)
    calib, _ = forgetting_score(pops.calibration_unlearned, pops.calibration_retrained)
    row = summary.as_row()
    row["epsilon_calibration_median"] = calib.epsilon_median
    row.update(ulira(pops.unlearned, pops.retrained, seed=seed).as_row())
    row["population_wall_s"] = pops.wall_s
    return row, eps
