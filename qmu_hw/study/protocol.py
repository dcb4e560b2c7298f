"""The corrected unlearning protocol for one (dataset, seed): teacher, oracles, methods,
metrics. ``run_protocol(...)`` runs all of it from one call and returns one row per
(scenario, method); the grid runner (``qmu_hw.study.runner``) reuses the same pieces.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.exceptions import InvalidRequestError
from ..data import load_dataset, make_scenario, make_splits
from ..data.datasets import Dataset
from ..data.splits import DataSplits, ForgetScenario
from ..data.tensors import Split, angle_half_range, select, split_tensors
from ..metrics import (
    catalog,
    class_matched,
    confidence_auc,
    population_attack,
    uqi,
)
from ..models import build_model, fit, predict_proba
from ..models.hybrid import HybridModel
from ..unlearning import PAPER_METHODS, UnlearnData, method_names, unlearn

DEFAULT_MODEL = {"iris": "hqml-iris", "digits": "hqml-cnn", "mnist": "hqml-cnn", "fashion-mnist": "hqml-cnn"}
DEFAULT_QUBITS = {"mnist": 8, "fashion-mnist": 10, "digits": 6}


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 100
    patience: int = 25
    lr: float = 1e-2
    batch_size: int = 32


@dataclass
class Prepared:
    """A dataset split and scaled for one seed."""

    dataset: Dataset
    splits: DataSplits
    tensors: dict[str, Split]
    seed: int
    model_kwargs: dict = field(default_factory=dict)

    def scenario(self, spec: str) -> ForgetScenario:
        return make_scenario(spec, self.dataset.y, self.splits.train, self.seed)

    def scenario_splits(self, sc: ForgetScenario) -> dict[str, Split]:
        """Retain/forget parts of the training split. For class forgetting the validation
        split used for selection drops the forgotten class: selecting on accuracy that
        includes it would reward NOT forgetting."""
        t = self.tensors
        val = t["val"]
        if sc.forget_class is not None:
            val = val.subset(np.flatnonzero(val.y.numpy() != sc.forget_class))
        # Non-members for membership inference: the pool and the FULL validation split (never
        # trained on; selection reads only its accuracy). The test split trains the attack.
        holdout = Split(torch.cat([t["pool"].X, t["val"].X]), torch.cat([t["pool"].y, t["val"].y]),
                        np.concatenate([t["pool"].index, t["val"].index]))
        return {"retain": select(t["train"], sc.retain), "forget": select(t["train"], sc.forget),
                "val": val, "test": t["test"], "pool": t["pool"], "holdout": holdout}


def prepare(
    dataset: str = "iris",
    seed: int = 0,
    *,
    data_dir=None,
    per_class: int | None = None,
    model: str | None = None,
    n_qubits: int | None = None,
    n_layers: int | None = None,
    entangler: str = "ring",
    angle_range: str = "half-pi",
    model_extra: dict | None = None,
) -> Prepared:
    """Data, splits and the model's build arguments. ``model_extra``: a user model's
    ``inputs``/``weights`` (``[model] circuit``); the data's feature count is added to it."""
    half_range = angle_half_range(angle_range)
    ds = load_dataset(dataset, data_dir=data_dir, per_class=per_class, seed=seed)
    splits = make_splits(ds.y, seed)
    tensors = split_tensors(ds, splits)  # raw: every model scales with its own training rows
    name = model or DEFAULT_MODEL[dataset]
    kw: dict[str, Any] = {"n_classes": ds.n_classes, "entangler": entangler, "n_layers": n_layers,
                          "input_range": half_range if ds.kind == "tabular" else None}
    if ":" in name:  # a user model: factory:pkg.mod:fn or circuit:/path/file.qasm
        kw["extra"] = {**(model_extra or {}), "n_inputs": int(np.prod(ds.X.shape[1:]))}
        kw["n_qubits"] = n_qubits
    elif name == "hqml-cnn":
        kw["image_size"] = ds.X.shape[-1]
        kw["n_qubits"] = n_qubits or DEFAULT_QUBITS.get(dataset, 8)
    else:
        kw["n_qubits"] = n_qubits
    return Prepared(ds, splits, tensors, seed, {"name": name, **kw})


def new_model(prep: Prepared, backend, seed: int, *, gradient: str = "backprop", shots: Any = "backend",
              grad_shots: Any = "backend") -> HybridModel:
    kw = dict(prep.model_kwargs)
    name = kw.pop("name")
    return build_model(name, backend, gradient=gradient, shots=shots, grad_shots=grad_shots, seed=seed, **kw)


def train_teacher(prep: Prepared, backend, settings: TrainSettings = TrainSettings(), **model_kw) -> HybridModel:
    """The teacher trains on the FULL training split; selection on validation."""
    model = new_model(prep, backend, prep.seed, **model_kw)
    t = prep.tensors
    fit(model, t["train"], t["val"], epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
        patience=settings.patience, seed=prep.seed, phase="train")
    model.set_phase("eval")
    return model


def train_oracle(prep: Prepared, sc: ForgetScenario, backend, oracle_seed: int,
                 settings: TrainSettings = TrainSettings(), **model_kw) -> HybridModel:
    """Retrained from scratch on the retain set (the reference for "forgotten")."""
    parts = prep.scenario_splits(sc)
    model = new_model(prep, backend, oracle_seed, **model_kw)
    fit(model, parts["retain"], parts["val"], epochs=settings.epochs, lr=settings.lr,
        batch_size=settings.batch_size, patience=settings.patience, seed=oracle_seed, phase="oracle")
    model.set_phase("eval")
    return model


def transfer(model: HybridModel, prep: Prepared, backend, seed: int, **model_kw) -> HybridModel:
    """The same weights on another backend (e.g. a teacher trained exactly, evaluated noisily)."""
    other = new_model(prep, backend, seed, **model_kw)
    other.load_state_dict(model.state_dict())
    other.set_phase("eval")
    return other


def _probs(model: HybridModel, split: Split) -> np.ndarray:
    model.set_phase("eval")
    return predict_proba(model, split.X).double().numpy()


REFERENCE_PARTS = ("retain", "forget", "test")


def oracle_probs(oracles: list[HybridModel], parts: dict[str, Split]) -> list[dict]:
    """Each oracle's outputs on retain/forget/test."""
    return [{n: _probs(o, parts[n]) for n in REFERENCE_PARTS} for o in oracles]


def reference_probs(teacher: HybridModel, oracles: list[HybridModel], parts: dict[str, Split]):
    """Teacher and oracle outputs on retain/forget/test: the same for every method of a
    (scenario, seed, backend, shots) group, so the runner computes them once."""
    return {n: _probs(teacher, parts[n]) for n in REFERENCE_PARTS}, oracle_probs(oracles, parts)


def evaluate(
    unlearned: HybridModel,
    teacher: HybridModel | dict,
    oracles: list,
    parts: dict[str, Split],
    sc: ForgetScenario,
    seed: int = 0,
    exact_oracles: list | None = None,
) -> dict[str, float]:
    """Every metric of one (scenario, method) cell. Rows are aligned: every model sees the
    same samples in the same order. ``teacher``/``oracles`` may be models or the output of
    :func:`reference_probs`. ``oracles`` are the same-noise references; ``exact_oracles``
    the exact-trained ones (``None``: the same ones, as on a noiseless backend)."""
    from .evaluation import ensemble_comparison

    names = ("retain", "forget", "test", "pool", "holdout")
    P = {n: _probs(unlearned, parts[n]) for n in names if n in parts}
    if isinstance(teacher, dict):
        T, O = teacher, oracles
    else:
        T, O = reference_probs(teacher, oracles, parts)
    if exact_oracles is None:
        OX = O
    elif exact_oracles and not isinstance(exact_oracles[0], dict):
        OX = oracle_probs(exact_oracles, parts)
    else:
        OX = exact_oracles
    y = {n: parts[n].y.numpy() for n in P}
    acc = lambda p, n: float((p.argmax(1) == y[n]).mean()) if len(y[n]) else float("nan")  # noqa: E731
    row: dict[str, float] = {}
    for n in ("retain", "forget", "test"):
        row[f"acc_{n}"] = acc(P[n], n)
        row[f"acc_{n}_teacher"] = acc(T[n], n)
        row[f"{n}_drop"] = row[f"acc_{n}_teacher"] - row[f"acc_{n}"]
    for reference, refs in (("same", O), ("exact", OX)):
        row.update(ensemble_comparison(P, refs, y, reference))
    for sfx in ("", "_exact"):
        for n in ("retain", "forget", "test"):
            row[f"agree_{n}{sfx}"] = 1.0 - row[f"disagree_{n}{sfx}"]
    # Utility on what should be kept: in a class scenario the overall test accuracy mixes in
    # the class that SHOULD be lost, so a perfect retrain would look a third worse.
    if sc.forget_class is not None:
        kept = y["test"] != sc.forget_class
        row["acc_test_retained"] = float((P["test"][kept].argmax(1) == y["test"][kept]).mean())
        row["acc_test_forgotten"] = float((P["test"][~kept].argmax(1) == y["test"][~kept]).mean()) \
            if (~kept).any() else float("nan")
    else:
        row["acc_test_retained"], row["acc_test_forgotten"] = row["acc_test"], float("nan")
    row["uqi"] = uqi(row["forget_drop"], row["retain_drop"], row["test_drop"])  # the paper's index
    # Membership inference: forget set vs never-trained-on non-members of the same classes,
    # at least as many as members (members are subsampled when the held-out data is smaller).
    non = "holdout" if "holdout" in P else "pool"
    mem_pos, non_pos = class_matched(y["forget"], y[non], seed)
    fp, fy = P["forget"][mem_pos], y["forget"][mem_pos]
    pool_p, pool_y = P[non][non_pos], y[non][non_pos]
    row["mia_conf_auc"] = confidence_auc(fp, pool_p)
    attack = population_attack((P["retain"], y["retain"]), (P["test"], y["test"]), (fp, fy), (pool_p, pool_y),
                               seed=seed)
    row.update({f"mia_pop_{k}": v for k, v in attack.items()})
    for m in catalog.computed():  # metrics added as a function + a catalog entry
        row[m.name] = float(m.compute(P, y))
    return row


def unlearn_data(parts: dict[str, Split], n_classes: int, sc: ForgetScenario, batch_size: int) -> UnlearnData:
    return UnlearnData(parts["retain"], parts["forget"], parts["val"], n_classes, sc.forget_class, batch_size)


def run_protocol(
    dataset: str = "iris",
    backend: str = "exact",
    seed: int = 0,
    scenarios: tuple[str, ...] = ("subset:0.02", "class:0"),
    methods: tuple[str, ...] | None = None,
    hyperparameters: dict[str, dict] | None = None,
    n_oracles: int = 2,
    settings: TrainSettings = TrainSettings(),
    gradient: str = "backprop",
    shots: Any = "backend",
    **prepare_kw,
) -> list[dict]:
    """Teacher, ``n_oracles`` oracles per scenario, every method, every metric; one row per
    (scenario, method). ``methods=None`` runs every registered method."""
    from ..adapters.registry import get_backend

    methods = tuple(methods) if methods is not None else tuple(PAPER_METHODS) + tuple(
        m for m in method_names() if m not in PAPER_METHODS
    )
    for m in methods:
        if m not in method_names():
            raise InvalidRequestError(f"unknown unlearning method {m!r}; expected one of {method_names()}")
    hyperparameters = hyperparameters or {}
    be = get_backend(backend) if isinstance(backend, str) else backend
    prep = prepare(dataset, seed, **prepare_kw)
    mk = {"gradient": gradient, "shots": shots}
    t0 = time.perf_counter()
    teacher = train_teacher(prep, be, settings, **mk)
    teacher_time = time.perf_counter() - t0
    rows = []
    for spec in scenarios:
        sc = prep.scenario(spec)
        parts = prep.scenario_splits(sc)
        oracles = [train_oracle(prep, sc, be, seed * 1000 + 17 * (k + 1), settings, **mk) for k in range(n_oracles)]
        data = unlearn_data(parts, prep.dataset.n_classes, sc, settings.batch_size)
        for m in methods:
            snapshot = {k: v.clone() for k, v in teacher.state_dict().items()}
            model, report = unlearn(m, teacher, data, seed=seed, **hyperparameters.get(m, {}))
            for k, v in teacher.state_dict().items():  # the teacher must come back untouched
                if not torch.equal(v, snapshot[k]):
                    raise RuntimeError(f"method {m!r} modified the teacher's {k}")
            row = {"dataset": dataset, "scenario": spec, "method": m, "seed": seed, "backend": be.name}
            row.update(evaluate(model, teacher, oracles, parts, sc, seed))
            row.update({"steps": report.steps, "circuits": report.circuits, "shots": report.shots,
                        "submissions": report.submissions, "wall_time_s": report.wall_time_s,
                        "teacher_wall_time_s": teacher_time})
            rows.append(row)
    _add_cost_ratios(rows)
    return rows


def _add_cost_ratios(rows: list[dict]) -> None:
    """Cost of each method relative to retraining in the same (scenario, seed, backend)."""
    ref = {(r["scenario"], r["seed"], r["backend"]): r for r in rows if r["method"] == "retrain"}
    for r in rows:
        base = ref.get((r["scenario"], r["seed"], r["backend"]))
        for k in ("circuits", "shots", "submissions", "wall_time_s"):
            denom = base[k] if base else 0
            r[f"{k}_vs_retrain"] = float(r[k] / denom) if denom else float("nan")
