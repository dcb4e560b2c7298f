"""Fisher-information methods: Fisher forgetting (EWC-anchored ascent) and SSD."""

from __future__ import annotations

import numpy as np
import torch

from ..models.training import batches
from .base import adam, ce, register_method, train_epochs


def diagonal_fisher(model, split, batch_size: int, rng) -> dict[str, torch.Tensor]:
    """Mean squared batch gradient of the cross-entropy, per parameter."""
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


@register_method("fisher")
def fisher_forgetting(model, data, *, rng, teacher, epochs: int = 10, lr: float = 1e-2,
                      lambda_ewc: float = 10.0, patience: int = 15):
    """Gradient ascent on forget with an EWC penalty ``λ/2 Σ F_i (θ_i − θ*_i)²``.

    Fix: the importance F comes from the RETAIN set — the weights to protect are those the
    retained data needs; the paper computed it on the forget set, which anchors exactly the
    weights that should move.
    """
    fisher = diagonal_fisher(model, data.retain, data.batch_size, rng)
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


@register_method("ssd")
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
