"""Cost models: how many quantum rows and requests a method sends, before it runs.

Every method registers one with ``@register_method(name, cost=fn)``; the study estimate
(``qmu_hw.study.estimate``) only adds the model- and backend-dependent factors (gradient
circuits per row, shots, price), so a newly registered method is estimated without any
change outside its own module.

A cost function is ``fn(ctx: CostContext) -> MethodCost``. Counts are upper bounds: every
loop runs its full number of epochs (early stopping can only make a run cheaper).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SELECT_BATCH = 256  # predict_proba's batch: one request per 256 validation rows


@dataclass(frozen=True)
class Sizes:
    """Rows of each split of one forget scenario."""

    retain: int
    forget: int
    val: int
    test: int
    pool: int
    train: int


@dataclass(frozen=True)
class CostContext:
    """What a cost model may read.

    Attributes:
        sizes: split sizes of the scenario.
        hp: the method's hyperparameters (its defaults overridden by the study config).
        batch_size: the study's batch size (``UnlearnData.batch_size``).
        train_epochs: the study's training epochs (the oracle's budget).
        n_blocks: trainable blocks of the model, input→output (``HybridModel.blocks()``).
        quantum_block: position of the quantum layer among them.
        n_classes: classes of the dataset.
    """

    sizes: Sizes
    hp: dict
    batch_size: int
    train_epochs: int
    n_blocks: int
    quantum_block: int
    n_classes: int

    @property
    def epochs(self) -> int:
        return int(self.hp.get("epochs", 0))

    def batches(self, rows: int) -> int:
        return math.ceil(rows / self.batch_size) if rows else 0

    @property
    def retain_batches(self) -> int:
        return self.batches(self.sizes.retain)

    @property
    def forget_batches(self) -> int:
        return self.batches(self.sizes.forget)

    @property
    def forget_batch(self) -> int:
        """Rows of a cycled forget batch paired with each retain batch."""
        return min(self.batch_size, self.sizes.forget)

    def quantum_trains(self, k: int) -> bool:
        """Whether training only the last ``k`` blocks reaches the quantum layer."""
        return k >= self.n_blocks - self.quantum_block


@dataclass(frozen=True)
class MethodCost:
    """Quantum work of one method run, by ledger phase.

    ``grad_rows`` are forwarded in ``grad_requests`` requests that each need a backward
    request (gradient circuits ``unlearn/<m>/grad``, none on a backprop engine);
    ``forward_rows`` in ``forward_requests`` need none (teacher queries, frozen quantum
    layer); ``select_rows`` in ``select_requests`` are model-selection evaluations
    (``unlearn/<m>/select``); ``input_grad_rows`` also need gradients w.r.t. the inputs
    (adversarial inputs). ``extra_backward_*`` are further backward passes through rows
    already forwarded (``retain_graph``: one per class in a per-sample Fisher). ``steps``
    is the number of optimiser steps.
    """

    grad_rows: int = 0
    grad_requests: int = 0
    forward_rows: int = 0
    forward_requests: int = 0
    select_rows: int = 0
    select_requests: int = 0
    input_grad_rows: int = 0
    extra_backward_rows: int = 0
    extra_backward_requests: int = 0
    steps: int = 0
    notes: dict = field(default_factory=dict)

    def __add__(self, other: MethodCost) -> MethodCost:
        keys = ("grad_rows", "grad_requests", "forward_rows", "forward_requests", "select_rows",
                "select_requests", "input_grad_rows", "extra_backward_rows", "extra_backward_requests", "steps")
        return MethodCost(**{k: getattr(self, k) + getattr(other, k) for k in keys},
                          notes={**self.notes, **other.notes})


def selection(ctx: CostContext, epochs: int | None = None) -> MethodCost:
    """One validation pass per epoch (``train_epochs(select="val")``), in batches of 256."""
    e = ctx.epochs if epochs is None else epochs
    return MethodCost(select_rows=e * ctx.sizes.val, select_requests=e * math.ceil(ctx.sizes.val / SELECT_BATCH))


def forget_epochs(ctx: CostContext) -> MethodCost:
    """``epochs`` passes over the forget set, one step per batch (GA)."""
    n = ctx.epochs * ctx.forget_batches
    return MethodCost(grad_rows=ctx.epochs * ctx.sizes.forget, grad_requests=n, steps=n)


def retain_epochs(ctx: CostContext, epochs: int | None = None) -> MethodCost:
    """``epochs`` passes over the retain set, one step per batch (fine-tuning)."""
    e = ctx.epochs if epochs is None else epochs
    n = e * ctx.retain_batches
    return MethodCost(grad_rows=e * ctx.sizes.retain, grad_requests=n, steps=n)


def paired_epochs(ctx: CostContext) -> MethodCost:
    """``epochs`` passes over retain, each batch paired with a cycled forget batch: two
    forwards with gradient (retain rows, forget rows) per step."""
    n = ctx.epochs * ctx.retain_batches
    rows = ctx.epochs * (ctx.sizes.retain + ctx.retain_batches * ctx.forget_batch)
    return MethodCost(grad_rows=rows, grad_requests=2 * n, steps=n)


def frozen_quantum(cost: MethodCost) -> MethodCost:
    """The same loop when the quantum layer is frozen: its rows need no gradient."""
    return MethodCost(forward_rows=cost.forward_rows + cost.grad_rows,
                      forward_requests=cost.forward_requests + cost.grad_requests,
                      select_rows=cost.select_rows, select_requests=cost.select_requests,
                      steps=cost.steps, notes=cost.notes)
