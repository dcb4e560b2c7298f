"""Gradient-based methods: GA, NegGrad+, fine-tuning, random labels, certified noisy FT."""

from __future__ import annotations

import torch

from ..models.training import batches
from .base import adam, ce, paired_batches, register_method, train_epochs


@register_method("ga")
def gradient_ascent(model, data, *, rng, teacher, epochs: int = 10, lr: float = 1e-2, patience: int = 15):
    """Gradient ascent on the forget set (the paper's GA), epoch chosen on validation."""
    opt = adam(model, lr)

    def epoch(_):
        n = 0
        for idx in batches(len(data.forget), data.batch_size, rng):
            opt.zero_grad()
            (-ce(model, data.forget, idx)).backward()
            opt.step()
            n += 1
        return n

    return train_epochs(model, data, epochs, epoch, patience=patience)


@register_method("neggrad+")
def neggrad_plus(model, data, *, rng, teacher, epochs: int = 10, lr: float = 1e-2, alpha: float = 1.0,
                 patience: int = 15):
    """NegGrad+: ``CE(retain) − α·CE(forget)``. Fix: iterates the whole retain set and cycles
    the forget set (the paper's ``zip`` stopped after the few forget batches)."""
    opt = adam(model, lr)

    def epoch(_):
        n = 0
        for r, f in paired_batches(data, rng):
            opt.zero_grad()
            (ce(model, data.retain, r) - alpha * ce(model, data.forget, f)).backward()
            opt.step()
            n += 1
        return n

    return train_epochs(model, data, epochs, epoch, patience=patience)


@register_method("finetune")
def finetune(model, data, *, rng, teacher, epochs: int = 10, lr: float = 1e-2, patience: int = 15):
    """Baseline: keep training on the retain set only."""
    opt = adam(model, lr)

    def epoch(_):
        n = 0
        for idx in batches(len(data.retain), data.batch_size, rng):
            opt.zero_grad()
            ce(model, data.retain, idx).backward()
            opt.step()
            n += 1
        return n

    return train_epochs(model, data, epochs, epoch, patience=patience)


def random_wrong_labels(y: torch.Tensor, n_classes: int, rng) -> torch.Tensor:
    shift = torch.as_tensor(rng.integers(1, n_classes, size=len(y)))
    return (y + shift) % n_classes


@register_method("random-label")
def random_label(model, data, *, rng, teacher, epochs: int = 10, lr: float = 1e-2, patience: int = 15):
    """Baseline: train on retain plus the forget set relabelled with random wrong classes."""
    opt = adam(model, lr)

    def epoch(_):
        n = 0
        for r, f in paired_batches(data, rng):
            opt.zero_grad()
            wrong = random_wrong_labels(data.forget.y[f], data.n_classes, rng)
            (ce(model, data.retain, r) + ce(model, data.forget, f, wrong)).backward()
            opt.step()
            n += 1
        return n

    return train_epochs(model, data, epochs, epoch, patience=patience)


@register_method("certified")
def certified(model, data, *, rng, teacher, epochs: int = 20, lr: float = 1e-2, sigma: float = 0.05,
              clip_norm: float = 1.0, patience: int = 15):
    """Certified-style noisy fine-tuning on retain: clip the gradient norm to ``clip_norm``
    and add N(0, σ²) noise to every gradient coordinate (as the paper)."""
    opt = adam(model, lr)
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))

    def epoch(_):
        n = 0
        for idx in batches(len(data.retain), data.batch_size, rng):
            opt.zero_grad()
            ce(model, data.retain, idx).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=clip_norm)
            for p in model.parameters():
                if p.grad is not None:
                    p.grad += sigma * torch.randn(p.grad.shape, generator=gen, dtype=p.grad.dtype)
            opt.step()
            n += 1
        return n

    return train_epochs(model, data, epochs, epoch, patience=patience)
