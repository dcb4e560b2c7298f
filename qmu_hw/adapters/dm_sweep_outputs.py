"""The parameter-shift sweep with each observable's adjoint on its own support.

Same values as :func:`.dm_sweep.sweep` (see there for the method); the adjoint vector of each
observable lives on the qubits where it is not the identity (:mod:`.dm_support`), so the last
layers before the readout cost ``4^|S|`` per observable instead of ``4^k``. The forward
states stay on the full register: at identity outside ``S`` they are a slice
(:func:`.dm_support.reduced_slice`; single-qubit maps off the support do not change it).
Observables of one member on the same support at a layer (typically every observable in the
first layers, where supports are the whole cone) run as one batch; the others one by one.
"""

from __future__ import annotations

import torch

from .dm_compile import Group
from .dm_engine import _position_mats
from .dm_support import OutputPlan, reduced_slice
from .dm_sweep import (
    _adjoint_unit,
    _compose,
    _environment,
    _peel_positions,
    _unit_matrix,
    _units,
    adjoint_layers,
    forward,
    pair_environments,
    unit_partials,
)

# Observables batched per pass up to this many bytes of adjoint vectors: the passes are
# memory-bound, and a batch that leaves the cache is slower than one observable at a time
# (hqml 10q×6L, 10 observables of 8 MiB each: 2.2 s batched, 1.4 s one by one per base row).
BATCH_BYTES = 8 * 2**20


def _batches(plans: list[OutputPlan], li: int, rows: int):
    """``(member, support, plan indices)``: observables of one member on one support at
    layer ``li``, in batches of at most ``BATCH_BYTES``."""
    by: dict = {}
    for i, p in enumerate(plans):
        by.setdefault((p.member, p.after[li]), []).append(i)
    for (m, S), idx in by.items():
        size = max(1, BATCH_BYTES // (8 * rows * 4 ** len(S)))
        for j in range(0, len(idx), size):
            yield m, S, idx[j : j + size]


def sweep_outputs(group: Group, ang: torch.Tensor, plans: list[OutputPlan]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per plan ``(base (R,), coef (R, G+1, 3))`` for rows ``ang (R, M, G+1)``; a slot whose
    rotation is off the observable's support at its layer gets ``(base, 0, 0)`` (its angle
    does not change the value)."""
    R, k = ang.shape[0], group.k
    before, final = forward(group, ang)
    adjoint = adjoint_layers(group)
    units = _units(k)
    out, Ys = [], []
    for p in plans:
        base = reduced_slice(final[:, p.member], p.after[-1], k) @ p.readin
        coef = ang.new_zeros(R, ang.shape[2], 3)
        coef[:, :, 0] = base[:, None]
        out.append((base, coef))
        Ys.append(p.readin.expand(R, -1))
    one = torch.arange(1)
    for li in range(len(group.layers) - 1, -1, -1):
        if adjoint[li] is not None:
            for i, p in enumerate(plans):
                index, scale = p.gathers[li]
                Ys[i] = Ys[i][:, index] * scale
            continue
        layer = group.layers[li]
        _, slots, c0, c1, c2 = layer
        pos = _position_mats(layer, ang)
        mats = _compose(pos)
        Cs = torch.stack((c0, c1, c2), dim=3)  # (M, P, k, 3, 4, 4)
        xs = unit_partials(before[li], mats, k)
        for m, S, idx in _batches(plans, li, R):
            Y = torch.stack([Ys[i] for i in idx], dim=1)[:, None]  # (R, 1, J', 4^|S|)
            if len(idx) == 1:
                coef = out[idx[0]][1][:, None, :, None, :]  # a view: _peel_positions writes through it
            else:
                coef = ang.new_zeros(R, 1, ang.shape[2], len(idx), 3)
            for u in range(len(units) - 1, -1, -1):
                q, w = units[u]
                qs = [x for x in range(q, q + w) if x in S]
                if not qs:
                    continue
                p0, w2 = S.index(qs[0]), len(qs)
                X = reduced_slice(xs[u][:, m], S, k)[:, None]
                sub = mats[:, m : m + 1, qs]  # (R, 1, w2, 4, 4)
                E = _environment(Y, X, p0, w2, len(S))
                Y = _adjoint_unit(Y, _unit_matrix(sub, 0, w2), p0, w2, len(S))
                for j, Eq in pair_environments(E, sub, 0, w2).items():
                    qq = qs[j]
                    _peel_positions(coef, Eq, pos[:, m : m + 1, :, qq], slots[m : m + 1, :, qq],
                                    Cs[m : m + 1, :, qq], one)
            if len(idx) > 1:  # back to each observable, on the slots of this layer's qubits in S only
                written = slots[m][:, list(S)].reshape(-1)
                for j, i in enumerate(idx):
                    out[i][1][:, written] = coef[:, 0, written, j]
            for j, i in enumerate(idx):
                Ys[i] = Y[:, 0, j]
    return out
