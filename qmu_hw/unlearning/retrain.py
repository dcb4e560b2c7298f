"""Retraining-based methods: the oracle, identity, EU-k and CF-k."""

from __future__ import annotations

from ..models.training import fit
from .base import adam, freeze_all_but_last, register_method, reset_block, train_epochs
from .cost import CostContext, MethodCost, frozen_quantum, retain_epochs, selection
from .gradient import retain_steps


def _last_k_cost(ctx: CostContext) -> MethodCost:
    """Retain epochs on the last k blocks: the quantum layer's rows need gradients only
    when it is among them."""
    loop = retain_epochs(ctx)
    return (loop if ctx.quantum_trains(int(ctx.hp.get("k", 1))) else frozen_quantum(loop)) + selection(ctx)


@register_method("retrain", cost=lambda ctx: retain_epochs(ctx) + selection(ctx))
def retrain(model, data, *, rng, teacher, epochs: int = 100, lr: float = 1e-2, patience: int = 25):
    """The oracle: every block re-initialised, trained from scratch on the retain set with
    the teacher's protocol (early stopping on validation); its input scaling is refitted on
    the retain set too."""
    for _, block in model.blocks():
        reset_block(block, rng)
    scaler = getattr(model, "scaler", None)  # user models (factory/circuit) may have none
    if scaler is not None:
        scaler.reset()  # refitted by fit() on the retain set, as a model trained from scratch on it
    res = fit(model, data.retain, data.val, epochs=epochs, lr=lr, batch_size=data.batch_size,
              patience=patience, seed=int(rng.integers(2**31)), phase=model.quantum.phase)
    return {"steps": res.epochs_ran * -(-len(data.retain) // data.batch_size), "epochs": res.epochs_ran,
            "best_epoch": res.best_epoch}


@register_method("identity", cost=lambda ctx: MethodCost())
def identity(model, data, *, rng, teacher):
    """Baseline: the teacher itself (no unlearning)."""
    return {"steps": 0}


def _train_retain(model, data, rng, params, epochs, lr, patience):
    opt = adam(model, lr, params)
    return train_epochs(model, data, epochs, lambda _: retain_steps(model, data, rng, opt), patience=patience)


@register_method("eu-k", cost=_last_k_cost)
def eu_k(model, data, *, rng, teacher, k: int = 1, epochs: int = 10, lr: float = 1e-2, patience: int = 15):
    """Exact-unlearning-k (Goel et al. 2022): re-initialise the last k blocks and train only
    them on the retain set; the frozen blocks never saw a gradient from the forget set since
    the teacher, and the re-initialised ones never see the forget set at all."""
    trainable = freeze_all_but_last(model, k)
    for _, block in model.blocks()[-k:]:
        reset_block(block, rng)
    out = _train_retain(model, data, rng, trainable, epochs, lr, patience)
    for p in model.parameters():
        p.requires_grad_(True)
    return out


@register_method("cf-k", cost=_last_k_cost)
def cf_k(model, data, *, rng, teacher, k: int = 1, epochs: int = 10, lr: float = 1e-2, patience: int = 15):
    """Catastrophic-forgetting-k (Goel et al. 2022): fine-tune only the last k blocks on the
    retain set. Fix: the paper's code froze the first k blocks and ran gradient ascent on the
    forget set, which is a different method (GA on a sub-network), not CF-k."""
    trainable = freeze_all_but_last(model, k)
    out = _train_retain(model, data, rng, trainable, epochs, lr, patience)
    for p in model.parameters():
        p.requires_grad_(True)
    return out
