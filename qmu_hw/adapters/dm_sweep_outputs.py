"""The parameter-shift sweep with each observable's adjoint on its own support.

Same values as :func:`.dm_sweep.sweep` (see there for the method); the adjoint vector of each
observable lives on the qubits where it is not the identity (:mod:`.dm_support`), so the last
layers before the readout cost ``4^|S|`` per observable instead of ``4^k``. The forward
states stay on the full register: at identity outside ``S`` they are a slice
(:func:`.dm_support.reduced_slice`; single-qubit maps off the support do not change it).
Observables are swept one by one (their supports differ), so this pays off only when the
supports are small for a good part of the circuit (:func:`.dm_shift.worthwhile`).
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
        xs = unit_partials(before[li], mats, k)
        for i, p in enumerate(plans):
            S, m = p.after[li], p.member
            Y = Ys[i][:, None, None, :]
            view = out[i][1][:, None, :, None, :]  # (R, 1, G+1, 1, 3): _peel_positions writes through it
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
                    _peel_positions(view, Eq, pos[:, m : m + 1, :, qq], slots[m : m + 1, :, qq],
                                    (c0[m : m + 1, :, qq], c1[m : m + 1, :, qq], c2[m : m + 1, :, qq]), one)
            Ys[i] = Y[:, 0, 0]
    return out
