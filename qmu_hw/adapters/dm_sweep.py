"""One forward and one adjoint sweep of a compiled PTM group: every single-slot shift at once.

The noisy expectation is linear in each rotation's PTM, and a rotation's PTM is
``C0 + sinθ C1 + (1 − cosθ) C2`` (:mod:`.dm_compile`). So with ``|X⟩`` the state just before
a rotation and ``⟨Y|`` the observable propagated backward (Heisenberg) to just after it, the
value at any angle θ' of that one rotation — all others at the base row's — is
``e0 + sinθ' e1 + (1 − cosθ') e2`` with ``e_i = ⟨Y| C_i |X⟩``. One forward sweep (states
before each single-qubit layer) and one adjoint sweep per observable give those three
numbers for every slot of the cone: a parameter-shift request's ``2G'`` rows per base row
cost about one row's forward pass plus one adjoint pass per observable of the cone, instead
of ``2G'`` forward passes.

Within a single-qubit layer the qubits' maps commute; they are applied in units of one or
two qubits (one 16×16 pass per pair, as :func:`.dm_engine._apply_1q_layer` does). At unit
``u`` the environment ``E_u[i, j] = Σ_rest Y[.., i, ..] X[.., j, ..]`` (X: units before u
applied, Y: units after u applied backward) gives each qubit's 4×4 environment, and the
positions (rotations) folded into one qubit's run are peeled off with their prefix and
suffix products: ``value = Σ (Aᵀ E Bᵀ) ⊙ M_p(θ')`` for ``M_q = A M_p B``.
"""

from __future__ import annotations

import torch

from .dm_compile import Group, _apply_2q
from .dm_engine import _position_mats, _zero_state


def _units(k: int) -> list[tuple[int, int]]:
    """(first qubit, width): pairs, and a single for an odd last qubit."""
    return [(q, min(2, k - q)) for q in range(0, k, 2)]


def _unit_matrix(mats: torch.Tensor, q: int, w: int) -> torch.Tensor:
    """``(R, M, 4^w, 4^w)``: the unit's maps (qubit q the more significant factor)."""
    if w == 1:
        return mats[:, :, q]
    R, M = mats.shape[:2]
    return torch.einsum("rmij,rmkl->rmikjl", mats[:, :, q], mats[:, :, q + 1]).reshape(R, M, 16, 16)


# Which torch call is fastest depends on the unit's position (the tail ``c`` behind it).
# Measured at 10 qubits, 10 outputs (ms per pass; a plain copy of the vectors: 54): a
# broadcast matmul 67 / 57 / 66 / 92 and einsum 175 / 166 / 179 / 210 for the pair at qubit
# 0 / 2 / 4 / 6; for the last pair (c = 1) one flat matmul 91, einsum 136.
def _forward_unit(state: torch.Tensor, U: torch.Tensor, q: int, w: int, k: int) -> torch.Tensor:
    """``U`` on the unit's qubits of ``state (R, M, 4^k)``."""
    R, M = state.shape[:2]
    c = 4 ** (k - q - w)
    if c == 1:
        return (state.reshape(R, M, -1, 4**w) @ U.mT).reshape(R, M, -1)
    return (U[:, :, None] @ state.reshape(R, M, 4**q, 4**w, c)).reshape(R, M, -1)


def _adjoint_unit(Y: torch.Tensor, U: torch.Tensor, q: int, w: int, k: int) -> torch.Tensor:
    """``Uᵀ`` on the unit's qubits of the adjoint vectors ``Y (R, M, J, 4^k)``."""
    R, M, J = Y.shape[:3]
    c = 4 ** (k - q - w)
    if c == 1:
        return (Y.reshape(R, M, -1, 4**w) @ U).reshape(R, M, J, -1)
    return (U.mT[:, :, None, None] @ Y.reshape(R, M, J, 4**q, 4**w, c)).reshape(R, M, J, -1)


def _environment(Y: torch.Tensor, X: torch.Tensor, q: int, w: int, k: int) -> torch.Tensor:
    """``(R, M, J, 4^w, 4^w)``: ``E[i, j] = Σ_{a,c} Y[a, i, c] X[a, j, c]`` (10 qubits, 10
    outputs: einsum 23 / 85 / 89 / 85 ms for the pair at qubit 0 / 2 / 4 / 6; for the last
    pair one matmul 35 ms, einsum 120)."""
    R, M, J = Y.shape[:3]
    a, c = 4**q, 4 ** (k - q - w)
    if c == 1:  # contract a inside one matmul
        return Y.reshape(R, M, J, a, 4**w).mT @ X.reshape(R, M, 1, a, 4**w)
    return torch.einsum("rmnaic,rmajc->rmnij", Y.reshape(R, M, J, a, 4**w, c), X.reshape(R, M, a, 4**w, c))


def adjoint_layers(group: Group) -> list:
    """Per layer, what the adjoint sweep applies to a two-qubit layer (cached on the group):
    ``("2d", Xᵀ)``, ``("2m", inverse permutation, its scale)`` or ``("2s", transposed gates,
    reversed)``; ``None`` for single-qubit layers."""
    cached = getattr(group, "adjoint", None)
    if cached is not None:
        return cached
    out: list = []
    for layer in group.layers:
        kind = layer[0]
        if kind == "1":
            out.append(None)
        elif kind == "2d":
            out.append(("2d", layer[1].transpose(1, 2).contiguous()))
        elif kind == "2m":
            src, scale = layer[1], layer[2]
            inv = torch.argsort(src, dim=1)
            if not torch.equal(torch.gather(src, 1, inv), torch.arange(src.shape[1]).expand_as(src)):
                out.append(("2mscatter", src, scale))  # not a permutation: scatter-add
            else:
                out.append(("2m", inv, torch.gather(scale, 1, inv)))
        else:
            out.append(("2s", [[(a, b, r.T.contiguous()) for a, b, r in reversed(ops)] for ops in layer[1]]))
    group.adjoint = out
    return out


def _forward_fixed(state: torch.Tensor, layer: tuple, k: int) -> torch.Tensor:
    kind = layer[0]
    if kind == "2d":
        return torch.einsum("rmi,mij->rmj", state, layer[1])
    if kind == "2m":
        return torch.gather(state, 2, layer[1].expand(state.shape[0], -1, -1)) * layer[2]
    return torch.stack([_seq(state[:, m], ops, k) for m, ops in enumerate(layer[1])], dim=1)


def _adjoint_fixed(Y: torch.Tensor, adj: tuple, k: int) -> torch.Tensor:
    kind = adj[0]
    R, M, J, d = Y.shape
    if kind == "2d":  # forward is state @ X: the adjoint is Y @ Xᵀ
        return torch.einsum("rmni,mij->rmnj", Y, adj[1])
    if kind == "2m":  # out[i] = scale[i] in[src[i]] with src a permutation
        inv, scale = adj[1], adj[2]
        return torch.gather(Y, 3, inv[None, :, None, :].expand(R, M, J, d)) * scale[None, :, None, :]
    if kind == "2mscatter":
        src, scale = adj[1], adj[2]
        out = Y.new_zeros(Y.shape)
        return out.scatter_add_(3, src[None, :, None, :].expand(R, M, J, d), Y * scale[None, :, None, :])
    return torch.stack([_seq(Y[:, m], ops, k) for m, ops in enumerate(adj[1])], dim=1)


def _seq(state: torch.Tensor, ops: list, k: int) -> torch.Tensor:
    for a, b, r in ops:
        state = _apply_2q(state, r, a, b, k)
    return state


def _compose(m: torch.Tensor) -> torch.Tensor:
    """Positions ``(R, M, P, k, 4, 4)`` → each qubit's run ``M_{P-1} ⋯ M_0``."""
    mats = m[:, :, 0]
    for p in range(1, m.shape[2]):
        mats = m[:, :, p] @ mats
    return mats


def forward(group: Group, ang: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """The state before every single-qubit layer (the adjoint sweep needs them) and the final
    state, ``(R, M, 4^k)`` each."""
    state = _zero_state(ang.shape[0], group.members, group.k, ang.dtype)
    before: dict[int, torch.Tensor] = {}
    for li, layer in enumerate(group.layers):
        if layer[0] == "1":
            before[li] = state
            mats = _compose(_position_mats(layer, ang))
            for q, w in _units(group.k):
                state = _forward_unit(state, _unit_matrix(mats, q, w), q, w, group.k)
        else:
            state = _forward_fixed(state, layer, group.k)
    return before, state


def unit_partials(before: torch.Tensor, mats: torch.Tensor, k: int) -> list[torch.Tensor]:
    """The state before each unit of a single-qubit layer (units before it applied)."""
    units = _units(k)
    xs, X = [], before
    for q, w in units:
        xs.append(X)
        if (q, w) != units[-1]:
            X = _forward_unit(X, _unit_matrix(mats, q, w), q, w, k)
    return xs


def pair_environments(E: torch.Tensor, mats: torch.Tensor, q: int, w: int) -> dict:
    """Each qubit's 4×4 environment from a unit's ``E`` (a pair: the other qubit's map
    contracted in; ``E[(a b), (c d)]``, a and c on qubit q)."""
    if w == 1:
        return {q: E}
    E4 = E.reshape(E.shape[:3] + (4, 4, 4, 4))
    return {q: torch.einsum("rmnabcd,rmbd->rmnac", E4, mats[:, :, q + 1]),
            q + 1: torch.einsum("rmnabcd,rmac->rmnbd", E4, mats[:, :, q])}


def sweep(group: Group, ang: torch.Tensor, readin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Base values and every slot's shift coefficients for rows ``ang (R, M, G+1)`` (last
    column 0) and the outputs' readout functionals ``readin (M, J, 4^k)``.

    Returns ``base (R, M, J)`` (the value at the rows' own angles) and ``coef (R, M, G+1, J,
    3)``: for a slot the member reads, the value with that slot at θ' is
    ``coef[..., 0] + sinθ' coef[..., 1] + (1 − cosθ') coef[..., 2]`` (column ``G`` collects
    positions without a slot and is meaningless)."""
    R, M, k = ang.shape[0], group.members, group.k
    G1 = ang.shape[2]
    before, state = forward(group, ang)
    base = torch.einsum("rmd,mnd->rmn", state, readin)
    coef = ang.new_zeros(R, M, G1, readin.shape[1], 3)
    Y = readin.expand(R, -1, -1, -1)
    member = torch.arange(M)
    for li in range(len(group.layers) - 1, -1, -1):
        layer, adj = group.layers[li], adjoint_layers(group)[li]
        if adj is not None:
            Y = _adjoint_fixed(Y, adj, k)
            continue
        _, slots, c0, c1, c2 = layer
        pos = _position_mats(layer, ang)  # (R, M, P, k, 4, 4)
        mats = _compose(pos)
        units = _units(k)
        Cs = torch.stack((c0, c1, c2), dim=3)  # (M, P, k, 3, 4, 4)
        xs = unit_partials(before[li], mats, k)
        for (q, w), X in zip(reversed(units), reversed(xs), strict=True):
            E = _environment(Y, X, q, w, k)
            Y = _adjoint_unit(Y, _unit_matrix(mats, q, w), q, w, k)
            for qq, Eq in pair_environments(E, mats, q, w).items():
                _peel_positions(coef, Eq, pos[:, :, :, qq], slots[:, :, qq], Cs[:, :, qq], member)
    return base, coef


def _peel_positions(coef, E, pos, slots, C, member) -> None:
    """Write each position's three coefficients: ``M_q = A M_p B`` so the value at angle θ' of
    position p is ``Σ (Aᵀ E Bᵀ) ⊙ (C0 + sinθ' C1 + (1 − cosθ') C2)``. All positions at once (a
    call per position and coefficient was a third of the 8-qubit sweep).
    ``E (R, M, J, 4, 4)``, ``pos (R, M, P, 4, 4)``, ``slots (M, P)``, ``C (M, P, 3, 4, 4)``."""
    P = pos.shape[2]
    eye = torch.eye(4, dtype=pos.dtype).expand(pos.shape[:2] + (4, 4))
    suffix, acc = [None] * P, eye  # A_p = M_{P-1} ⋯ M_{p+1}
    for p in range(P - 1, -1, -1):
        suffix[p] = acc
        acc = acc @ pos[:, :, p]
    prefix, acc = [], eye  # B_p = M_{p-1} ⋯ M_0
    for p in range(P):
        prefix.append(acc)
        acc = pos[:, :, p] @ acc
    A, B = torch.stack(suffix, dim=2), torch.stack(prefix, dim=2)  # (R, M, P, 4, 4)
    Ep = A.mT[:, :, None] @ E[:, :, :, None] @ B.mT[:, :, None]  # Aᵀ E Bᵀ: (R, M, J, P, 4, 4)
    R, M, J = E.shape[:3]
    vals = torch.einsum("rmnpx,mpcx->rmpnc", Ep.reshape(R, M, J, P, 16), C.reshape(M, P, 3, 16))  # (R, M, P, J, 3)
    coef[:, member[:, None], slots] = vals
