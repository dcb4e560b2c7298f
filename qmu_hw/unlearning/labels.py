"""Label-based methods: Q-MUL, label-complement augmentation (LCA) and SalUn."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core.exceptions import InvalidRequestError
from ..models.training import predict_proba
from .base import adam, ce, paired_batches, register_method, run_steps, train_epochs
from .cost import SELECT_BATCH, CostContext, MethodCost, paired_epochs, selection
from .gradient import random_label_loss


def forget_targets(teacher, forget, n_classes: int) -> torch.Tensor:
    """For every forget sample, the class the TEACHER's logits on that sample rank highest
    after its own label (its most similar other class), shape ``(N,)``.

    Fix: the previous class-mean map was built from retain rows only; in a class scenario
    the forgotten class has no retain rows, its mean was zero and the map fell to the lowest
    other index (class:1 → 0 always).
    """
    if len(forget) == 0:
        return torch.zeros(0, dtype=torch.long)
    probs = predict_proba(teacher, forget.X)  # softmax is monotone: same ranking as the logits
    if probs.shape[1] != n_classes:
        raise InvalidRequestError(f"q-mul: the teacher has {probs.shape[1]} outputs, the data {n_classes} classes")
    own = torch.nn.functional.one_hot(forget.y, n_classes).bool()
    return probs.masked_fill(own, -1.0).argmax(dim=1)


def _qmul_cost(ctx: CostContext) -> MethodCost:
    """The teacher's pass over the forget set, then paired steps (retain and forget each
    forwarded and differentiated separately) and selection."""
    teacher = MethodCost(forward_rows=ctx.sizes.forget, forward_requests=math.ceil(ctx.sizes.forget / SELECT_BATCH))
    return teacher + paired_epochs(ctx) + selection(ctx)


def _lca_cost(ctx: CostContext) -> MethodCost:
    """Paired steps whose forget batches come from the (C−1)·|forget| complement pairs."""
    n = ctx.epochs * ctx.retain_batches
    comp_batch = min(ctx.batch_size, ctx.sizes.forget * (ctx.n_classes - 1))
    rows = ctx.epochs * (ctx.sizes.retain + ctx.retain_batches * comp_batch)
    return MethodCost(grad_rows=rows, grad_requests=2 * n, steps=n) + selection(ctx)


def _salun_cost(ctx: CostContext) -> MethodCost:
    """One saliency pass (forward+backward) over the forget set, then random-label steps."""
    mask = MethodCost(grad_rows=ctx.sizes.forget, grad_requests=1)
    return mask + paired_epochs(ctx) + selection(ctx)


def _flat_grad(model) -> list[torch.Tensor]:
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


@register_method("q-mul", cost=_qmul_cost)
def q_mul(model, data, *, rng, teacher, epochs: int = 20, lr: float = 1e-2, alpha: float = 1.0,
          patience: int = 15):
    """Q-MUL: relabel each forget sample with its most similar other class according to the
    teacher's logits on that sample, and train ``CE(retain) + w·CE(forget → that class)``
    with ``w = α‖∇L_r‖/‖∇L_f‖``.

    Fixes: the paper's code SUBTRACTED the similar-class loss, pushing forget samples AWAY
    from the most similar class (the method pulls them TOWARD it); and its class-mean map
    from retain rows sent a forgotten class with no retain rows to class 0.
    """
    phase = teacher.quantum.phase
    teacher.set_phase(model.quantum.phase)  # the teacher's pass is part of the method's cost
    try:
        targets = forget_targets(teacher, data.forget, data.n_classes)
    finally:
        teacher.set_phase(phase)
    opt = adam(model, lr)

    def epoch(_):
        n = 0
        for r, f in paired_batches(data, rng):
            opt.zero_grad()
            ce(model, data.retain, r).backward()
            g_r = _flat_grad(model)
            opt.zero_grad()
            ce(model, data.forget, f, targets[f]).backward()
            g_f = _flat_grad(model)
            nr = torch.sqrt(sum((g**2).sum() for g in g_r))
            nf = torch.sqrt(sum((g**2).sum() for g in g_f))
            w = alpha * nr / (nf + 1e-12)
            for p, a, b in zip(model.parameters(), g_r, g_f, strict=True):
                p.grad = a + w * b
            opt.step()
            n += 1
        return n

    out = train_epochs(model, data, epochs, epoch, patience=patience)
    out["targets"] = targets.tolist()
    out["target_counts"] = {int(c): int((targets == c).sum()) for c in targets.unique()}
    return out


@register_method("lca", cost=_lca_cost)
def label_complement(model, data, *, rng, teacher, epochs: int = 10, lr: float = 1e-2, beta: float = 1.0,
                     patience: int = 15):
    """Label-complement augmentation: every forget sample paired with every WRONG label,
    ``CE(retain) + β·CE(complement pairs)``."""
    from ..data.tensors import Split

    C = data.n_classes
    X, y = data.forget.X, data.forget.y
    wrong = torch.stack([(y + s) % C for s in range(1, C)], dim=1).reshape(-1)
    comp = Split(X.repeat_interleave(C - 1, dim=0), wrong, np.repeat(data.forget.index, C - 1))
    comp_data = type(data)(data.retain, comp, data.val, C, data.forget_class, data.batch_size)
    opt = adam(model, lr)
    return train_epochs(model, data, epochs, lambda _: run_steps(
        model, opt, paired_batches(comp_data, rng),
        lambda rf: ce(model, data.retain, rf[0]) + beta * ce(model, comp, rf[1])), patience=patience)


@register_method("salun", cost=_salun_cost)
def salun(model, data, *, rng, teacher, epochs: int = 10, lr: float = 1e-2, sparsity: float = 0.5,
          patience: int = 15):
    """SalUn (Fan et al., ICLR 2024): a weight-saliency mask from the forget-loss gradient
    (the top ``1 − sparsity`` fraction by magnitude), then random-label unlearning that
    updates only the salient weights."""
    model.zero_grad()
    ce(model, data.forget, np.arange(len(data.forget))).backward()
    mags = torch.cat([p.grad.abs().reshape(-1).double() for p in model.parameters() if p.grad is not None])
    keep = max(1, int(round((1 - sparsity) * mags.numel())))
    threshold = torch.topk(mags, keep).values[-1]
    # Strictly above zero: weights the forget loss does not touch are never salient.
    masks = [((p.grad.abs().double() >= threshold) & (p.grad != 0)).to(p.dtype) if p.grad is not None
             else torch.zeros_like(p) for p in model.parameters()]
    model.zero_grad()
    opt = adam(model, lr)

    def mask_gradients():
        for p, m in zip(model.parameters(), masks, strict=True):
            if p.grad is not None:
                p.grad *= m

    out = train_epochs(model, data, epochs, lambda _: run_steps(
        model, opt, paired_batches(data, rng), random_label_loss(model, data, rng), mask_gradients),
        patience=patience)
    out["salient_fraction"] = float(sum(m.sum() for m in masks) / sum(m.numel() for m in masks))
    return out
