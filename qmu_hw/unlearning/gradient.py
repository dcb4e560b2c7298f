"""Gradient-based methods: GA, NegGrad+, fine-tuning, random labels, certified noisy FT."""

from __future__ import annotations

import torch

from ..models.training import batches
from .base import adam, ce, paired_batches, register_method, run_steps, train_epochs
from .cost import forget_epochs, paired_epochs, retain_epochs, selection


def retain_steps(model, data, rng, opt, after_backward=None) -> int:
    """One epoch of cross-entropy steps over the retain set."""
    return run_steps(model, opt, batches(len(data.retain), data.batch_size, rng),
                     lambda idx: ce(model, data.retain, idx), after_backward)


@register_method("ga", cost=lambda ctx: forget_epochs(ctx) + selection(ctx))
def gradient_ascent(model, data, *, rng, teacher, epochs: int = 10, lr: float = 1e-2, patience: int = 15):
    """Gradient ascent on the forget set (the paper's GA), epoch chosen on validation."""
    opt = adam(model, lr)
    return train_epochs(model, data, epochs, lambda _: run_steps(
        model, opt, batches(len(data.forget), data.batch_size, rng), lambda idx: -ce(model, data.forget, idx)),
        patience=patience)


@register_method("neggrad+", cost=lambda ctx: paired_epochs(ctx) + selection(ctx))
def neggrad_plus(model, data, *, rng, teacher, epochs: int = 10, lr: float = 1e-2, alpha: float = 1.0,
                 patience: int = 15):
    """NegGrad+: ``CE(retain) − α·CE(forget)``. Fix: iterates the whole retain set and cycles
    the forget set (the paper's ``zip`` stopped after the few forget batches)."""
    opt = adam(model, lr)
    return train_epochs(model, data, epochs, lambda _: run_steps(
        model, opt, paired_batches(data, rng),
        lambda rf: ce(model, data.retain, rf[0]) - alpha * ce(model, data.forget, rf[1])), patience=patience)


@register_method("finetune", cost=lambda ctx: retain_epochs(ctx) + selection(ctx))
def finetune(model, data, *, rng, teacher, epochs: int = 10, lr: float = 1e-2, patience: int = 15):
    """Baseline: keep training on the retain set only."""
    opt = adam(model, lr)
    return train_epochs(model, data, epochs, lambda _: retain_steps(model, data, rng, opt), patience=patience)


def random_wrong_labels(y: torch.Tensor, n_classes: int, rng) -> torch.Tensor:
    shift = torch.as_tensor(rng.integers(1, n_classes, size=len(y)))
    return (y + shift) % n_classes


def random_label_loss(model, data, rng):
    """``CE(retain) + CE(forget relabelled with random wrong classes)`` for a (r, f) pair."""
    def loss(rf):
        wrong = random_wrong_labels(data.forget.y[rf[1]], data.n_classes, rng)
        return ce(model, data.retain, rf[0]) + ce(model, data.forget, rf[1], wrong)

    return loss


@register_method("random-label", cost=lambda ctx: paired_epochs(ctx) + selection(ctx))
def random_label(model, data, *, rng, teacher, epochs: int = 10, lr: float = 1e-2, patience: int = 15):
    """Baseline: train on retain plus the forget set relabelled with random wrong classes."""
    opt = adam(model, lr)
    return train_epochs(model, data, epochs, lambda _: run_steps(
        model, opt, paired_batches(data, rng), random_label_loss(model, data, rng)), patience=patience)


@register_method("certified", cost=lambda ctx: retain_epochs(ctx) + selection(ctx))
def certified(model, data, *, rng, teacher, epochs: int = 20, lr: float = 1e-2, sigma: float = 0.05,
              clip_norm: float = 1.0, patience: int = 15):
    """Noisy fine-tuning on the retain set, named "certified" after the paper: clip the
    gradient norm to ``clip_norm``, add N(0, σ²) to every gradient coordinate, Adam step.

    This carries NO unlearning certificate. Certified removal (Guo et al. 2020; Neel et al.
    2021) needs a strongly convex loss (or a known sensitivity bound) and noise calibrated
    to (ε, δ); a hybrid quantum-classical network is non-convex, the noise here is not
    calibrated to any bound, and Adam rescales it per coordinate. Read its results as
    "noisy retain fine-tuning".
    """
    opt = adam(model, lr)
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))

    def clip_and_noise():
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=clip_norm)
        for p in model.parameters():
            if p.grad is not None:
                p.grad += sigma * torch.randn(p.grad.shape, generator=gen, dtype=p.grad.dtype)

    return train_epochs(model, data, epochs, lambda _: retain_steps(model, data, rng, opt, clip_and_noise),
                        patience=patience)
