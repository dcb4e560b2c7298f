"""Adversarial-uniform unlearning: FGSM on the inputs (rotation angles), then push the
model's output on the perturbed forget samples toward the uniform distribution."""

from __future__ import annotations

import torch

from .base import adam, ce, paired_batches, register_method, run_steps, train_epochs
from .cost import CostContext, MethodCost, paired_epochs, selection


def kl_to_uniform(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits, dim=1)
    return (logp.exp() * (logp + torch.log(torch.tensor(float(logits.shape[1]))))).sum(dim=1).mean()


def fgsm(model, x: torch.Tensor, eps, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """One FGSM step that increases KL(p‖U), clamped to the training input range. The
    gradient w.r.t. the inputs flows through the quantum layer's input slots. ``eps`` is a
    scalar or a per-feature ``(F,)`` step in input units."""
    x = x.clone().detach().requires_grad_(True)
    kl_to_uniform(model(x)).backward()
    model.zero_grad()
    return torch.maximum(torch.minimum(x + eps * x.grad.sign(), hi), lo).detach()


def input_step(model, eps: float):
    """``eps`` is in rotation-angle units (as the paper's FGSM on angles): through a model's
    input scaler that is a per-feature step in raw feature units."""
    scaler = getattr(model, "scaler", None)
    return eps if scaler is None else scaler.angle_step(eps).to(torch.float32)


def _cost(ctx: CostContext) -> MethodCost:
    """Paired retain/forget steps plus one FGSM forward+backward (inputs and weights) of
    the forget batch per step."""
    n = ctx.epochs * ctx.retain_batches
    fgsm_rows = n * ctx.forget_batch
    extra = MethodCost(grad_rows=fgsm_rows, grad_requests=n, input_grad_rows=fgsm_rows)
    return paired_epochs(ctx) + extra + selection(ctx)


@register_method("adv-uniform", cost=_cost)
def adversarial_uniform(model, data, *, rng, teacher, epochs: int = 10, lr: float = 1e-2, eps: float = 0.1,
                        lam: float = 1.0, patience: int = 15):
    """``CE(retain) + λ·KL(p(x_adv) ‖ uniform)`` with ``x_adv`` = FGSM(forget inputs);
    ``eps`` in rotation-angle units (the paper perturbed the angles)."""
    lo = data.retain.X.amin(dim=0)
    hi = data.retain.X.amax(dim=0)
    step = input_step(model, eps)
    opt = adam(model, lr)

    def loss(rf):
        x_adv = fgsm(model, data.forget.X[rf[1]], step, lo, hi)  # clears its own gradients
        return ce(model, data.retain, rf[0]) + lam * kl_to_uniform(model(x_adv))

    return train_epochs(model, data, epochs, lambda _: run_steps(model, opt, paired_batches(data, rng), loss),
                        patience=patience)
