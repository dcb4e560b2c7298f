"""Backward light cones of Pauli observables and the reduced registers they live on.

In the Heisenberg picture an observable evolves backwards through the noisy circuit; a
qubit on which it stays the identity at every time can be dropped: its gates are
trace-preserving channels and drop out. For a 2-qubit gate with one qubit outside the cone
the exact effective map on the other is the gate's PTM restricted to identity on the
outside qubit (the observable has no other component there, so nothing is lost). The cone
is found by tracking, per qubit, the set of Paulis the evolved observable can contain
(``{I}``, ``{I, Z}``, everything) — so ``⟨Z_q⟩`` skips the final CZ layer (Z commutes with
CZ) and, on the paper's ring circuits, depends on 3 qubits for 2 layers.

A reduced register is scheduled as alternating layers: single-qubit layers (per qubit, a run
of rotations / fixed gates / effective maps, each followed by its noise) and two-qubit
layers (noisy CZ/CNOTs, compiled later into one matrix, one gather or a sequence).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..core.circuit import Circuit
from .ptm import AXIS, K2_TABLE, K_TABLE, fixed_1q_ptm, is_monomial, two_qubit_ptm
from .ptm_noise import PTMNoise

_ALL, _IZ, _I = 0b1111, 0b1001, 0b0001  # letter masks over (I, X, Y, Z)
_LETTER = {"I": 0, "X": 1, "Y": 2, "Z": 3}


@dataclass(frozen=True)
class Op1:
    """A 1-qubit step: ``post @ rotation(axis, angle[slot]) @ pre`` (axis 0: no rotation)."""

    q: int
    axis: int
    slot: int
    pre: np.ndarray
    post: np.ndarray


@dataclass(frozen=True)
class Op2:
    """A noisy 2-qubit gate: ``16 × 16`` PTM on (a, b), a the more significant factor."""

    a: int
    b: int
    ptm: np.ndarray


def basis_gates(basis: str) -> list[tuple[str, int]]:
    out = []
    for q, c in enumerate(basis):
        if c == "X":
            out.append(("H", q))
        elif c == "Y":
            out += [("SDG", q), ("H", q)]
    return out


@lru_cache(maxsize=128)
def circuit_ops(circuit: Circuit, noise: PTMNoise, basis: str = "") -> tuple:
    """The circuit (then the basis change, if any) as noisy steps on global qubits."""
    eye = np.eye(4)
    slot_of = {gi: s for s, gi in enumerate(circuit.slots)}
    ops: list = []
    for gi, g in enumerate(circuit.gates):
        if len(g.qubits) == 2:
            a, b = g.qubits
            ops.append(Op2(a, b, noise.after_2q(a, b) @ two_qubit_ptm(g.name)))
        elif g.is_rotation:
            ops.append(Op1(g.qubits[0], AXIS[g.name], slot_of[gi], eye, noise.after_1q(g.name, g.qubits[0])))
        else:
            ops.append(Op1(g.qubits[0], 0, -1, fixed_1q_ptm(g.name), noise.after_1q(g.name, g.qubits[0])))
    for name, q in basis_gates(basis):
        ops.append(Op1(q, 0, -1, fixed_1q_ptm(name), noise.after_1q(name, q)))
    return tuple(ops)


def _op1_matrix(op: Op1) -> np.ndarray:
    """A representative matrix (generic angle) whose zero pattern is the op's for any angle."""
    rot = np.eye(4) + np.sin(1.0) * K_TABLE[op.axis] + (1 - np.cos(1.0)) * K2_TABLE[op.axis]
    return op.post @ rot @ op.pre


def _reach(mat: np.ndarray, out_mask_rows: np.ndarray) -> np.ndarray:
    """Input indices that feed the given output indices (Heisenberg: ``Rᵀ`` on them)."""
    return np.flatnonzero(np.abs(mat[out_mask_rows]).max(axis=0) > 1e-15)


def _mask_of(letters) -> int:
    m = 0
    for x in letters:
        m |= 1 << int(x)
    return m


def _letters(mask: int) -> np.ndarray:
    return np.array([i for i in range(4) if mask >> i & 1])


def light_cone(ops: tuple, n: int, label: str) -> tuple[int, ...]:
    """Qubits on which the backward-evolved ``label`` is ever not the identity (sorted)."""
    mask = [_mask_of([0, _LETTER[c]]) for c in label]
    ever = {q for q, c in enumerate(label) if c != "I"}
    for op in reversed(ops):
        if isinstance(op, Op1):
            if mask[op.q] != _I:
                mask[op.q] = _mask_of(_reach(_op1_matrix(op), _letters(mask[op.q])))
        else:
            ma, mb = mask[op.a], mask[op.b]
            if ma == _I and mb == _I:
                continue
            rows = (_letters(ma)[:, None] * 4 + _letters(mb)[None, :]).ravel()
            ins = _reach(op.ptm, rows)
            mask[op.a], mask[op.b] = _mask_of(ins // 4), _mask_of(ins % 4)
            ever |= {q for q in (op.a, op.b) if mask[q] != _I}
        ever |= {q for q in range(n) if mask[q] != _I}
    return tuple(sorted(ever))


@dataclass
class OneQLayer:
    axis: np.ndarray  # (P, k) int
    slots: np.ndarray  # (P, k) int, -1: no angle
    pre: np.ndarray  # (P, k, 4, 4)
    post: np.ndarray  # (P, k, 4, 4)


@dataclass
class TwoQLayer:
    ops: list  # [(local a, local b, 16×16 PTM)]

    @property
    def monomial(self) -> bool:
        return all(is_monomial(r) for _, _, r in self.ops)


@dataclass
class Program:
    """A reduced register: ``qubits`` (global, local order) and its scheduled layers."""

    qubits: tuple[int, ...]
    layers: list

    @property
    def signature(self) -> tuple:
        """Programs with equal signatures batch together: the per-member data (angles'
        slots, folded matrices, compiled two-qubit layers) is stacked, positions padded."""
        return (len(self.qubits),) + tuple(
            "1" if isinstance(layer, OneQLayer) else ("2", layer.monomial) for layer in self.layers
        )


def reduced_program(ops: tuple, qubits: tuple[int, ...]) -> Program:
    """The ops restricted to ``qubits`` (a light cone), scheduled as soon as possible."""
    local = {q: i for i, q in enumerate(qubits)}
    k = len(qubits)
    steps: list = []
    for op in ops:
        if isinstance(op, Op1):
            if op.q in local:
                steps.append(Op1(local[op.q], op.axis, op.slot, op.pre, op.post))
        else:
            ia, ib = op.a in local, op.b in local
            if ia and ib:
                steps.append(Op2(local[op.a], local[op.b], op.ptm))
            elif ia or ib:  # restrict to identity on the outside qubit
                r = op.ptm.reshape(4, 4, 4, 4)
                eff = r[:, 0, :, 0] if ia else r[0, :, 0, :]
                steps.append(Op1(local[op.a] if ia else local[op.b], 0, -1, eff, np.eye(4)))
    raw: list = []  # even index: {q: [Op1]}, odd index: [Op2]
    busy = [-1] * k
    for st in steps:
        if isinstance(st, Op1):
            L = max(busy[st.q], 0)
            L += L % 2
        else:
            L = max(busy[st.a], busy[st.b], 1)
            L += 1 - L % 2
        while len(raw) <= L:
            raw.append({} if len(raw) % 2 == 0 else [])
        if isinstance(st, Op1):
            raw[L].setdefault(st.q, []).append(st)
            busy[st.q] = L
        else:
            raw[L].append((st.a, st.b, st.ptm))
            busy[st.a] = busy[st.b] = L
    layers: list = []
    for i, item in enumerate(raw):
        if not item:
            continue
        if i % 2:
            layers.append(TwoQLayer(item))
            continue
        P = max(len(v) for v in item.values())
        axis = np.zeros((P, k), dtype=np.int64)
        slots = -np.ones((P, k), dtype=np.int64)
        pre = np.tile(np.eye(4), (P, k, 1, 1))
        post = pre.copy()
        for q, seq in item.items():
            for j, op in enumerate(seq):
                axis[j, q], slots[j, q], pre[j, q], post[j, q] = op.axis, op.slot, op.pre, op.post
        layers.append(OneQLayer(axis, slots, pre, post))
    return Program(tuple(qubits), layers)


def distinct_rows(flat: np.ndarray, slots: np.ndarray, dedup: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``flat (B, G)`` whose angles differ on ``slots``: the first row of each distinct
    one ``(R',)`` and, per original row, its distinct row ``(B,)``.

    A parameter-shift request shifts one slot per row, so for an observable whose light cone
    holds a quarter of the slots, three quarters of its rows repeat the unshifted one.
    Only for values: under autograd a deduplicated row would take its twins' gradients, so
    differentiable callers pass ``dedup=False`` (every row distinct)."""
    if not dedup:
        idx = np.arange(flat.shape[0])
        return idx, idx
    sub = flat[:, slots]
    # Rows are keyed by one generic projection (a 1-D sort, not a row-wise one), then
    # verified: equal keys must mean equal rows, else the exact row-wise unique decides.
    key = sub @ np.cos(np.arange(1, len(slots) + 1) * 0.7548776662) if len(slots) else np.zeros(len(sub))
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    if not np.array_equal(sub[first[inv.reshape(-1)]], sub):
        _, first, inv = np.unique(sub, axis=0, return_index=True, return_inverse=True)
    return first, inv.reshape(-1)
