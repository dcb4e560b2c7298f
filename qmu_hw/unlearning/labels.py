"""Label-based methods: Q-MUL, label-complement augmentation (LCA) and SalUn."""

from __future__ import annotations

import numpy as np
import torch

from ..models.training import predict_proba
from .base import adam, ce, paired_batches, register_method, run_steps, train_epochs
from .gradient import random_label_loss


def similar_class_map(teacher, retain, n_classes: int) -> dict[int, int]:
    """For every class, the other class whose mean teacher output is most cosine-similar."""
    teacher_phase = teacher.quantum.phase
    probs = predict_proba(teacher, retain.X).numpy()
    teacher.set_phase(teacher_phase)
    means = np.zeros((n_classes, probs.shape[1]))
    for c in range(n_classes):
        rows = probs[retain.y.numpy() == c]
        if len(rows):
            means[c] = rows.mean(axis=0)
    norm = np.linalg.norm(means, axis=1, keepdims=True) + 1e-12
    sim = (means / norm) @ (means / norm).T
    np.fill_diagonal(sim, -np.inf)
    return {c: int(np.argmax(sim[c])) for c in range(n_classes)}


def _flat_grad(model) -> list[torch.Tensor]:
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


@register_method("q-mul")
def q_mul(model, data, *, rng, teacher, epochs: int = 20, lr: float = 1e-2, alpha: float = 1.0,
          patience: int = 15):
    """Q-MUL: relabel each forget sample with its most similar class and train
    ``CE(retain) + w·CE(forget → similar class)`` with ``w = α‖∇L_r‖/‖∇L_f‖``.

    Fix: the paper's code SUBTRACTED the similar-class loss, pushing forget samples AWAY
    from the most similar class; the method pulls them TOWARD it.
    """
    teacher.set_phase(model.quantum.phase)
    mapping = similar_class_map(teacher, data.retain, data.n_classes)
    lut = torch.tensor([mapping[c] for c in range(data.n_classes)])
    opt = adam(model, lr)

    def epoch(_):
        n = 0
        for r, f in paired_batches(data, rng):
            opt.zero_grad()
            ce(model, data.retain, r).backward()
            g_r = _flat_grad(model)
            opt.zero_grad()
            ce(model, data.forget, f, lut[data.forget.y[f]]).backward()
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
    out["similar_class"] = mapping
    return out


@register_method("lca")
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


@register_method("salun")
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
