"""Method registry, the data a method receives, its report, and shared training loops."""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.exceptions import InvalidRequestError
from ..core.names import unknown_name_message
from ..data.tensors import Split
from ..models.hybrid import HybridModel
from ..models.training import batches, early_stopping_on, evaluate_accuracy
from .cost import CostContext, MethodCost

_METHODS: dict[str, Callable] = {}
_COSTS: dict[str, Callable[[CostContext], MethodCost]] = {}


def register_method(name: str, *, cost: Callable[[CostContext], MethodCost] | None = None):
    """``@register_method("scrub", cost=scrub_cost)``: a function ``(model, data, *, rng, **hp) -> dict``.

    The function receives a private copy of the teacher to modify in place and returns
    extra report fields (e.g. ``{"epochs": 10}``). ``cost(ctx: CostContext) -> MethodCost``
    counts the quantum rows and requests the method sends (see :mod:`.cost`); the study
    estimate and budget checks use it, so every method must register one.
    """
    if cost is None or not callable(cost):
        raise InvalidRequestError(
            f"register_method({name!r}) needs cost=FUNCTION(ctx: CostContext) -> MethodCost "
            "(qmu_hw.unlearning.cost), so studies using it can be estimated before they run"
        )

    def deco(fn):
        _METHODS[name] = fn
        _COSTS[name] = cost
        fn.method_name = name
        fn.cost_model = cost
        return fn

    return deco


def method_cost(name: str, ctx: CostContext) -> MethodCost:
    """The registered cost model of ``name`` evaluated on ``ctx``."""
    get_method(name)
    out = _COSTS[name](ctx)
    if not isinstance(out, MethodCost):
        raise InvalidRequestError(f"the cost model of method {name!r} returned {type(out).__name__}, expected MethodCost")
    return out


def method_names() -> list[str]:
    return sorted(_METHODS)


def method_defaults(name: str) -> dict[str, Any]:
    fn = get_method(name)
    return {
        k: p.default
        for k, p in inspect.signature(fn).parameters.items()
        # rng and teacher are supplied by unlearn(), not hyperparameters a config may set
        if p.kind == p.KEYWORD_ONLY and k not in ("rng", "teacher")
    }


# Hyperparameter ranges beyond "a finite number >= 0" (floats) / "an integer >= 1" (ints).
_POSITIVE = {"lr", "temperature", "clip_norm"}  # 0 would make the method a no-op or divide by 0
_UNIT = {"sparsity"}  # a fraction
_AT_LEAST_ZERO_INT = {"max_steps"}
MAX_LR = 10.0  # Adam steps above this diverge at once on these models: surely a typo
MAX_VALUE = 1e9
MAX_COUNT = 10 ** 6


def hyperparameter_problem(name: str, key: str, value: Any) -> str | None:
    """What is wrong with ``value`` for hyperparameter ``key`` of method ``name`` (None: it
    is fine). The expected type is the default's; numbers must be finite and in range, so a
    mistyped ``lr = "fast"``, ``lr = 1e300`` or ``epochs = -1`` is refused before any work."""
    valid = method_defaults(name)
    if key not in valid:
        return f"unknown hyperparameter; valid: {sorted(valid)}"
    default = valid[key]
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            return f"expected an integer, got {value!r}"
        low = 0 if key in _AT_LEAST_ZERO_INT else 1
        if not low <= value <= MAX_COUNT:
            return f"expected an integer in [{low}, {MAX_COUNT}], got {value!r}"
        return None
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return f"expected a number, got {value!r}"
        v = float(value)
        if not np.isfinite(v):
            return f"expected a finite number, got {value!r}"
        if key in _UNIT:
            return None if 0.0 <= v <= 1.0 else f"expected a fraction in [0, 1], got {value!r}"
        if key == "lr":
            return None if 0.0 < v <= MAX_LR else f"expected a positive learning rate (at most {MAX_LR:g}), got {value!r}"
        if key in _POSITIVE and v <= 0:
            return f"{key} must be > 0, got {value!r}"
        if not 0.0 <= v <= MAX_VALUE:
            return f"expected a number in [0, {MAX_VALUE:g}], got {value!r}"
        return None
    if isinstance(default, str) and not isinstance(value, str):
        return f"expected a string, got {value!r}"
    return None


def check_hyperparameters(name: str, hp: dict) -> None:
    """Refuse the first bad hyperparameter of ``name``, naming the method and the key."""
    for key, value in hp.items():
        problem = hyperparameter_problem(name, key, value)
        if problem:
            raise InvalidRequestError(f"method {name!r} hyperparameter {key!r}: {problem}")


def get_method(name: str) -> Callable:
    if name not in _METHODS:
        raise InvalidRequestError(unknown_name_message("unlearning method", name, method_names(), "one of"))
    return _METHODS[name]


@dataclass(frozen=True)
class UnlearnData:
    """What an unlearning method may read: retain, forget and validation splits (never test)."""

    retain: Split
    forget: Split
    val: Split
    n_classes: int
    forget_class: int | None = None
    batch_size: int = 32


@dataclass
class UnlearnReport:
    method: str
    steps: int
    circuits: int
    shots: int
    submissions: int
    wall_time_s: float
    details: dict = field(default_factory=dict)


def unlearn(name: str, teacher: HybridModel, data: UnlearnData, *, seed: int = 0, **hp) -> tuple[HybridModel, UnlearnReport]:
    """Run method ``name`` on a copy of ``teacher``; the teacher is never modified.

    Unknown hyperparameters are refused, naming the valid ones.
    """
    fn = get_method(name)
    valid = method_defaults(name)
    bad = set(hp) - set(valid)
    if bad:
        raise InvalidRequestError(
            f"method {name!r} has no hyperparameter(s) {sorted(bad)}; valid: {sorted(valid)}"
        )
    check_hyperparameters(name, hp)
    if len(data.forget) == 0:
        raise InvalidRequestError("the forget set is empty: nothing to unlearn")
    model = copy.deepcopy(teacher)  # QuantumLayer shares the backend (and its ledger)
    ledger = teacher.backend.ledger
    mark = len(ledger)
    model.set_phase(f"unlearn/{name}")
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    details = fn(model, data, rng=np.random.default_rng(seed), teacher=teacher, **hp) or {}
    wall = time.perf_counter() - t0
    model.set_phase("eval")
    spent = ledger.since(mark).summary()
    steps = int(details.pop("steps", 0))
    return model, UnlearnReport(name, steps, int(spent["circuits"]), int(spent["shots"]),
                                int(spent["submissions"]), wall, details)


# -- shared loops ----------------------------------------------------------------------
def cycle_batches(split: Split, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless reshuffled batches: the forget set is cycled, never truncated by ``zip``."""
    while True:
        yield from batches(len(split), batch_size, rng)


def paired_batches(data: UnlearnData, rng: np.random.Generator, forget_batch: int | None = None):
    """One epoch over the retain set, each retain batch paired with a (cycled) forget batch."""
    forget_iter = cycle_batches(data.forget, forget_batch or data.batch_size, rng)
    for r_idx in batches(len(data.retain), data.batch_size, rng):
        yield r_idx, next(forget_iter)


def run_steps(model, opt, batches_iter, loss_fn, after_backward=None) -> int:
    """One optimiser step per item of ``batches_iter``: ``loss_fn(item)``, backward, the
    optional ``after_backward()`` (gradient surgery), step. Returns the number of steps."""
    n = 0
    for item in batches_iter:
        opt.zero_grad()
        loss_fn(item).backward()
        if after_backward is not None:
            after_backward()
        opt.step()
        n += 1
    return n


def train_epochs(
    model: HybridModel,
    data: UnlearnData,
    epochs: int,
    epoch_fn: Callable[[int], int],
    *,
    select: str = "val",
    patience: int = 15,
) -> dict:
    """Run ``epoch_fn(epoch) -> steps`` for ``epochs``; with ``select="val"`` keep the
    weights of the best validation accuracy (the paper's early stopping, but on the
    validation split, ties to the later epoch); ``patience`` epochs without improvement stop."""
    if select not in ("val", "last"):
        raise InvalidRequestError(f"select must be 'val' or 'last', got {select!r}")
    best_acc, best_state, best_epoch, since, steps = -1.0, None, 0, 0, 0
    epoch = 0
    for epoch in range(1, int(epochs) + 1):
        model.train()
        steps += epoch_fn(epoch)
        if select == "last":
            continue
        acc = _val_accuracy(model, data.val)
        # Ties go to the LATER epoch: at equal utility, more unlearning steps have run.
        if acc >= best_acc:
            best_acc, best_state, best_epoch, since = acc, copy.deepcopy(model.state_dict()), epoch, 0
        else:
            since += 1
            if since >= patience and early_stopping_on():  # off in the study's dry run (a bound)
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return {"steps": steps, "epochs": epoch, "best_epoch": best_epoch if select == "val" else epoch}


def _val_accuracy(model: HybridModel, val: Split) -> float:
    phase = model.quantum.phase
    model.set_phase(f"{phase}/select")  # selection is part of the method's cost
    try:
        return evaluate_accuracy(model, val)
    finally:
        model.set_phase(phase)


def adam(model: torch.nn.Module, lr: float, params=None) -> torch.optim.Optimizer:
    params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    if not params:
        raise InvalidRequestError("no trainable parameters left for the optimiser")
    return torch.optim.Adam(params, lr=lr)


def ce(model: torch.nn.Module, split: Split, idx: np.ndarray, labels: torch.Tensor | None = None) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(split.X[idx]), split.y[idx] if labels is None else labels)


def freeze_all_but_last(model: HybridModel, k: int) -> list[torch.nn.Parameter]:
    """Freeze every block but the last ``k`` (input→output order); return the trainable ones."""
    blocks = model.blocks()
    if not 1 <= k <= len(blocks):
        raise InvalidRequestError(f"k must be in [1, {len(blocks)}] for this model, got {k}")
    trainable = []
    for i, (_, block) in enumerate(blocks):
        on = i >= len(blocks) - k
        for p in block.parameters():
            p.requires_grad_(on)
            if on:
                trainable.append(p)
    return trainable


def reset_block(block: torch.nn.Module, rng: np.random.Generator) -> None:
    """Re-initialise a block as if newly built."""
    from ..autograd.layer import QuantumLayer

    if isinstance(block, QuantumLayer):
        with torch.no_grad():
            block.weights.copy_(torch.as_tensor(rng.uniform(0, 2 * np.pi, tuple(block.weights.shape))))
        return
    for m in block.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
