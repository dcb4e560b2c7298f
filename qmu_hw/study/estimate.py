"""Cost estimates before anything runs: circuits, shots, submissions, wall time and money.

This is the ANALYTIC model (``qmu-hw estimate --fast``, the up-front check of ``qmu-hw run``
for studies without a billed profile, the basis of ``expected``); ``qmu-hw estimate`` shows
the dry run of :mod:`.dry_run`, which walks the study's own tasks and is checked against
this model task by task.

Counts are upper bounds: every loop is assumed to run its full number of epochs (early
stopping can only make a run cheaper). What a method sends comes from the cost model it
registered (:mod:`qmu_hw.unlearning.cost`); this module only turns rows and requests into
circuits, shots, tasks and money for the model and backend at hand, so it names no method
and no model. Shots are also summed per ledger phase so that ``[budget] per_phase`` caps
are checked the way the runtime budget checks them. Wall time per circuit is measured on
the local simulators with a two-point timing (overhead + per-row) and taken from the
profile's ``[cost]`` rates for cloud devices.
"""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..core.backend import adapter_info, billed_seconds, price
from ..core.ledger import _phase_matches
from ..unlearning.cost import SELECT_BATCH, CostContext, MethodCost, Sizes
from .config import StudyConfig
from .grid import Cell, expand, profile_of
from .references import (
    exact_reference,
    method_hyperparameters,
    oracle_trainings,
    same_noise_reference,
    train_target,
)

__all__ = ["Estimate", "ModelShape", "Sizes", "estimate_study"]
EVAL_BATCH = 256  # predict_proba's batch (models.training)


@dataclass
class Estimate:
    """``cells``: one row per cell (plus one per teacher/oracle group trained on the cell's
    backend when ``train_backend = "same"``); ``totals``; ``phases``: shots per ledger phase."""

    cells: list[dict] = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    phases: dict[str, int] = field(default_factory=dict)
    #: per backend profile name: {"shots", "cost", "tasks"} the study charges to it (profile caps)
    by_backend: dict[str, dict] = field(default_factory=dict)
    #: tasks the study runs: {"teacher": n, "oracle": n, "cell": n} (oracle = trained oracles)
    tasks_by_kind: dict[str, int] = field(default_factory=dict)
    #: the same totals assuming typical early stopping (see :func:`expected_epochs`)
    expected: dict = field(default_factory=dict)
    currency: str = "USD"
    #: how the bound was found: "analytic" (the methods' cost models) or "dry run" (.dry_run)
    bound_method: str = "analytic"
    #: dry run only: the analytic model's totals, tasks it undercounts (a cost-model bug) and seconds taken
    analytic: dict = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    dry_run_s: float = 0.0

    def phase_shots(self, cap_phase: str) -> int:
        """Shots the study charges to ``cap_phase`` and its sub-phases (as a budget cap counts)."""
        return int(sum(v for p, v in self.phases.items() if _phase_matches(cap_phase, p)))

    def over_caps(self, cfg: StudyConfig, spent_phases: dict | None = None) -> list[str]:
        """One sentence per ``[budget] per_phase`` cap the study would cross (``spent_phases``:
        shots earlier runs of the study already charged, per phase)."""
        out = []
        for cap_phase, cap in sorted(cfg.per_phase.items()):
            before = int(sum(v for p, v in (spent_phases or {}).items() if _phase_matches(cap_phase, p)))
            need = self.phase_shots(cap_phase)
            if before + need > cap:
                out.append(f"phase {cap_phase!r} needs up to {need:,} shots"
                           + (f" after {before:,} already spent" if before else "")
                           + f" but [budget] per_phase caps it at {cap:,}")
        return out

    def bound(self) -> dict:
        """``{"shots", "tasks", "seconds", "cost"}`` of the upper bound (``estimate --json``)."""
        return _four(self.totals)

    def as_json(self) -> dict:
        """What ``qmu-hw estimate --json`` prints and ``<output>/ledger.json`` repeats."""
        return {"bound": self.bound(), "expected": _four(self.expected or self.totals), "currency": self.currency,
                "bound_method": self.bound_method, **({"analytic_bound": _four(self.analytic)} if self.analytic else {}),
                **({"cost_model_mismatches": list(self.mismatches)} if self.mismatches else {}),
                "tasks_by_kind": dict(self.tasks_by_kind),
                "bound_by_phase": {p: {"shots": v} for p, v in self.phases.items()}}

    def refusal(self, cfg: StudyConfig, spent: dict | None = None) -> str | None:
        """Why the budget caps refuse this study, or None: the study's ``[budget]``, every
        profile's ``[budget]`` and ``per_phase``, each against the plan's upper bound plus what
        earlier runs of this study already spent (``spent``: ``{"shots", "cost", "phases",
        "by_backend": {name: {"shots", "cost"}}}``, see :mod:`.accounting`)."""
        t, spent = self.totals, spent or {}
        s0, c0 = int(spent.get("shots", 0)), float(spent.get("cost", 0.0))
        after = (lambda x: f" after {x:,} already spent by earlier runs") if s0 else (lambda x: "")
        if cfg.max_total_shots is not None and s0 + t["shots"] > cfg.max_total_shots:
            return (f"the study needs up to {t['shots']:,} shots (upper bound){after(s0)} but [budget] "
                    f"max_total_shots is {cfg.max_total_shots:,}; raise max_total_shots to at least "
                    f"{s0 + t['shots']:,}, lower shots or epochs, or drop cells")
        if cfg.max_cost is not None and c0 + t["cost"] > cfg.max_cost:
            return (f"the study's estimated cost is up to {t['cost']:.2f} {self.currency}"
                    + (f" after {c0:.2f} already spent" if c0 else "")
                    + f" but [budget] max_cost is {cfg.max_cost:.2f}; raise max_cost to at least "
                    f"{c0 + t['cost']:.2f}, lower shots or epochs, or drop cells")
        for name, need in sorted(self.by_backend.items()):
            cap = need["budget"]
            before = spent.get("by_backend", {}).get(name, {})
            b_shots, b_cost = int(before.get("shots", 0)), float(before.get("cost", 0.0))
            if cap.get("total_shots") is not None and b_shots + need["shots"] > cap["total_shots"]:
                return (f"backend {name!r} would be charged up to {int(need['shots']):,} shots (upper bound)"
                        + (f" after {b_shots:,} already spent" if b_shots else "")
                        + f" but its profile's [budget] total_shots is {cap['total_shots']:,}; lower shots, "
                        "epochs or cells on it, or use a profile with a larger budget")
            if cap.get("max_cost") is not None and b_cost + need["cost"] > cap["max_cost"]:
                return (f"backend {name!r} would cost up to {need['cost']:.2f} {self.currency}"
                        + (f" after {b_cost:.2f} already spent" if b_cost else "")
                        + f" but its profile's [budget] max_cost is {cap['max_cost']:.2f}; lower shots, "
                        "epochs or cells on it, or use a profile with a larger budget")
        caps = self.over_caps(cfg, spent.get("phases"))
        if caps:
            return "; ".join(caps) + "; raise the cap, lower shots or epochs, or drop cells"
        return None


def _four(t: dict) -> dict:
    """shots, tasks, seconds (billed device seconds, else backend time) and cost."""
    if not t:
        return {"shots": 0, "tasks": 0, "seconds": 0.0, "cost": 0.0}
    seconds = t.get("qpu_seconds") or t.get("wall_time_s") or 0.0
    return {"shots": int(t["shots"]), "tasks": int(t["tasks"]), "seconds": float(seconds), "cost": float(t["cost"])}


def expected_epochs(epochs: int, patience: int) -> int:
    """Epochs a training loop typically runs before early stopping: it stops ``patience``
    epochs after its best one, and the best one comes, typically, by mid-run. A rule of
    thumb for the ``expected`` figure only; the bound always counts every epoch."""
    return min(epochs, max(epochs // 2, 1) + patience)


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know about the study's model, read from a built model."""

    circuit: object
    n_blocks: int
    quantum_block: int
    has_front: bool  # a trainable front end feeds the quantum layer: its inputs need gradients
    n_classes: int

    @property
    def weight_slots(self) -> int:
        return len(self.circuit.weight_slots)

    @property
    def input_slots(self) -> int:
        return len(self.circuit.input_slots)


def _prepare(cfg: StudyConfig):
    from .protocol import prepare

    return prepare(cfg.dataset, cfg.seeds[0], data_dir=cfg.data_dir, per_class=cfg.per_class, model=cfg.model,
                   n_qubits=cfg.n_qubits, n_layers=cfg.n_layers, entangler=cfg.entangler,
                   angle_range=cfg.angle_range,
                   model_extra=cfg.model_extra)


def _sizes(prep, scenarios) -> dict[str, Sizes]:
    out = {}
    for spec in scenarios:
        parts = prep.scenario_splits(prep.scenario(spec))
        out[spec] = Sizes(len(parts["retain"]), len(parts["forget"]), len(parts["val"]), len(parts["test"]),
                          len(parts["pool"]), len(prep.tensors["train"]))
    return out


def _model_shape(prep) -> ModelShape:
    """Build the study's model once (exact engine, no request sent) and read its structure."""
    from ..adapters.registry import get_backend
    from .protocol import new_model

    n = prep.model_kwargs.get("n_qubits") or 1
    model = new_model(prep, get_backend("exact", max_qubits=max(int(n), 20)), 0)
    blocks = model.blocks()
    q = next(i for i, (_, b) in enumerate(blocks) if b is model.quantum)
    return ModelShape(model.quantum.circuit, len(blocks), q, model.front is not None, prep.dataset.n_classes)


def _time_per_circuit(backend: str, shots: int | None, circuit) -> tuple[float, float]:
    """(seconds per request, seconds per circuit row) measured locally; cloud: profile rate."""
    prof = profile_of(backend)
    if adapter_info(prof).remote:
        return float(prof.cost.get("task_latency_s", 5.0)), 1024 * float(prof.cost.get("seconds_per_shot", 0.0003))
    from ..adapters.registry import get_backend
    from ..core.contract import EstimateRequest

    be = get_backend(backend)
    rng = np.random.default_rng(0)

    def timed(rows):
        p = rng.uniform(-3, 3, (rows, circuit.n_params))
        be.estimate(EstimateRequest(circuit, p, shots=shots, seed=0))  # warm (transpile, caches)
        t0 = time.perf_counter()
        be.estimate(EstimateRequest(circuit, p, shots=shots, seed=1))
        return time.perf_counter() - t0

    t_small, t_big = timed(16), timed(256)
    per_row = max((t_big - t_small) / 240, 1e-7)
    return max(t_small - 16 * per_row, 0.0), per_row


def _tasks(prof, circuits: float, submissions: float, shots: int | None) -> float:
    """Provider tasks/jobs: one per request unless ``[limits] max_circuits_per_job`` splits it.

    ``max_circuits_per_job = 1`` is one task per circuit; a larger limit (a program set's
    executables) adds at most one partial task per request. Braket counts one task per
    circuit unless the profile states a program-set limit (the device's own limit is only
    known after GetDevice, and an estimate must not be too low), and always for exact
    requests (program sets need shots > 0).
    """
    return adapter_info(prof).tasks_for(circuits, submissions, shots)


@dataclass
class _Work:
    """Rows/circuits and requests by ledger phase, on one backend at one shot count."""

    circuits: dict = field(default_factory=lambda: defaultdict(float))
    requests: dict = field(default_factory=lambda: defaultdict(float))
    shots: dict = field(default_factory=lambda: defaultdict(float))

    def add(self, phase: str, circuits: float, requests: float, shots_per_circuit: int | None) -> None:
        if circuits <= 0 and requests <= 0:
            return
        self.circuits[phase] += circuits
        self.requests[phase] += requests
        self.shots[phase] += circuits * (shots_per_circuit or 0)

    def total(self, what: str) -> float:
        return float(sum(getattr(self, what).values()))


def _charge(work: _Work, phase: str, mc: MethodCost, shape: ModelShape, cfg: StudyConfig, shots: int | None,
            backprop: bool) -> None:
    """A method's (or a training loop's) rows as circuits, requests and shots per phase."""
    work.add(phase, mc.grad_rows + mc.forward_rows, mc.grad_requests + mc.forward_requests, shots)
    if not backprop:
        slots = shape.weight_slots + (shape.input_slots if shape.has_front else 0)
        per_row = 2 if cfg.gradient == "spsa" else 2 * slots
        extra_in = 0 if shape.has_front else mc.input_grad_rows * (2 if cfg.gradient == "spsa" else 2 * shape.input_slots)
        grad_circuits = (mc.grad_rows + mc.extra_backward_rows) * per_row + extra_in
        grad_shots = shots if cfg.grad_shots == "same" else cfg.grad_shots
        work.add(f"{phase}/grad", grad_circuits, mc.grad_requests + mc.extra_backward_requests,
                 None if shots is None else grad_shots)
    work.add(f"{phase}/select", mc.select_rows, mc.select_requests, shots)


def _training(rows: int, val: int, epochs: int, batch_size: int) -> MethodCost:
    """``fit``: ``epochs`` passes over ``rows`` plus one validation pass per epoch."""
    n = epochs * math.ceil(rows / batch_size)
    return MethodCost(grad_rows=epochs * rows, grad_requests=n, select_rows=epochs * val,
                      select_requests=epochs * math.ceil(val / SELECT_BATCH), steps=n)


def _progress(total: int, enabled: bool, delay: float):
    from tqdm.auto import tqdm

    # stderr, and only once the estimate has taken ``delay`` seconds: quick estimates print nothing.
    return tqdm(total=total, desc="estimating", unit="cell", file=sys.stderr, delay=delay, disable=not enabled,
                leave=False)


def estimate_study(cfg: StudyConfig, cells: list[Cell] | None = None, measure_time: bool = True, *,
                   progress: bool = True, progress_delay: float = 1.0) -> Estimate:
    """Upper-bound cost of ``cells`` (default: the whole grid), per cell, in total and per
    ledger phase, plus an ``expected`` figure (training loops at :func:`expected_epochs`).
    ``progress`` shows a bar on stderr when the estimate takes longer than
    ``progress_delay`` seconds (timing the local engines can take a while)."""
    cells = cells if cells is not None else expand(cfg)
    if cfg.axes:  # each axis combination has its own model and data: estimated apart, summed
        return _summed([estimate_study(c, [x for x in cells if dict(x.axes) == v], measure_time, progress=progress,
                                       progress_delay=progress_delay) for v, c in cfg.combinations()])
    prep = _prepare(cfg)
    sizes = _sizes(prep, cfg.scenarios)
    shape = _model_shape(prep)
    timing: dict = {}
    holdouts = _holdouts(prep, cfg.scenarios)
    holdouts[_FULL_VAL] = len(prep.tensors["val"])  # the teacher selects on the whole validation split
    est = _walk(cfg, cells, sizes, holdouts, shape, timing, cfg.epochs, measure_time, progress, progress_delay)
    typical = expected_epochs(cfg.epochs, cfg.patience)
    est.expected = _walk(cfg, cells, sizes, holdouts, shape, timing, typical, measure_time, False, progress_delay).totals
    est.currency = _currency(cfg, cells)
    return est


def _currency(cfg: StudyConfig, cells: list[Cell]) -> str:
    """The one currency of the profiles the study charges (``[cost] currency``, default USD)."""
    names = {c.backend for c in cells} | {cfg.surrogates.get(c.backend, c.backend) for c in cells}
    found = {str(profile_of(n).cost.get("currency", "USD")) for n in names if profile_of(n).cost}
    if len(found) > 1:
        from ..core.exceptions import InvalidRequestError

        raise InvalidRequestError(f"the study's backends price in different currencies {sorted(found)}; "
                                  "a study's budget and estimate need one ([cost] currency in the profiles)")
    return found.pop() if found else "USD"


_FULL_VAL = "(full val)"


def _holdouts(prep, scenarios) -> dict[str, int]:
    """Rows of each scenario's ``holdout`` split (the membership-inference non-members that
    ``evaluate`` also scores; 0 where the scenario has none)."""
    return {spec: len(prep.scenario_splits(prep.scenario(spec)).get("holdout", ())) for spec in scenarios}


def _batches(rows: int) -> int:
    """Requests ``predict_proba`` sends for ``rows`` rows (batches of 256; none when empty)."""
    return math.ceil(rows / EVAL_BATCH)


def _walk(cfg: StudyConfig, cells: list[Cell], sizes: dict, holdouts: dict, shape: ModelShape, timing: dict,
          epochs: int, measure_time: bool, progress: bool, progress_delay: float) -> Estimate:
    """One pass over the study's cells, teachers and oracles with training loops at ``epochs``."""
    from ..unlearning import method_cost, method_defaults

    circuit = shape.circuit
    est = Estimate()
    kinds = {"teacher": 0, "oracle": 0, "cell": 0}
    ref_groups: set = set()
    keys = ("circuits", "shots", "submissions", "tasks", "qpu_seconds", "wall_time_s", "cost")
    totals = dict.fromkeys(keys, 0.0)
    phases: dict[str, float] = defaultdict(float)
    trained: set = set()

    def timed(name: str, shots: int | None) -> tuple[float, float]:
        if (name, shots) not in timing:
            timing[(name, shots)] = _time_per_circuit(name, shots, circuit)
        return timing[(name, shots)]

    def backprop(prof, shots) -> bool:
        return shots is None and adapter_info(prof).differentiable

    def add_row(row: dict, *parts: tuple) -> None:
        """``parts``: (work, profile, backend name) pairs priced and timed separately."""
        vals = dict.fromkeys(keys, 0.0)
        spend = []  # per (backend, phase): what the task can charge each cap (leases.Meter.need)
        for work, prof, name, shots in parts:
            circ, subs, sh = work.total("circuits"), work.total("requests"), work.total("shots")
            tasks = _tasks(prof, circ, subs, shots)
            vals["circuits"] += circ
            vals["shots"] += sh
            vals["submissions"] += subs
            vals["tasks"] += tasks
            vals["qpu_seconds"] += billed_seconds(prof.cost, sh, tasks)
            vals["cost"] += price(prof.cost, sh, tasks)
            if measure_time:
                o, r = timed(name, shots)
                vals["wall_time_s"] += subs * o + circ * r
            for phase, v in work.shots.items():
                phases[phase] += v
                spend.append({"backend": prof.name, "phase": phase, "shots": v, "cost": 0.0})
            # money is priced per part, not per phase (no cap is on cost per phase)
            spend.append({"backend": prof.name, "phase": next(iter(work.circuits), "-"), "shots": 0,
                          "cost": price(prof.cost, sh, tasks)})
            b = est.by_backend.setdefault(prof.name, {"shots": 0, "cost": 0.0, "tasks": 0.0,
                                                      "budget": dict(prof.budget)})
            b["shots"] += int(sh)
            b["cost"] += price(prof.cost, sh, tasks)
            b["tasks"] += tasks
        row.update({"circuits": int(vals["circuits"]), "shots_total": int(vals["shots"]),
                    "submissions": int(vals["submissions"]), "tasks": int(vals["tasks"]),
                    "qpu_seconds": vals["qpu_seconds"], "wall_time_s": vals["wall_time_s"], "cost": vals["cost"],
                    "spend": spend})
        est.cells.append(row)
        for k in keys:
            totals[k] += vals[k]

    bar = _progress(len(cells), progress, progress_delay)
    try:
        for cell in cells:
            bar.set_postfix_str(cell.method[:20], refresh=False)
            s = sizes[cell.scenario]
            prof = profile_of(cell.backend)
            work_name = cfg.surrogates.get(cell.backend, cell.backend)
            work_prof = profile_of(work_name)
            # the hyperparameters the runner uses (one rule, references.method_hyperparameters)
            hp = {**method_defaults(cell.method), **method_hyperparameters(cfg, cell.method)}
            ctx = CostContext(s, hp, cfg.batch_size, epochs, shape.n_blocks, shape.quantum_block,
                              shape.n_classes)
            mc = method_cost(cell.method, ctx)
            work = _Work()
            _charge(work, f"unlearn/{cell.method}", mc, shape, cfg, cell.shots, backprop(work_prof, cell.shots))
            # Teacher and oracle outputs (exact and same-noise ensembles) are computed once per
            # group of methods per study, by whichever cell of the group gets there first, in
            # any executor (reference_outputs: a file next to the checkpoints): charged once.
            n_refs = len({exact_reference(cfg), same_noise_reference(cfg, cell.backend)})
            models = 1 + n_refs * max(cfg.n_oracles, 1)
            group = (cell.seed, cell.scenario, cell.backend, cell.shots)
            share = 0 if group in ref_groups else models
            ref_groups.add(group)
            ref_parts = (s.retain, s.forget, s.test)
            own_parts = ref_parts + (s.pool, holdouts[cell.scenario])
            evals = _Work()
            evals.add("eval", sum(own_parts) + sum(ref_parts) * share,
                      sum(map(_batches, own_parts)) + sum(map(_batches, ref_parts)) * share, cell.shots)
            row = {"cell": cell.label, "backend": cell.backend, "shots": cell.shots, "method": cell.method,
                   "scenario": cell.scenario, "seed": cell.seed, "task": ("cell", cell.label)}
            if not share:
                # Which cell of a group computes the shared outputs depends on the executor's order
                # (or on a killed worker): the other cells' leases must be able to cover them too.
                row["ref_spend"] = _ref_spend(prof, sum(ref_parts) * models,
                                              sum(map(_batches, ref_parts)) * models, cell.shots)
            # Unlearning is paid on the surrogate when one is configured, evaluation on the target.
            add_row(row, (work, work_prof, work_name, cell.shots), (evals, prof, cell.backend, cell.shots))
            kinds["cell"] += 1
            kinds["teacher"] += _add_teacher(cfg, cell.seed, *train_target(cfg, cell), s, holdouts[_FULL_VAL],
                                             shape, trained, add_row, backprop, epochs)
            bar.update(1)
        kinds["oracle"] += _add_oracles(cfg, cells, sizes, shape, add_row, backprop, epochs)
        if cfg.per_example is not None:
            add_populations(cfg, cells, sizes, shape, add_row, backprop)
    finally:
        bar.close()
    est.tasks_by_kind = kinds
    ints = ("circuits", "shots", "submissions", "tasks")
    est.totals = {k: (int(v) if k in ints else float(v)) for k, v in totals.items()}
    est.totals["cells"] = len(cells)
    est.phases = {p: int(v) for p, v in sorted(phases.items())}
    return est


def _ref_spend(prof, circuits: int, requests: int, shots: int | None) -> list[dict]:
    """The group's shared reference outputs as a ``spend`` list (see ``leases.Meter.need``)."""
    sh = circuits * (shots or 0)
    tasks = _tasks(prof, circuits, requests, shots)
    return [{"backend": prof.name, "phase": "eval", "shots": sh, "cost": price(prof.cost, sh, tasks), "tasks": tasks}]


def _add_teacher(cfg, seed: int, backend: str, shots: int | None, s: Sizes, val: int, shape: ModelShape,
                 trained: set, add_row, backprop, epochs: int) -> int:
    """A teacher trains once per (seed, train backend, shots): on the cell's backend with
    ``train_backend = "same"``, else on ``[training] train_backend`` in exact mode. Returns
    the number of teachers added (0 or 1)."""
    if (seed, backend, shots) in trained:
        return 0
    trained.add((seed, backend, shots))
    prof = profile_of(backend)
    work = _Work()
    _charge(work, "train", _training(s.train, val, epochs, cfg.batch_size), shape, cfg, shots,
            backprop(prof, shots))
    row = {"cell": f"teacher seed {seed} on {backend}@{shots or 'exact'}", "backend": backend, "shots": shots,
           "method": "(training)", "scenario": "-", "seed": seed, "task": ("teacher", seed, backend, shots)}
    add_row(row, (work, prof, backend, shots))
    return 1


def _add_oracles(cfg, cells: list[Cell], sizes: dict, shape: ModelShape, add_row, backprop, epochs: int) -> int:
    """Every oracle the study trains (references.oracle_trainings: K exact-trained and K
    same-noise ones per seed and scenario, in exact mode), one row per ensemble."""
    ensembles: dict[tuple, int] = {}
    for t in oracle_trainings(cfg, cells):
        ensembles[(t.seed, t.scenario, t.backend)] = ensembles.get((t.seed, t.scenario, t.backend), 0) + 1
    for (seed, scenario, backend), k in ensembles.items():
        prof, s = profile_of(backend), sizes[scenario]
        work = _Work()
        for _ in range(k):
            _charge(work, "oracle", _training(s.retain, s.val, epochs, cfg.batch_size), shape, cfg, None,
                    backprop(prof, None))
        row = {"cell": f"{k} oracles seed {seed} {scenario} on {backend}", "backend": backend, "shots": None,
               "method": "(training)", "scenario": scenario, "seed": seed,
               "task": ("oracle", seed, scenario, backend)}
        add_row(row, (work, prof, backend, None))
    return sum(ensembles.values())


def add_populations(cfg, cells: list[Cell], sizes: dict, shape: ModelShape, add_row, backprop) -> None:
    """``[evaluation.per_example]``: every distinct population model the cells need (the
    plan's ``population`` tasks: retrained models shared by a group's methods), one row per
    (seed, scenario, backend arm, kind, method) with ``population_models`` = its count. A
    retrained model costs an oracle training on the same-noise reference, a method run the
    method's cost on its work backend; each is then evaluated on the target (forget, retain,
    test and pool parts)."""
    from ..unlearning import method_cost, method_defaults
    from .plan import population_spec
    from .populations import population_tasks

    groups: dict[tuple, list] = {}
    seen: set = set()
    for c in cells:
        spec = population_spec(cfg, c)
        for t in population_tasks(spec, cfg.per_example.n_models):
            if t.key not in seen:
                seen.add(t.key)
                groups.setdefault((c.seed, c.scenario, c.backend, c.shots, t.kind,
                                   c.method if t.kind == "unlearned" else "-"), []).append(spec)
    for (seed, scenario, backend, shots, kind, method), specs in groups.items():
        s, n = sizes[scenario], len(specs)
        spec = specs[0]
        fit, evals = _Work(), _Work()
        if kind == "retrained":
            fit_name, fit_shots = spec.reference, None
            mc = _training(s.retain, s.val, cfg.epochs, cfg.batch_size)
            phase = "population/retrained"
        else:
            fit_name, fit_shots = spec.work, shots
            hp = {**method_defaults(method), **cfg.hyperparameters.get(method, {})}
            mc = method_cost(method, CostContext(s, hp, cfg.batch_size, cfg.epochs, shape.n_blocks,
                                                 shape.quantum_block, shape.n_classes))
            phase = f"population/{method}"
        fit_prof = profile_of(fit_name)
        for _ in range(n):
            _charge(fit, phase, mc, shape, cfg, fit_shots, backprop(fit_prof, fit_shots))
            evals.add("eval", s.retain + s.forget + s.test + s.pool, 5, shots)
        row = {"cell": f"{n} population models {kind} {method} seed {seed} {scenario} on {backend}@{shots or 'exact'}",
               "backend": backend, "shots": shots, "method": f"(population {kind})", "scenario": scenario,
               "seed": seed, "population_models": n}
        add_row(row, (fit, fit_prof, fit_name, fit_shots), (evals, profile_of(backend), backend, shots))


def _summed(parts: list[Estimate]) -> Estimate:
    """One estimate of several axis combinations (rows, totals, phases, per-backend charges,
    task counts and the expected figure added)."""
    est = Estimate()
    phases: dict[str, int] = defaultdict(int)
    for p in parts:
        est.cells += p.cells
        est.currency = p.currency
        for k, v in p.totals.items():
            est.totals[k] = est.totals.get(k, 0) + v
        for k, v in p.expected.items():
            est.expected[k] = est.expected.get(k, 0) + v
        for k, v in p.phases.items():
            phases[k] += v
        for k, v in p.tasks_by_kind.items():
            est.tasks_by_kind[k] = est.tasks_by_kind.get(k, 0) + v
        for name, need in p.by_backend.items():
            into = est.by_backend.setdefault(name, {**need, "shots": 0, "cost": 0.0, "tasks": 0})
            for k in ("shots", "cost", "tasks"):
                into[k] = into.get(k, 0) + need.get(k, 0)
    est.phases = dict(sorted(phases.items()))
    return est
