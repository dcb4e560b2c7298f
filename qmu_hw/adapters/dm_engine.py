"""Batched noisy simulation in the Pauli-transfer-matrix (PTM) picture.

The noise model is the one Aer builds for the ``depolarizing`` profiles (see
``aer.parametric_noise_model``): after each 1-qubit gate ``ρ → (1−p1) ρ + p1 I/2 ⊗ Tr_q ρ``,
after each 2-qubit gate the same with ``p2`` and ``I/4``; readout confusion is applied to the
outcome probabilities by the backend.

Why PTM: the density matrix becomes a real vector of ``4**n`` Pauli expectations, a gate a
real orthogonal matrix, and depolarizing a diagonal one — so a qubit's whole run of noisy
rotations fuses into one 4×4 matrix per row, built for all rows and qubits at once, and an
entangling layer of CZ+noise (no parameters) fuses into one cached matrix. This mirrors the
statevector engine's block structure and is what makes noise-ladder sweeps affordable.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..core.circuit import FIXED_MATRICES, Circuit, two_qubit_phase_perm
from .torch_engine import RotationBlock, compile_plan

CHUNK_BYTES = 256 * 2**20
FUSE_MAX_QUBITS = 5  # a fused 4^n × 4^n float64 matrix is 8 MiB at 5 qubits

_PAULIS = np.stack([np.eye(2), FIXED_MATRICES["X"], FIXED_MATRICES["Y"], FIXED_MATRICES["Z"]]).astype(np.complex128)


def _ptm_1q(u: torch.Tensor) -> torch.Tensor:
    """``(..., 2, 2)`` unitaries → ``(..., 4, 4)`` real PTMs, ``R_ij = ½ Tr(P_i U P_j U†)``."""
    P = torch.as_tensor(_PAULIS, device=u.device).to(u.dtype)
    r = torch.einsum("iab,...bc,jcd,...ad->...ij", P, u, P, u.conj())
    return 0.5 * r.real


@lru_cache(maxsize=64)
def _ptm_2q(name: str, p2: float) -> np.ndarray:
    """PTM of a 2-qubit gate followed by 2-qubit depolarizing: ``(4, 4, 4, 4)``
    indexed ``[out_a, out_b, in_a, in_b]``."""
    from ..core.circuit import Gate

    perm, phase = two_qubit_phase_perm(Gate(name, (0, 1)), 2)
    U = np.zeros((4, 4), dtype=np.complex128)
    U[np.arange(4), perm] = phase
    P2 = np.einsum("iab,jcd->ijacbd", _PAULIS, _PAULIS).reshape(16, 4, 4)
    R = 0.25 * np.einsum("iab,bc,jcd,ad->ij", P2, U, P2, U.conj()).real
    noise = np.full(16, 1 - p2)
    noise[0] = 1.0
    return (noise[:, None] * R).reshape(4, 4, 4, 4)


def _apply_1q(state: torch.Tensor, mats: torch.Tensor, n: int) -> torch.Tensor:
    """Per-row, per-qubit ``(R, n, 4, 4)`` PTMs on ``state (B, 4**n)``."""
    B = state.shape[0]
    for q in range(n):
        s = state.reshape(B, 4**q, 4, 4 ** (n - q - 1))
        m = mats[:, q]
        s = torch.einsum("ij,bajc->baic", m[0], s) if m.shape[0] == 1 else torch.einsum("bij,bajc->baic", m, s)
        state = s.reshape(B, -1)
    return state


def _apply_2q(state: torch.Tensor, R: torch.Tensor, a: int, b: int, n: int) -> torch.Tensor:
    B = state.shape[0]
    t = state.reshape((B,) + (4,) * n)
    t = torch.tensordot(t, R, dims=([1 + a, 1 + b], [2, 3]))  # new axes appended at the end
    t = torch.movedim(t, (-2, -1), (1 + a, 1 + b))
    return t.reshape(B, -1)


@lru_cache(maxsize=64)
def _entangler_matrix(gates: tuple, n: int, p2: float) -> np.ndarray | None:
    """A run of CZ/CNOT+noise as one ``4^n × 4^n`` matrix (None past FUSE_MAX_QUBITS)."""
    if n > FUSE_MAX_QUBITS:
        return None
    m = torch.eye(4**n, dtype=torch.float64)
    for name, (a, b) in gates:
        m = _apply_2q(m, torch.as_tensor(_ptm_2q(name, p2)), a, b, n)
    return m.numpy()  # row k is the image of basis vector k, so ``state @ m`` applies it


_AXIS = {"X": 1, "Y": 2, "Z": 3}
_PLANE = {1: (2, 3), 2: (3, 1), 3: (1, 2)}  # rotation about a turns b → c: (a, b, c) cyclic
_block_cache: dict[int, tuple] = {}  # id → (block, tables); the block is kept to pin its id


def _position_tables(block: RotationBlock) -> list[tuple]:
    """Per position: ``(axis (n,) int 0=none, slot (n,), fixed PTMs {q: 4×4})`` (cached)."""
    key = id(block)
    if key not in _block_cache or _block_cache[key][0] is not block:
        k, n = block.slots.shape
        tables = []
        for j in range(k):
            axis = np.zeros(n, dtype=np.int64)
            fixed = {}
            for q in range(n):
                if block.slots[j, q] >= 0:
                    g = block.generators[j, q]
                    axis[q] = next(a for name, a in _AXIS.items() if np.allclose(g, FIXED_MATRICES[name]))
                elif block.has_gate[j, q]:
                    fixed[q] = _ptm_1q(torch.as_tensor(block.fixed[j, q])).numpy()
            tables.append((axis, block.slots[j], fixed))
        _block_cache[key] = (block, tables)
    return _block_cache[key][1]


def _rotation_ptms(block: RotationBlock, angles: torch.Tensor, p1: float) -> torch.Tensor:
    """Each qubit's run of noisy gates fused: ``(R, n, 4, 4)``. A rotation's PTM is the
    identity on I and its axis, and a plane rotation by θ on the other two Paulis."""
    R, n = angles.shape[0], block.slots.shape[1]
    noise = torch.tensor([1.0, 1 - p1, 1 - p1, 1 - p1], dtype=torch.float64)
    out = None
    for j, (axis, slots, fixed) in enumerate(_position_tables(block)):
        m = torch.eye(4, dtype=torch.float64).repeat(R, n, 1, 1)
        for a in (1, 2, 3):
            qs = np.flatnonzero(axis == a)
            if len(qs) == 0:
                continue
            theta = angles[:, slots[qs]]
            c, s_ = torch.cos(theta), torch.sin(theta)
            b, cc = _PLANE[a]
            m[:, qs, b, b] = c
            m[:, qs, cc, cc] = c
            m[:, qs, cc, b] = s_
            m[:, qs, b, cc] = -s_
        for q, ptm in fixed.items():
            m[:, q] = torch.as_tensor(ptm)
        has = torch.as_tensor(block.has_gate[j])
        d = torch.where(has[:, None], noise[None, :], torch.ones(4, dtype=torch.float64))
        m = d[None, :, :, None] * m
        out = m if out is None else m @ out
    return out


@lru_cache(maxsize=16)
def _walsh(n: int) -> np.ndarray:
    """``(2^n, 2^n)``: ``p(x) = 2^-n Σ_S ⟨Z_S⟩ (−1)^{|S∧x|}``."""
    idx = np.arange(2**n)
    parity = np.array([[bin(s & x).count("1") & 1 for x in idx] for s in idx])
    return (1 - 2 * parity) / 2**n


@lru_cache(maxsize=16)
def _ztype_indices(n: int) -> np.ndarray:
    """PTM indices of the Z-type strings, ordered like basis indices (I→0, Z→1)."""
    idx = np.arange(2**n)
    out = np.zeros(2**n, dtype=np.int64)
    for q in range(n):
        bit = (idx >> (n - 1 - q)) & 1
        out += bit * 3 * 4 ** (n - 1 - q)
    return out


def _basis_block(basis: str) -> list[tuple[str, int]]:
    out = []
    for q, c in enumerate(basis):
        if c == "X":
            out.append(("H", q))
        elif c == "Y":
            out += [("SDG", q), ("H", q)]
    return out


def noisy_probabilities(circuit: Circuit, angles: np.ndarray, basis: str, p1: float, p2: float) -> np.ndarray:
    """Exact outcome probabilities ``(B, 2**n)`` (before readout) of the noisy circuit."""
    n = circuit.n_qubits
    plan = compile_plan(circuit)
    blocks = plan.blocks
    entanglers = _entangler_gates(circuit)
    B = angles.shape[0]
    chunk = max(1, CHUNK_BYTES // (8 * 4**n * 4))
    zt = torch.as_tensor(_ztype_indices(n))
    walsh = torch.as_tensor(_walsh(n))
    out = np.empty((B, 2**n))
    with torch.no_grad():
        for start in range(0, B, chunk):
            a = torch.as_tensor(angles[start : start + chunk], dtype=torch.float64)
            R = a.shape[0]
            state = None
            ent_i = 0
            for bi, block in enumerate(blocks):
                if isinstance(block, RotationBlock):
                    mats = _rotation_ptms(block, a, p1)
                    if state is None and bi == 0:
                        vecs = mats[..., 0] + mats[..., 3]  # images of |0⟩ = (I + Z)
                        st = vecs[:, 0]
                        for q in range(1, n):
                            st = (st[:, :, None] * vecs[:, q, None, :]).reshape(R, -1)
                        state = st
                    else:
                        state = _apply_1q(_ensure(state, R, n), mats, n)
                else:
                    state = _ensure(state, R, n)
                    gates = entanglers[ent_i]
                    ent_i += 1
                    fused = _entangler_matrix(gates, n, p2)
                    if fused is not None:
                        state = state @ torch.as_tensor(fused)
                    else:
                        for name, (qa, qb) in gates:
                            state = _apply_2q(state, torch.as_tensor(_ptm_2q(name, p2)), qa, qb, n)
            state = _ensure(state, R, n)
            for name, q in _basis_block(basis):
                u = torch.as_tensor(FIXED_MATRICES[name])
                m = _ptm_1q(u) * torch.tensor([1.0, 1 - p1, 1 - p1, 1 - p1], dtype=torch.float64)[:, None]
                mats = torch.eye(4, dtype=torch.float64).repeat(1, n, 1, 1)
                mats[0, q] = m
                state = _apply_1q(state, mats, n)
            out[start : start + R] = (state[:, zt] @ walsh).numpy()
    return out


def _ensure(state, R: int, n: int) -> torch.Tensor:
    if state is not None:
        return state
    st = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    full = st
    for _ in range(1, n):
        full = torch.kron(full, st)
    return full.expand(R, -1)


@lru_cache(maxsize=256)
def _entangler_gates(circuit: Circuit) -> list[tuple]:
    """The 2-qubit gates of each phase-permutation block, in order."""
    runs: list[tuple] = []
    current: list = []
    for g in circuit.gates:
        if len(g.qubits) == 2:
            current.append((g.name, g.qubits))
        elif current:
            runs.append(tuple(current))
            current = []
    if current:
        runs.append(tuple(current))
    return runs
