"""Cost estimates before anything runs: circuits, shots, submissions, wall time and money.

Counts are upper bounds: every loop is assumed to run its full number of epochs (early
stopping can only make a run cheaper). Wall time per circuit is measured on the local
simulators with a two-point timing (overhead + per-row) and taken from the profile's
``[cost] per_second`` rate for cloud devices.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..core.backend import adapter_info, billed_seconds, price
from .config import StudyConfig
from .grid import Cell, expand, profile_of


@dataclass
class Estimate:
    cells: list[dict] = field(default_factory=list)
    totals: dict = field(default_factory=dict)

    def refusal(self, cfg: StudyConfig) -> str | None:
        """Why the budget caps refuse this study, or None."""
        t = self.totals
        if cfg.max_total_shots is not None and t["shots"] > cfg.max_total_shots:
            return (f"the study needs up to {t['shots']:,} shots but [budget] max_total_shots is "
                    f"{cfg.max_total_shots:,}; raise the cap, lower shots or epochs, or drop cells")
        if cfg.max_cost is not None and t["cost"] > cfg.max_cost:
            return (f"the study's estimated cost {t['cost']:.2f} exceeds [budget] max_cost {cfg.max_cost:.2f}")
        return None


@dataclass(frozen=True)
class Sizes:
    retain: int
    forget: int
    val: int
    test: int
    pool: int
    train: int


def _rows_model(method: str, hp: dict, s: Sizes, bs: int, epochs_train: int, quantum_in_last_k: bool):
    """``(grad_rows, nograd_rows, grad_steps, nograd_requests, input_grad_rows)``."""
    E = hp.get("epochs")
    R = math.ceil(s.retain / bs)
    fb = min(bs, s.forget)
    sel = lambda e: e * s.val  # noqa: E731  (selection: one validation pass per epoch)
    if method == "identity":
        return 0, 0, 0, 0, 0
    if method == "ga":
        return E * s.forget, sel(E), E * math.ceil(s.forget / bs), E, 0
    if method == "fisher":
        return s.retain + E * s.forget, sel(E), math.ceil(s.retain / bs) + E * math.ceil(s.forget / bs), E, 0
    if method in ("neggrad+", "random-label", "lca"):
        return E * (s.retain + R * fb), sel(E), E * R, E, 0
    if method == "salun":
        return s.forget + E * (s.retain + R * fb), sel(E), 1 + E * R, E, 0
    if method in ("finetune", "certified"):
        return E * s.retain, sel(E), E * R, E, 0
    if method in ("cf-k", "eu-k"):
        if quantum_in_last_k:
            return E * s.retain, sel(E), E * R, E, 0
        return 0, E * s.retain + sel(E), 0, E * R + E, 0  # only the classical head trains
    if method in ("scrub", "scrub+r"):
        M = min(hp.get("max_steps", 5), E)
        grad = M * s.forget + E * s.retain
        extra = (E * (s.forget + s.val)) if method == "scrub+r" else 0
        return grad, grad + extra, M * math.ceil(s.forget / bs) + E * R, M * math.ceil(s.forget / bs) + E * R, 0
    if method == "q-mul":
        return E * (s.retain + R * fb), s.retain + sel(E), 2 * E * R, 1 + E, 0
    if method == "adv-uniform":
        return E * (s.retain + R * fb), sel(E), 2 * E * R, E, E * R * fb
    if method == "ssd":
        return (s.retain + s.forget) + s.forget, 0, math.ceil((s.retain + 2 * s.forget) / bs), 0, 0
    if method == "retrain":
        e = hp.get("epochs", epochs_train)
        return e * s.retain, sel(e), e * R, e, 0
    raise KeyError(method)


def _sizes(cfg: StudyConfig) -> dict[str, Sizes]:
    from .protocol import prepare

    prep = prepare(cfg.dataset, cfg.seeds[0], data_dir=cfg.data_dir, per_class=cfg.per_class, model=cfg.model,
                   n_qubits=cfg.n_qubits, n_layers=cfg.n_layers, entangler=cfg.entangler,
                   angle_range=cfg.angle_range)
    out = {}
    for spec in cfg.scenarios:
        parts = prep.scenario_splits(prep.scenario(spec))
        out[spec] = Sizes(len(parts["retain"]), len(parts["forget"]), len(parts["val"]), len(parts["test"]),
                          len(parts["pool"]), len(prep.tensors["train"]))
    out["_model"] = prep.model_kwargs  # type: ignore[assignment]
    return out


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


def estimate_study(cfg: StudyConfig, cells: list[Cell] | None = None, measure_time: bool = True) -> Estimate:
    from ..core.ansatz import hqml
    from ..unlearning import method_defaults

    cells = cells if cells is not None else expand(cfg)
    sizes = _sizes(cfg)
    mk = sizes.pop("_model")
    n, L = mk.get("n_qubits") or 4, mk.get("n_layers")
    L = L if L is not None else (6 if mk["name"] == "hqml-iris-deep" else 2)
    circuit = hqml(n, L, cfg.entangler)
    w_slots, in_slots = len(circuit.weight_slots), len(circuit.input_slots)
    has_front = mk["name"] == "hqml-cnn"
    head_blocks = 6 if mk["name"] == "hqml-iris-deep" else 2  # trainable blocks after the quantum layer
    timing: dict = {}
    est = Estimate()
    keys = ("circuits", "shots", "submissions", "tasks", "qpu_seconds", "wall_time_s", "cost")
    totals = dict.fromkeys(keys, 0.0)
    for cell in cells:
        s = sizes[cell.scenario]
        hp = {**method_defaults(cell.method), **cfg.hyperparameters.get(cell.method, {})}
        prof = profile_of(cell.backend)
        exact_bp = cell.shots is None and adapter_info(prof).differentiable
        slots = w_slots + (in_slots if has_front else 0)
        grad_rows, nograd_rows, grad_steps, nograd_req, input_rows = _rows_model(
            cell.method, hp, s, cfg.batch_size, cfg.epochs, quantum_in_last_k=hp.get("k", 1) > head_blocks)
        per_row_grad = 2 if cfg.gradient == "spsa" else 2 * slots
        # Teacher/oracle outputs are computed once per group of methods and shared.
        eval_rows = (s.retain + s.forget + s.test + s.pool) + (s.retain + s.forget + s.test) * (
            1 + cfg.n_oracles) / len(cfg.methods)
        eval_subs = 4 + 3 * (1 + cfg.n_oracles) / len(cfg.methods)
        grad_circuits = 0 if exact_bp else grad_rows * per_row_grad + input_rows * 2 * in_slots
        work_circuits = grad_rows + nograd_rows + grad_circuits
        circuits = work_circuits + eval_rows
        grad_shots = cell.shots if cfg.grad_shots == "same" else cfg.grad_shots
        per = cell.shots or 0
        work_shots = (grad_rows + nograd_rows) * per + (0 if cell.shots is None else grad_circuits * (grad_shots or 0))
        eval_shots = eval_rows * per
        shots = work_shots + eval_shots
        work_subs = grad_steps * (1 if exact_bp else 2) + nograd_req
        submissions = work_subs + eval_subs
        # Unlearning is paid on the surrogate when one is configured, evaluation on the target.
        work_prof = profile_of(cfg.surrogates.get(cell.backend, cell.backend))
        work_tasks = _tasks(work_prof, work_circuits, work_subs, cell.shots)
        eval_tasks = _tasks(prof, eval_rows, eval_subs, cell.shots)
        tasks = work_tasks + eval_tasks
        qpu_seconds = (billed_seconds(work_prof.cost, work_shots, work_tasks)
                       + billed_seconds(prof.cost, eval_shots, eval_tasks))
        cost = price(work_prof.cost, work_shots, work_tasks) + price(prof.cost, eval_shots, eval_tasks)
        wall = 0.0
        if measure_time:
            # Unlearning runs on the surrogate when one is configured, evaluation on the target.
            work = cfg.surrogates.get(cell.backend, cell.backend)
            for name in {work, cell.backend}:
                if (name, cell.shots) not in timing:
                    timing[(name, cell.shots)] = _time_per_circuit(name, cell.shots, circuit)
            o_w, r_w = timing[(work, cell.shots)]
            o_e, r_e = timing[(cell.backend, cell.shots)]
            wall = work_subs * o_w + work_circuits * r_w + eval_subs * o_e + eval_rows * r_e
        row = {"cell": cell.label, "backend": cell.backend, "shots": cell.shots, "method": cell.method,
               "scenario": cell.scenario, "seed": cell.seed, "circuits": int(circuits), "shots_total": int(shots),
               "submissions": int(submissions), "tasks": int(tasks), "qpu_seconds": qpu_seconds,
               "wall_time_s": wall, "cost": cost}
        est.cells.append(row)
        for k, v in zip(keys, (circuits, shots, submissions, tasks, qpu_seconds, wall, cost), strict=True):
            totals[k] += v
    ints = ("circuits", "shots", "submissions", "tasks")
    est.totals = {k: (int(v) if k in ints else float(v)) for k, v in totals.items()}
    est.totals["cells"] = len(cells)
    return est
