"""Batched torch statevector simulation of the project IR.

A circuit compiles once (cached) into alternating blocks:

* a *rotation block*: a run of single-qubit gates, stored per position so that every
  qubit's k-th gate is built for all qubits and rows in one vectorised expression
  (``R = F (cos(θ/2) I − i sin(θ/2) σ)``);
* a *phase-permutation block*: a run of CZ/CNOTs composed into one
  ``ψ'[i] = phase[i] ψ[perm[i]]``.

Execution fuses what the measurements in ARCHITECTURE.md say pays: the first rotation
block from |0…0⟩ is a product state (outer products, no matrix), and consecutive blocks
that do not depend on the batch row (the trained layers, when weights are shared) become
one ``D × D`` matrix applied with a single matmul when the batch is large enough for that to
pay (:func:`fuse_pays`). The exact backend runs this per observable's light cone
(:mod:`.sv_cones`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..core.circuit import FIXED_MATRICES, ROTATION_GENERATORS, Circuit, Gate, two_qubit_phase_perm

FUSE_MAX_QUBITS = 10  # a fused D×D complex128 matrix is 16 MiB at 10 qubits
# Fusing batch-free blocks into one D×D matrix costs ~D² per block to build and B·D² to apply,
# against ~B·D·n unfused: it pays only with enough rows per amplitude (B = 32 backprop step of
# hqml(n, 2), fused/unfused time: 0.83 at 4 qubits, 0.87 at 6, 0.95 at 8, 9.9 at 10).
FUSE_MIN_ROWS_PER_AMPLITUDE = 0.125


def fuse_pays(n_qubits: int, rows: int) -> bool:
    """Whether batch-free blocks are fused into one matrix for ``rows`` rows on ``n_qubits``."""
    return n_qubits <= FUSE_MAX_QUBITS and rows >= FUSE_MIN_ROWS_PER_AMPLITUDE * 2**n_qubits


@dataclass(frozen=True)
class RotationBlock:
    """``slots[j, q]`` is the angle slot of qubit q's j-th gate (-1: none or fixed)."""

    slots: np.ndarray  # (k, n) int
    generators: np.ndarray  # (k, n, 2, 2) complex
    fixed: np.ndarray | None  # (k, n, 2, 2) complex, or None when all are rotations
    slot_set: frozenset
    has_gate: np.ndarray  # (k, n) bool: a gate (rotation or fixed) stands at that position


@dataclass(frozen=True)
class PhasePermBlock:
    perm: np.ndarray  # (D,) int
    phase: np.ndarray  # (D,) complex


@dataclass(frozen=True)
class Plan:
    n_qubits: int
    n_slots: int
    blocks: tuple


def _rotation_block(n: int, gates: list[tuple[str, int, int | None]]) -> RotationBlock:
    """``gates``: (name, qubit, slot or None for fixed gates) in time order."""
    per_qubit: list[list[tuple[str, int | None]]] = [[] for _ in range(n)]
    for name, q, slot in gates:
        per_qubit[q].append((name, slot))
    k = max(len(v) for v in per_qubit)
    slots = -np.ones((k, n), dtype=np.int64)
    gens = np.zeros((k, n, 2, 2), dtype=np.complex128)
    fixed = np.tile(np.eye(2, dtype=np.complex128), (k, n, 1, 1))
    any_fixed = False
    for q, seq in enumerate(per_qubit):
        for j, (name, slot) in enumerate(seq):
            if slot is None:
                fixed[j, q] = FIXED_MATRICES[name]
                any_fixed = True
            else:
                slots[j, q] = slot
                gens[j, q] = ROTATION_GENERATORS[name]
    has_gate = np.zeros((k, n), dtype=bool)
    for q, seq in enumerate(per_qubit):
        has_gate[: len(seq), q] = True
    return RotationBlock(
        slots, gens, fixed if any_fixed else None, frozenset(slots[slots >= 0].tolist()), has_gate
    )


@lru_cache(maxsize=256)
def compile_plan(circuit: Circuit) -> Plan:
    """Blocks of the circuit (cached per circuit structure)."""
    slot_of = {gi: s for s, gi in enumerate(circuit.slots)}
    entries = tuple((g.name, g.qubits, slot_of.get(gi)) for gi, g in enumerate(circuit.gates))
    return plan_of(circuit.n_qubits, circuit.n_slots, entries)


def plan_of(n: int, n_slots: int, entries: tuple) -> Plan:
    """Blocks of a gate list ``(name, qubits, slot or None)`` on ``n`` qubits (a circuit, or
    one observable's light cone with local qubits; slots index the angle columns)."""
    blocks: list = []
    pending_1q: list[tuple[str, int, int | None]] = []
    pending_pp: tuple[np.ndarray, np.ndarray] | None = None

    def flush_1q():
        nonlocal pending_1q
        if pending_1q:
            blocks.append(_rotation_block(n, pending_1q))
            pending_1q = []

    def flush_pp():
        nonlocal pending_pp
        if pending_pp is not None:
            blocks.append(PhasePermBlock(*pending_pp))
            pending_pp = None

    for name, qubits, slot in entries:
        if len(qubits) == 1:
            flush_pp()
            pending_1q.append((name, qubits[0], slot))
        else:
            flush_1q()
            perm, phase = two_qubit_phase_perm(Gate(name, tuple(qubits)), n)
            if pending_pp is None:
                pending_pp = (perm, phase)
            else:  # apply A then B: ψ''[i] = pb[i] pa[pb_perm[i]] ψ[pa_perm[pb_perm[i]]]
                pa_perm, pa_phase = pending_pp
                pending_pp = (pa_perm[perm], phase * pa_phase[perm])
    flush_1q()
    flush_pp()
    return Plan(n, n_slots, tuple(blocks))


def _block_matrices(block: RotationBlock, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Per-qubit fused 2×2 matrices of a rotation block: ``(R, n, 2, 2)``.

    ``cos``/``sin`` are ``(R, G+1)``; the last column (angle 0) serves "no gate". Every
    position is built at once in real arithmetic (``R = c I + s Im σ − i s Re σ``): on the
    many rows of a parameter-shift request this build, not the state update, dominated.
    """
    m = position_matrices(block, cos, sin)
    out = m[:, 0]
    for j in range(1, m.shape[1]):
        out = m[:, j] @ out
    return out


def position_matrices(block: RotationBlock, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The 2×2 matrices of every qubit's gates in the block: ``(R, k, n, 2, 2)``."""
    dev = cos.device
    slots = torch.as_tensor(np.where(block.slots < 0, cos.shape[1] - 1, block.slots), device=dev)
    c = cos[:, slots][..., None, None]  # (R, k, n, 1, 1)
    s = sin[:, slots][..., None, None]
    gens = torch.as_tensor(block.generators, device=dev)
    eye = torch.eye(2, dtype=cos.dtype, device=dev)
    m = torch.complex(c * eye + s * gens.imag.to(cos.dtype), -s * gens.real.to(cos.dtype))
    return m if block.fixed is None else torch.as_tensor(block.fixed, device=dev).to(m.dtype) @ m


def _kron_all(mats: torch.Tensor) -> torch.Tensor:
    """``(n, 2, 2) -> (D, D)``, qubit 0 most significant."""
    full = mats[0]
    for q in range(1, mats.shape[0]):
        full = torch.kron(full, mats[q])
    return full


def _apply_1q(state: torch.Tensor, mats: torch.Tensor, n: int) -> torch.Tensor:
    """Apply per-row, per-qubit 2×2 matrices ``(R, n, 2, 2)`` to ``state (B, D)``."""
    B = state.shape[0]
    for q in range(n):
        s = state.reshape(B, 2**q, 2, 2 ** (n - q - 1))
        m = mats[:, q]
        if m.shape[0] == 1:
            s = torch.einsum("ij,bajc->baic", m[0], s)
        else:
            s = torch.einsum("bij,bajc->baic", m, s)
        state = s.reshape(B, -1)
    return state


def simulate(
    plan: Plan,
    angles: torch.Tensor,
    shared_angles: torch.Tensor | None = None,
    shared_slots: frozenset = frozenset(),
) -> torch.Tensor:
    """Final statevectors ``(B, D)`` (complex).

    Args:
        plan: compiled circuit.
        angles: ``(B, G)`` per-row angles (float64/float32; may require grad).
        shared_angles: ``(G,)`` angles identical for every row, used for every block whose
            slots all lie in ``shared_slots``; such blocks fuse into one batch-free matrix.
    """
    n = plan.n_qubits
    B = angles.shape[0]
    cdtype = torch.complex128 if angles.dtype == torch.float64 else torch.complex64
    zero = angles.new_zeros(B, 1)
    half = torch.cat([angles, zero], dim=1) * 0.5
    cos_b, sin_b = torch.cos(half), torch.sin(half)
    if shared_angles is not None:
        hs = torch.cat([shared_angles.reshape(1, -1), zero[:1]], dim=1) * 0.5
        cos_s, sin_s = torch.cos(hs), torch.sin(hs)

    state = None
    fused = None  # a pending batch-free D×D matrix
    fuse = fuse_pays(n, B)

    def flush(state):
        nonlocal fused
        if fused is not None:
            state = state @ fused.T
            fused = None
        return state

    for bi, block in enumerate(plan.blocks):
        if isinstance(block, RotationBlock):
            shared = shared_angles is not None and block.slot_set <= shared_slots
            mats = _block_matrices(block, cos_s, sin_s) if shared else _block_matrices(block, cos_b, sin_b)
            mats = mats.to(cdtype)
            if state is None and bi == 0:
                # Product-state prefix: column 0 of each qubit's matrix, then outer products.
                vecs = mats[..., 0]  # (R, n, 2)
                st = vecs[:, 0]
                for q in range(1, n):
                    st = (st[:, :, None] * vecs[:, q, None, :]).reshape(st.shape[0], -1)
                state = st.expand(B, -1) if st.shape[0] == 1 else st
            elif shared and fuse:
                u = _kron_all(mats[0])
                fused = u if fused is None else u @ fused
            else:
                state = _apply_1q(flush(state), mats, n)
        else:
            if state is None:
                state = _zero_state(B, n, cdtype, angles.device)
            perm = torch.as_tensor(block.perm, device=angles.device)
            phase = torch.as_tensor(block.phase, device=angles.device).to(cdtype)
            if fused is not None:
                fused = phase[:, None] * fused[perm, :]
            else:
                state = phase * state[:, perm]
    if state is None:
        state = _zero_state(B, n, cdtype, angles.device)
    return flush(state)


def _zero_state(B: int, n: int, dtype, device) -> torch.Tensor:
    st = torch.zeros(B, 2**n, dtype=dtype, device=device)
    st[:, 0] = 1
    return st


def pauli_expectations(state: torch.Tensor, labels: tuple[str, ...], coeffs: torch.Tensor) -> torch.Tensor:
    """Exact ⟨ψ|P|ψ⟩ for each label: ``(B, D) -> (B, O)`` (real, differentiable)."""
    n = int(np.log2(state.shape[1]))
    return _expectations(state, labels, n) * coeffs


def _expectations(state: torch.Tensor, labels: tuple[str, ...], n: int) -> torch.Tensor:
    from ..core.observables import pauli_phase_perm, z_signs

    diag = [i for i, lab in enumerate(labels) if all(c in "IZ" for c in lab)]
    out = [None] * len(labels)
    if diag:
        probs = state.real**2 + state.imag**2
        signs = torch.as_tensor(z_signs([labels[i] for i in diag], n), dtype=probs.dtype, device=state.device)
        vals = probs @ signs
        for j, i in enumerate(diag):
            out[i] = vals[:, j]
    for i, lab in enumerate(labels):
        if out[i] is None:
            perm, phase = pauli_phase_perm(lab)
            ph = torch.as_tensor(phase, device=state.device).to(state.dtype)
            out[i] = (state.conj() * ph * state[:, torch.as_tensor(perm)]).sum(dim=1).real
    return torch.stack(out, dim=1)


def rotate_to_basis(state: torch.Tensor, basis: str) -> torch.Tensor:
    """Rotate so that measuring Z on each qubit measures ``basis[q]`` (X: H, Y: H·S†)."""
    n = len(basis)
    if all(c in "IZ" for c in basis):
        return state
    mats = np.tile(np.eye(2, dtype=np.complex128), (1, n, 1, 1))
    for q, c in enumerate(basis):
        if c == "X":
            mats[0, q] = FIXED_MATRICES["H"]
        elif c == "Y":
            mats[0, q] = FIXED_MATRICES["H"] @ FIXED_MATRICES["SDG"]
    return _apply_1q(state, torch.as_tensor(mats, device=state.device).to(state.dtype), n)


def torch_angles(circuit: Circuit, inputs: torch.Tensor, weights: torch.Tensor):
    """Differentiable slot angles of ``circuit`` for the backprop engines.

    Returns ``(angles (B, G), shared (G,), shared_slots)``: ``shared`` holds the angles of
    the slots that do not depend on the row (weights and constant rotations; input slots
    are 0 there) and ``shared_slots`` names them, for :func:`simulate`'s fusion. Angles are
    ``coeff * param + offset``; constant rotations read no parameter.
    """
    B = inputs.shape[0]
    dtype = inputs.dtype
    w = weights.reshape(-1).to(dtype)
    full = torch.cat([inputs, w.expand(B, -1)], dim=1)
    ps = torch.as_tensor(circuit.param_slots)
    sp = torch.as_tensor(circuit.slot_params[circuit.param_slots])
    coeffs = torch.as_tensor(circuit.slot_coeffs[circuit.param_slots], dtype=dtype)
    offsets = torch.as_tensor(circuit.slot_offsets, dtype=dtype)
    angles = offsets.expand(B, -1).index_add(1, ps, full[:, sp] * coeffs)
    row_free = torch.cat([inputs.new_zeros(circuit.n_inputs), w])
    shared = offsets.index_add(0, ps, row_free[sp] * coeffs)
    shared_slots = frozenset(circuit.weight_slots.tolist()) | frozenset(
        np.flatnonzero(circuit.slot_params < 0).tolist()
    )
    return angles, shared, shared_slots
