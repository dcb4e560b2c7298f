"""Shifted rows from their shifted gate on: the exact engine's parameter-shift path.

A row that differs from its base row only at slot ``s`` has the base row's state up to
``s``'s gate. So each base row is simulated once, gate by gate, and at a shifted slot's gate
its variants (the ± shifts) *spawn*: copies of the base state before the gate, each through
the gate at its own angle, then carried along with every earlier row through the rest of
the circuit (whose angles they share with the base). State ``(X, N, D)``: X = (member, base
row) pairs of a cone group, N = the base row and the spawns so far; every gate is one
batched matmul over all of them, its matrix per (member, base row) broadcast over N.
A slot outside a member's cone is never spawned for it (its shifted rows read the base).
"""

from __future__ import annotations

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
    s = state.reshape(X, N * 2**q, 2, 2 ** (k - q - 1))
    out = torch.matmul(mat if mat.ndim == 2 else mat[:, None], s)
    return out.reshape(X, N, D)


def _spawn_slots(sr: ShiftRows, slot_maps: np.ndarray, G: int) -> tuple[np.ndarray, np.ndarray]:
    """``rank (S,)``: each local slot's spawn index (in gate order; -1: no row shifts it in any
    member), and ``local (M, G)``: each member's local slot of every global slot (-1: none)."""
    M, S = slot_maps.shape
    shifted = np.zeros(G, dtype=bool)
    shifted[sr.slot[sr.slot >= 0]] = True
    spawn = np.flatnonzero(shifted[slot_maps].any(axis=0))
    rank = -np.ones(S, dtype=np.int64)
    rank[spawn] = np.arange(len(spawn))
    local = -np.ones((M, G), dtype=np.int64)
    local[np.arange(M)[:, None], slot_maps] = np.arange(S)
    return rank, local


def _spawn_angles(sr: ShiftRows, flat: np.ndarray, slot_maps: np.ndarray, bases: np.ndarray, rank, local):
    """Each spawn's angles ``(n_spawn, V, M, b)`` for base rows ``bases`` (padded with the
    base's angle where a member or base row has fewer variants), and the base rows' own
    ``(M, b, S)``."""
    M = slot_maps.shape[0]
    spawn = np.flatnonzero(rank >= 0)
    base_local = sr.base[bases][:, slot_maps]  # (b, M, S)
    V = sr.n_variants
    W = np.broadcast_to(base_local[:, :, spawn].transpose(2, 0, 1)[:, None], (len(spawn), V, len(bases), M)).copy()
    pos = -np.ones(len(sr.base), dtype=np.int64)
    pos[bases] = np.arange(len(bases))
    rows = np.flatnonzero((sr.slot >= 0) & (pos[sr.block] >= 0))
    J = local[:, sr.slot[rows]]  # (M, rows)
    mm, ri = np.nonzero(J >= 0)
    r = rows[ri]
    W[rank[J[mm, ri]], sr.variant[r], pos[sr.block[r]], mm] = flat[r, sr.slot[r]]
    return W.transpose(0, 1, 3, 2), base_local.transpose(1, 0, 2)


def _simulate(entries: tuple, k: int, base_half: torch.Tensor, spawn_half: torch.Tensor, rank: np.ndarray,
              gens: torch.Tensor, cdtype) -> torch.Tensor:
    """Final states ``(X, N, 2^k)`` of the base rows (N index 0) and every spawn."""
    X = base_half.shape[0]
    base_m = _rotations(gens, base_half, cdtype)  # (X, S, 2, 2)
    spawn_m = _rotations(gens[torch.as_tensor(np.flatnonzero(rank >= 0))][:, None, None], spawn_half, cdtype)
    state = torch.zeros(X, 1, 2**k, dtype=cdtype)
    state[:, :, 0] = 1
    for name, qubits, slot in entries:
        if len(qubits) == 2:
            perm, phase = two_qubit_phase_perm(Gate(name, tuple(qubits)), k)
            state = state[..., torch.as_tensor(perm)] * torch.as_tensor(phase).to(cdtype)
            continue
        q = qubits[0]
        if slot is None:
            state = _apply(state, torch.as_tensor(FIXED_MATRICES[name]).to(cdtype), q, k)
            continue
        before = state[:, :1]
        state = _apply(state, base_m[:, slot], q, k)
        if rank[slot] >= 0:
            # spawn_m[rank] is (V, X, 2, 2): each variant through the gate from the base's state
            V = spawn_m.shape[1]
            sp = torch.matmul(spawn_m[rank[slot]].transpose(0, 1)[:, :, None],
                              before.reshape(X, 1, 2**q, 2, 2 ** (k - q - 1)))
            state = torch.cat([state, sp.reshape(X, V, 2**k)], dim=1)
    return state


def group_values(entries: tuple, k: int, slot_maps: np.ndarray, labels: tuple[str, ...], flat: np.ndarray,
                 sr: ShiftRows, dtype: torch.dtype, max_bytes: int) -> torch.Tensor:
    """``(M, R, L)``: each member's ``labels`` on every row of ``flat``, from the base rows and
    their spawns, in chunks of base rows of about ``max_bytes`` of state."""
    global calls
    calls += 1
    M, S = slot_maps.shape
    R, Bb, V = flat.shape[0], len(sr.base), sr.n_variants
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    gens = torch.as_tensor(np.stack([ROTATION_GENERATORS[e[0]] for e in entries if e[2] is not None])
                           if S else np.zeros((0, 2, 2), complex))
    rank, local = _spawn_slots(sr, slot_maps, flat.shape[1])
    N = 1 + V * int(np.count_nonzero(rank >= 0))
    per_base = M * N * 2**k * 16 * 4  # state, spawn copy, matmul output and gather alive at once
    chunk = max(1, max_bytes // per_base)
    vals_rows = torch.empty(M, R, len(labels), dtype=dtype)
    for c0 in range(0, Bb, chunk):
        bases = np.arange(c0, min(Bb, c0 + chunk))
        W, base_local = _spawn_angles(sr, flat, slot_maps, bases, rank, local)
        b = len(bases)
        base_half = torch.as_tensor(base_local.reshape(M * b, S), dtype=dtype) * 0.5
        spawn_half = torch.as_tensor(W.reshape(W.shape[0], V, M * b), dtype=dtype) * 0.5
        state = _simulate(entries, k, base_half, spawn_half, rank, gens, cdtype)  # (M·b, N, D)
        vals = te._expectations(state.reshape(-1, 2**k), labels, k).reshape(M, b, N, len(labels))
        rows = np.flatnonzero((sr.block >= c0) & (sr.block < c0 + b))
        slot = sr.slot[rows]
        j = np.where(slot[None, :] >= 0, local[:, np.maximum(slot, 0)], -1)  # (M, rows)
        n_idx = np.where(j >= 0, 1 + rank[np.maximum(j, 0)] * V + sr.variant[rows][None, :], 0)
        flat_idx = (np.arange(M)[:, None] * b + (sr.block[rows] - c0)[None, :]) * N + n_idx
        vals_rows[:, rows] = vals.reshape(M * b * N, -1)[torch.as_tensor(flat_idx)]
    return vals_rows
