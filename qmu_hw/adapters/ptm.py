"""Pauli-transfer matrices (PTMs) of the gates and noise channels the noisy engine models.

A state is the real vector ``r_P = Tr(P ρ)`` over Pauli strings (``I X Y Z`` per qubit,
qubit 0 most significant), so ``|0⟩`` is ``(1, 0, 0, 1)`` per qubit and ``⟨P⟩`` is one entry.
A channel is a real matrix ``R[out, in]``; a 2-qubit one is ``16 × 16`` with the first qubit
as the more significant factor. Noise channels follow Aer's conventions exactly
(``depolarizing_error``: ``ρ → (1−p) ρ + p I/d``; ``thermal_relaxation_error`` at zero
temperature; ``QuantumError.compose``: the argument is applied after).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..core.circuit import FIXED_MATRICES, Gate, two_qubit_phase_perm

PAULIS = np.stack([np.eye(2), FIXED_MATRICES["X"], FIXED_MATRICES["Y"], FIXED_MATRICES["Z"]]).astype(
    np.complex128
)
AXIS = {"RX": 1, "RY": 2, "RZ": 3}

# Rotation about Pauli a by θ: R = I + sinθ K_a + (1 − cosθ) K_a²  (Rodrigues), with K_a the
# generator of the plane rotation that turns b into c for cyclic (a, b, c). Index 0: no rotation.
K_TABLE = np.zeros((4, 4, 4))
for _a, (_b, _c) in {1: (2, 3), 2: (3, 1), 3: (1, 2)}.items():
    K_TABLE[_a, _c, _b] = 1.0
    K_TABLE[_a, _b, _c] = -1.0
K2_TABLE = K_TABLE @ K_TABLE


def unitary_ptm(u: np.ndarray) -> np.ndarray:
    """PTM of a 1- or 2-qubit unitary: ``R_ij = Tr(P_i U P_j U†) / d``."""
    d = u.shape[0]
    basis = PAULIS if d == 2 else np.einsum("iab,jcd->ijacbd", PAULIS, PAULIS).reshape(16, 4, 4)
    return (np.einsum("iab,bc,jcd,ad->ij", basis, u, basis, u.conj()) / d).real


@lru_cache(maxsize=16)
def fixed_1q_ptm(name: str) -> np.ndarray:
    return unitary_ptm(FIXED_MATRICES[name])


@lru_cache(maxsize=8)
def two_qubit_ptm(name: str) -> np.ndarray:
    """``16 × 16`` PTM of CZ / CNOT (first qubit = control)."""
    perm, phase = two_qubit_phase_perm(Gate(name, (0, 1)), 2)
    u = np.zeros((4, 4), dtype=np.complex128)
    u[np.arange(4), perm] = phase
    return unitary_ptm(u)


def depolarizing_ptm(p: float, n_qubits: int) -> np.ndarray:
    """Aer ``depolarizing_error(p, n)``: every non-identity Pauli scaled by ``1 − p``."""
    d = np.full(4**n_qubits, 1.0 - p)
    d[0] = 1.0
    return np.diag(d)


def thermal_relaxation_ptm(t1: float, t2: float, time: float) -> np.ndarray:
    """Aer ``thermal_relaxation_error(t1, t2, time)`` at zero excited population: amplitude
    and phase damping. Non-unital: ``I`` maps to ``I + (1 − e^{−t/T1}) Z`` (decay to |0⟩)."""
    if t2 > 2 * t1 + 1e-12:
        raise ValueError(f"T2 must be <= 2·T1, got T1={t1}, T2={t2}")
    e1 = math.exp(-time / t1) if math.isfinite(t1) and t1 > 0 else 1.0
    e2 = math.exp(-time / t2) if math.isfinite(t2) and t2 > 0 else 1.0
    r = np.diag([1.0, e2, e2, e1])
    r[3, 0] = 1.0 - e1
    return r


def average_gate_fidelity(ptm: np.ndarray) -> float:
    """Average gate fidelity of a channel given by its PTM (``d·F_pro + 1)/(d + 1)``)."""
    d = int(round(math.sqrt(ptm.shape[0])))
    return (np.trace(ptm) / d + 1) / (d + 1)


def readout_functional(p01: float, p10: float) -> np.ndarray:
    """The ±1 readout of Z after confusion, as a row on ``(I, X, Y, Z)``:
    ``E[s] = (p10 − p01) + (1 − p01 − p10) ⟨Z⟩``."""
    return np.array([p10 - p01, 0.0, 0.0, 1.0 - p01 - p10])


def is_monomial(r: np.ndarray, tol: float = 1e-14) -> bool:
    """One nonzero per row and column (a signed, scaled permutation: Clifford + Pauli noise)."""
    nz = np.abs(r) > tol
    return bool((nz.sum(axis=0) == 1).all() and (nz.sum(axis=1) == 1).all())
