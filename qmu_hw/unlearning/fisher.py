"""Fisher-information methods: Fisher forgetting (Golatkar et al. 2020), the paper's
ascent + EWC variant, and SSD."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core.exceptions import InvalidRequestError
from ..models.training import batches
from .base import adam, ce, register_method, train_epochs
from .cost import CostContext, MethodCost, forget_epochs, selection

VAR_CAP = 1e3  # Golatkar et al.'s clip of 1/F: parameters the retain set does not use get at most α·1e3
HEAD_VAR_CAP = 1e2  # ... and the class-output layer at most α·1e2
BOOST = 10.0  # ... times 10 for the output layer and every 1-D parameter (biases, BatchNorm)
FORGOTTEN_ROW_VAR = 1e-4  # class forgetting: the forgotten class's output row is set to 0 ± this


def diagonal_fisher(model, split, batch_size: int, rng) -> dict[str, torch.Tensor]:
    """Mean squared BATCH gradient of the cross-entropy, per parameter (the paper's EWC
    importance; not a per-sample Fisher)."""
    fisher = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
    count = 0
    model.eval()
    for idx in batches(len(split), batch_size, rng):
        model.zero_grad()
        ce(model, split, idx).backward()
        for n, p in model.named_parameters():
            if p.grad is not None and n in fisher:
                fisher[n] += p.grad.detach() ** 2
        count += 1
    model.zero_grad()
    model.train()
    return {n: f / max(count, 1) for n, f in fisher.items()}


def per_sample_fisher(model, split) -> dict[str, torch.Tensor]:
    """Golatkar et al.'s diagonal Fisher on ``split``: ``mean_x Σ_y p(y|x)·(∂CE(x, y)/∂θ)²``
    with PER-SAMPLE gradients and the model's own predictive distribution p(y|x).

    One forward per sample and one backward per (sample, class).
    """
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    was = model.training
    model.eval()  # BatchNorm on single rows: running statistics, as at inference
    try:
        for i in range(len(split)):
            logits = model(split.X[i : i + 1])
            prob = torch.softmax(logits.detach(), dim=1)[0]
            C = logits.shape[1]
            for y in range(C):
                loss = torch.nn.functional.cross_entropy(logits, torch.tensor([y]))
                grads = torch.autograd.grad(loss, list(params.values()), retain_graph=y < C - 1, allow_unused=True)
                for (n, _), g in zip(params.items(), grads, strict=True):
                    if g is not None:
                        fisher[n] += prob[y].to(g.dtype) * g.detach() ** 2
    finally:
        model.train(was)
    n = max(len(split), 1)
    return {k: v / n for k, v in fisher.items()}


def _output_layer(model) -> torch.nn.Linear | None:
    linears = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)]
    return linears[-1] if linears else None


def fisher_noise(model, fisher: dict[str, torch.Tensor], alpha: float, forget_class: int | None):
    """Per parameter ``(mean, variance)`` of Golatkar et al.'s forgetting distribution.

    ``var = α·min(1/(F + 1e-8), cap)`` (cap 1e3; 1e2 for the output layer), averaged over
    the inputs of each Linear/Conv output unit (the reference code's ``mean(dim=1)``),
    times 10 for the output layer and 1-D parameters. Mean: the trained weights, except
    that class forgetting sets the forgotten class's output row to 0 (variance 1e-4·10).
    Quantum-layer weights keep one variance per rotation angle (no fan-in to average).
    """
    out_layer = _output_layer(model)
    out_ids = {id(out_layer.weight), id(out_layer.bias)} if out_layer is not None else set()
    fan_in = {id(m.weight) for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))}
    result = {}
    for name, p in model.named_parameters():
        if name not in fisher:
            continue
        is_out = id(p) in out_ids
        var = torch.clamp(1.0 / (fisher[name] + 1e-8), max=HEAD_VAR_CAP if is_out else VAR_CAP) * alpha
        if id(p) in fan_in and p.ndim > 1:
            var = var.mean(dim=1, keepdim=True).expand_as(p).clone()
        mu = p.detach().clone()
        if is_out and forget_class is not None:
            mu[forget_class] = 0.0
            var[forget_class] = FORGOTTEN_ROW_VAR
        if is_out or p.ndim == 1:
            var = var * BOOST
        result[name] = (mu, var)
    return result


def _fisher_cost(ctx: CostContext) -> MethodCost:
    """One single-row forward and C backward passes per retain sample; no training."""
    r, C = ctx.sizes.retain, ctx.n_classes
    return MethodCost(grad_rows=r, grad_requests=r, extra_backward_rows=r * (C - 1),
                      extra_backward_requests=r * (C - 1))


@register_method("fisher", cost=_fisher_cost)
def fisher_forgetting(model, data, *, rng, teacher, alpha: float = 1e-6):
    """Fisher forgetting (Golatkar et al., CVPR 2020, "Eternal Sunshine of the Spotless
    Net"): diagonal Fisher F from per-sample gradients on the RETAIN set, then every
    weight is replaced by a draw from ``N(θ, α/F)`` (clipped; see :func:`fisher_noise`):
    weights the retained data does not pin down are scrambled, which destroys what only
    the forget set put there. No gradient ascent, no optimiser; the forget set's inputs
    are never read (class forgetting uses only its label). ``alpha=1e-6`` as in the
    reference code. The paper's ascent + EWC method is ``fisher-ewc``.
    """
    if not alpha > 0:
        raise InvalidRequestError(f"fisher: alpha must be > 0, got {alpha}")
    fisher = per_sample_fisher(model, data.retain)
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    noise = fisher_noise(model, fisher, alpha, data.forget_class)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in noise:
                mu, var = noise[name]
                p.copy_(mu + var.sqrt() * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    total = sum(f.sum() for f in fisher.values())
    count = sum(f.numel() for f in fisher.values())
    return {"steps": 0, "mean_fisher": float(total / max(count, 1))}


def _ewc_cost(ctx: CostContext) -> MethodCost:
    """An importance pass over the forget (or retain) set, then GA epochs and selection."""
    rows = ctx.sizes.forget if ctx.hp.get("importance", "forget") == "forget" else ctx.sizes.retain
    importance = MethodCost(grad_rows=rows, grad_requests=ctx.batches(rows))
    return importance + forget_epochs(ctx) + selection(ctx)


@register_method("fisher-ewc", cost=_ewc_cost)
def fisher_ewc(model, data, *, rng, teacher, epochs: int = 10, lr: float = 1e-2, lambda_ewc: float = 10.0,
               importance: str = "forget", patience: int = 15):
    """The paper's "Fisher" method: gradient ascent on the forget set with an EWC penalty
    ``λ/2 Σ F_i (θ_i − θ*_i)²``, F the mean squared batch gradient on the FORGET set (as
    the paper's code; ``importance="retain"`` protects the weights the retained data needs
    instead). Not Golatkar et al.'s Fisher forgetting (that is ``fisher``)."""
    if importance not in ("forget", "retain"):
        raise InvalidRequestError(f"fisher-ewc: importance must be 'forget' or 'retain', got {importance!r}")
    fisher = diagonal_fisher(model, data.forget if importance == "forget" else data.retain, data.batch_size, rng)
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = adam(model, lr)

    def epoch(_):
        n = 0
        for idx in batches(len(data.forget), data.batch_size, rng):
            opt.zero_grad()
            loss = -ce(model, data.forget, idx)
            for name, p in model.named_parameters():
                if name in fisher:
                    loss = loss + 0.5 * lambda_ewc * (fisher[name] * (p - anchor[name]) ** 2).sum()
            loss.backward()
            opt.step()
            n += 1
        return n

    return train_epochs(model, data, epochs, epoch, patience=patience)


def _ssd_cost(ctx: CostContext) -> MethodCost:
    """Two importance passes (all training rows, then the forget rows) at one batch size."""
    s = ctx.sizes
    bs = max(1, min(ctx.batch_size, s.forget))
    full = s.retain + s.forget
    return MethodCost(grad_rows=full + s.forget, grad_requests=math.ceil(full / bs) + math.ceil(s.forget / bs))


@register_method("ssd", cost=_ssd_cost)
def selective_synaptic_dampening(model, data, *, rng, teacher, alpha: float = 10.0, lam: float = 1.0):
    """SSD (Foster et al., AAAI 2024): where a parameter matters ``alpha`` times more for
    the forget set than for the whole training data, scale it by ``min(λ·I_D/I_f, 1)``.
    No training: two importance passes only."""
    from ..data.tensors import Split

    full = Split(torch.cat([data.retain.X, data.forget.X]), torch.cat([data.retain.y, data.forget.y]),
                 np.concatenate([data.retain.index, data.forget.index]))
    # Mean squared BATCH gradients scale with 1/batch size: both importances use the same
    # batch size, or a tiny forget set would look important everywhere.
    bs = max(1, min(data.batch_size, len(data.forget)))
    i_d = diagonal_fisher(model, full, bs, rng)
    i_f = diagonal_fisher(model, data.forget, bs, rng)
    dampened = 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name not in i_d:
                continue
            sel = i_f[name] > alpha * i_d[name]
            factor = torch.clamp(lam * i_d[name] / (i_f[name] + 1e-12), max=1.0)
            p.mul_(torch.where(sel, factor, torch.ones_like(factor)))
            dampened += int(sel.sum())
    return {"steps": 0, "dampened_parameters": dampened}
