"""Shifted rows from their shifted gate on: the exact engine's parameter-shift path.

A row that differs from its base row only at slot ``s`` has the base row's state up to
``s``'s gate, and a rotation at another angle is the base's followed by one about the same
axis: ``G(θ') = G(δ) G(θ) = cos(δ/2) G(θ) − i sin(δ/2) σ G(θ)`` with ``δ = θ' − θ``. The rest
of the circuit ``W`` is linear and shared with the base, so the row's final state is
``cos(δ/2) ψ − i sin(δ/2) W σ ψ_s`` (``ψ``: the base's final state, ``ψ_s``: the base's state
after the gate). So each base row is simulated once, gate by gate, and at each shifted
slot's gate one state ``σ ψ_s`` *spawns* and is carried through the rest with the base —
one state per shifted gate whatever the number of variants (the ± of a shift); each
variant's expectations follow from ``⟨ψ|O|ψ⟩``, ``⟨Wσψ_s|O|Wσψ_s⟩`` and ``Im ⟨ψ|O|Wσψ_s⟩``.
State ``(X, N, D)``: X = (member, base row) pairs of a cone group, N = the base and the
spawns so far; a gate is one batched matmul, its matrix per X broadcast over N. A slot
outside a member's cone never spawns for it (its shifted rows read the base).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..core.circuit import FIXED_MATRICES, ROTATION_GENERATORS, Gate, two_qubit_phase_perm
from . import torch_engine as te
from .sv_shift import ShiftRows

calls = 0  # groups evaluated on this path (tests check that the path is taken)


def _rotations(gens: torch.Tensor, half: torch.Tensor, cdtype) -> torch.Tensor:
    """``exp(-i θ/2 σ)`` for ``half = θ/2`` of shape ``(..., S)`` and ``gens (S, 2, 2)``:
    ``(..., S, 2, 2)`` (``cos I + sin Im σ − i sin Re σ``, built in real arithmetic)."""
    c, s = torch.cos(half)[..., None, None], torch.sin(half)[..., None, None]
    eye = torch.eye(2, dtype=half.dtype)
    return torch.complex(c * eye + s * gens.imag.to(half.dtype), -s * gens.real.to(half.dtype)).to(cdtype)


def _apply(state: torch.Tensor, mat: torch.Tensor, q: int, k: int) -> torch.Tensor:
    """``mat (X, 2, 2)`` (or ``(2, 2)``) on qubit ``q`` of ``state (X, N, 2^k)``."""
    X, N, D = state.shape
    if q == k - 1 and mat.ndim == 3:
        # the last qubit: one (N·D/2 × 2) @ (2 × 2) product per X, not N·D/2 tiny ones (1.5× faster)
        return torch.matmul(state.reshape(X, -1, 2), mat.transpose(1, 2)).reshape(X, N, D)
    s = state.reshape(X, N * 2**q, 2, 2 ** (k - q - 1))
    out = torch.matmul(mat if mat.ndim == 2 else mat[:, None], s)
    return out.reshape(X, N, D)


def _spawn_slots(sr: ShiftRows, slot_maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``rank (S,)``: each local slot's spawn index (in gate order; -1: no row shifts it in any
    member), and ``code (M, G + 1)``: the state row (N index) a row shifted at global slot
    ``g`` reads in member ``m`` is ``code[m, g + 1]`` plus its variant, or the base row (0)
    where ``code`` is 0 (the slot is outside the member's cone; column 0: an unshifted row)."""
    M, S = slot_maps.shape
    G = sr.base.shape[1]
    shifted = np.zeros(G, dtype=bool)
    shifted[sr.slot[sr.slot >= 0]] = True
    spawn = np.flatnonzero(shifted[slot_maps].any(axis=0))
    rank = -np.ones(S, dtype=np.int64)
    rank[spawn] = np.arange(len(spawn))
    code = np.zeros((M, G + 1), dtype=np.int64)
    code[np.arange(M)[:, None], slot_maps + 1] = np.where(rank >= 0, 1 + rank * sr.n_variants, 0)
    return rank, code


def _product_prefix(entries: tuple, k: int, base_m, sig, rank: np.ndarray, cdtype, X: int):
    """The gates before the first two-qubit gate act on a product state: each qubit's rows
    are 2-vectors (its base and the states spawned on it), ``2^k / 2`` times less work per
    gate than on the register. Returns the states ``(X, N, 2^k)`` after them and the number
    of entries consumed."""
    zero = torch.zeros(X, 1, 2, 1, dtype=cdtype)
    zero[:, :, 0] = 1
    vecs = [zero] * k  # per qubit (X, rows on it, 2, 1)
    owner: list[list[int]] = [[] for _ in range(k)]  # per qubit: the spawn rows its rows 1.. belong to
    n_rows, used = 1, 0
    for name, qubits, slot in entries:
        if len(qubits) == 2:
            break
        used += 1
        q = qubits[0]
        if slot is None:
            vecs[q] = torch.matmul(torch.as_tensor(FIXED_MATRICES[name]).to(cdtype), vecs[q])
            continue
        vecs[q] = torch.matmul(base_m[:, slot, None], vecs[q])
        if rank[slot] >= 0:  # σ on the base's vector after the gate
            vecs[q] = torch.cat([vecs[q], torch.matmul(sig[slot], vecs[q][:, :1])], dim=1)
            owner[q].append(1 + rank[slot])
            n_rows = 2 + rank[slot]
    # Outer products with X innermost, (2^q, N, X): 3× faster than with the 2-vectors
    # innermost (torch's broadcast over tiny inner dims), then one transposing copy.
    state = None
    for q in range(k):
        idx = np.zeros(n_rows, dtype=np.int64)  # a row not spawned on q has q's base vector
        idx[owner[q]] = np.arange(1, len(owner[q]) + 1)
        v = vecs[q][..., 0].index_select(1, torch.as_tensor(idx)).permute(2, 1, 0).contiguous()  # (2, N, X)
        state = v if state is None else (state[:, None] * v[None]).reshape(-1, n_rows, X)
    return state.permute(2, 1, 0).contiguous(), used


@lru_cache(maxsize=256)
def _schedule(entries: tuple, k: int) -> tuple:
    """The gates as steps: ``("pp", perm or None, phase)`` for a run of CZ/CNOTs composed into
    one phase-permutation (``None``: diagonal, a CZ run is one multiplication), and
    ``("1q", q, ((name, slot), ...))`` for a run of single-qubit gates on one qubit."""
    steps: list = []
    for name, qubits, slot in entries:
        if len(qubits) == 2:
            perm, phase = two_qubit_phase_perm(Gate(name, tuple(qubits)), k)
            if steps and steps[-1][0] == "pp":
                _, pa, pha = steps[-1]
                pa = np.arange(2**k) if pa is None else pa
                perm, phase = pa[perm], phase * pha[perm]  # earlier run first (as plan_of)
                steps.pop()
            steps.append(("pp", None if np.array_equal(perm, np.arange(2**k)) else perm, phase))
        elif steps and steps[-1][0] == "1q" and steps[-1][1] == qubits[0]:
            steps[-1] = ("1q", qubits[0], steps[-1][2] + ((name, slot),))
        else:
            steps.append(("1q", qubits[0], ((name, slot),)))
    return tuple(steps)


def _run_matrices(run: tuple, base_m, sig, rank: np.ndarray, cdtype):
    """One run of gates on a qubit: its matrix for the rows so far ``(X, 2, 2)`` and, for the
    states spawned inside it (in gate order), ``(X, n_new, 2, 2)``: the gates after the
    spawning one, its σ, the gates up to it (``S_{i+1} σ_i P_{i+1}``)."""
    X = base_m.shape[0]
    mats = [torch.as_tensor(FIXED_MATRICES[name]).to(cdtype).expand(X, 2, 2) if slot is None else base_m[:, slot]
            for name, slot in run]
    prefix = [None]  # prefix[i]: the product of the gates before gate i
    for m in mats:
        prefix.append(m if prefix[-1] is None else m @ prefix[-1])
    suffix = [None] * (len(mats) + 1)  # suffix[i]: the product of the gates from gate i on
    for i in range(len(mats) - 1, -1, -1):
        suffix[i] = mats[i] if suffix[i + 1] is None else suffix[i + 1] @ mats[i]
    new = []
    for i, (_, slot) in enumerate(run):
        if slot is not None and rank[slot] >= 0:
            sp = sig[slot] @ prefix[i + 1]
            new.append(sp if suffix[i + 1] is None else suffix[i + 1] @ sp)
    return prefix[-1], (torch.stack(new, dim=1) if new else None)


def _simulate(entries: tuple, k: int, base_half: torch.Tensor, rank: np.ndarray, gens: torch.Tensor,
              cdtype) -> torch.Tensor:
    """Final states ``(X, 1 + n_spawn, 2^k)``: the base rows' (index 0) and ``W σ ψ_s`` of each
    shifted slot in gate order."""
    X = base_half.shape[0]
    base_m = _rotations(gens, base_half, cdtype)  # (X, S, 2, 2)
    sig = gens.to(cdtype)  # (S, 2, 2): each slot's Pauli
    state, used = _product_prefix(entries, k, base_m, sig, rank, cdtype, X)
    for step in _schedule(entries[used:], k):
        if step[0] == "pp":
            _, perm, phase = step
            if perm is not None:
                state = state[..., torch.as_tensor(perm)]
            state = state * torch.as_tensor(phase).to(cdtype)
            continue
        _, q, run = step
        u, new = _run_matrices(run, base_m, sig, rank, cdtype)
        before = state[:, :1]
        state = _apply(state, u, q, k)
        if new is not None:  # spawned inside the run, from the base's state before it
            sp = torch.matmul(new[:, :, None], before.reshape(X, 1, 2**q, 2, 2 ** (k - q - 1)))
            state = torch.cat([state, sp.reshape(X, new.shape[1], 2**k)], dim=1)
    return state


def _cross(b: torch.Tensor, w: torch.Tensor, labels: tuple[str, ...], k: int) -> torch.Tensor:
    """``Im ⟨b|P|w⟩`` for ``b (X, D)``, ``w (X, n, D)``: ``(X, n, L)``."""
    from ..core.observables import pauli_phase_perm, z_signs

    bc = b.conj()[:, None, :]
    out = []
    for lab in labels:
        if all(c in "IZ" for c in lab):
            signs = torch.as_tensor(z_signs([lab], k)[:, 0]).to(b.dtype)
            out.append(((bc * signs) * w).sum(-1).imag)
        else:
            perm, phase = pauli_phase_perm(lab)
            out.append((bc * torch.as_tensor(phase).to(b.dtype) * w[..., torch.as_tensor(perm)]).sum(-1).imag)
    return torch.stack(out, dim=-1)


def _row_values(state: torch.Tensor, half_delta: torch.Tensor, labels: tuple[str, ...], k: int) -> torch.Tensor:
    """``(X, 1 + n_spawn·V, L)``: the base's values, then each spawn's V variants at
    ``δ/2 = half_delta (n_spawn, V, X)``: ``c² ⟨ψ|O|ψ⟩ + s² ⟨w|O|w⟩ + 2cs Im ⟨ψ|O|w⟩``."""
    X, N, D = state.shape
    b, w = state[:, 0], state[:, 1:]
    ob = te._expectations(b, labels, k)  # (X, L)
    if N == 1:
        return ob[:, None]
    ow = te._expectations(w.reshape(-1, D), labels, k).reshape(X, N - 1, -1)
    cr = _cross(b, w, labels, k)
    hd = half_delta.permute(2, 0, 1)[..., None]  # (X, n_spawn, V, 1)
    c, s = torch.cos(hd), torch.sin(hd)
    var = c * c * ob[:, None, None] + s * s * ow[:, :, None] + 2 * c * s * cr[:, :, None]
    return torch.cat([ob[:, None], var.reshape(X, -1, len(labels))], dim=1)


def group_values(entries: tuple, k: int, slot_maps: np.ndarray, labels: tuple[str, ...], flat: np.ndarray,
                 sr: ShiftRows, dtype: torch.dtype, max_bytes: int) -> torch.Tensor:
    """``(M, R, L)``: each member's ``labels`` on every row of ``flat``, from the base rows and
    their spawns, in chunks of base rows of about ``max_bytes`` of state."""
    global calls
    calls += 1
    M, S = slot_maps.shape
    Bb, V = len(sr.base), sr.n_variants
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    gens = torch.as_tensor(np.stack([ROTATION_GENERATORS[e[0]] for e in entries if e[2] is not None])
                           if S else np.zeros((0, 2, 2), complex))
    rank, code = _spawn_slots(sr, slot_maps)
    spawn = np.flatnonzero(rank >= 0)
    N = 1 + V * len(spawn)
    per_base = M * (1 + len(spawn)) * 2**k * 16 * 4  # state, matmul output, cross terms alive at once
    chunk = max(1, max_bytes // per_base)
    c = code[:, sr.slot + 1]  # (M, R)
    n_idx = c + (c > 0) * sr.variant
    parts = []
    for c0 in range(0, Bb, chunk):
        b = min(Bb, c0 + chunk) - c0
        vals = sr.values[c0 : c0 + b][:, slot_maps]  # (b, M, S, V)
        base = sr.base[c0 : c0 + b][:, slot_maps]  # (b, M, S)
        base_half = torch.as_tensor(base.transpose(1, 0, 2).reshape(M * b, S), dtype=dtype) * 0.5
        spawn_half = torch.as_tensor(vals[:, :, spawn].transpose(2, 3, 1, 0).reshape(len(spawn), V, M * b),
                                     dtype=dtype) * 0.5
        state = _simulate(entries, k, base_half, rank, gens, cdtype)  # (M·b, 1 + n_spawn, D)
        half_delta = spawn_half - base_half[:, torch.as_tensor(spawn)].T[:, None, :]
        parts.append(_row_values(state, half_delta, labels, k).reshape(M, b * N, len(labels)))
    vals = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # (M, Bb·N, L)
    idx = torch.as_tensor(sr.block * N + n_idx)  # (M, R)
    return torch.gather(vals, 1, idx[:, :, None].expand(-1, -1, len(labels)))
