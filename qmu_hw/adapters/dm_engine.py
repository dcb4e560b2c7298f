"""Batched torch density-matrix simulation with depolarizing noise after every gate.

The noise model is the one Aer builds for the ``depolarizing`` profiles (see
``aer.parametric_noise_model``): after each 1-qubit gate ``ρ → (1−p1) ρ + p1 I/2 ⊗ Tr_q ρ``,
after each 2-qubit gate the same with ``p2`` and ``I/4``; readout confusion is applied to the
outcome probabilities. Rows are processed in chunks so memory stays bounded.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.circuit import FIXED_MATRICES, ROTATION_GENERATORS, Circuit, two_qubit_phase_perm

CHUNK_BYTES = 256 * 2**20


def _apply_1q(rho: torch.Tensor, u: torch.Tensor, q: int, n: int) -> torch.Tensor:
    """``ρ → U ρ U†`` for per-row ``u (R, 2, 2)`` on qubit q; ``rho (B, D, D)``."""
    B = rho.shape[0]
    a, c = 2**q, 2 ** (n - q - 1)
    r = rho.reshape(B, a, 2, c, a, 2, c)
    if u.shape[0] == 1:
        r = torch.einsum("ij,bxjyzkw,lk->bxiyzlw", u[0], r, u[0].conj())
    else:
        r = torch.einsum("bij,bxjyzkw,blk->bxiyzlw", u, r, u.conj())
    return r.reshape(B, 2**n, 2**n)


def _depolarize(rho: torch.Tensor, qubits: tuple[int, ...], p: float, n: int) -> torch.Tensor:
    """``(1−p) ρ + p · I/2^k ⊗ Tr_qubits ρ`` on the k given qubits."""
    if p == 0:
        return rho
    B = rho.shape[0]
    t = rho.reshape((B,) + (2,) * (2 * n))
    red = t
    # Trace out each qubit (row axis 1+q, column axis 1+n+q), keeping axes as size 1.
    for q in qubits:
        red = torch.diagonal(red, dim1=1 + q, dim2=1 + n + q).sum(-1, keepdim=True)
        red = red.movedim(-1, 1 + q).unsqueeze(1 + n + q)
    eye_shape = [1] * (2 * n + 1)
    eye = torch.ones(1, dtype=rho.dtype, device=rho.device)
    for q in qubits:
        shape = list(eye_shape)
        shape[1 + q], shape[1 + n + q] = 2, 2
        eye = eye * torch.eye(2, dtype=rho.dtype, device=rho.device).reshape(shape)
    mixed = red * eye / (2 ** len(qubits))
    return ((1 - p) * t + p * mixed).reshape(B, 2**n, 2**n)


def _rotation(name: str, angle: torch.Tensor) -> torch.Tensor:
    """``(R,) angles → (R, 2, 2)`` rotation matrices."""
    gen = torch.as_tensor(ROTATION_GENERATORS[name])
    c = torch.cos(angle / 2).to(gen.dtype)[:, None, None]
    s = torch.sin(angle / 2).to(gen.dtype)[:, None, None]
    return c * torch.eye(2, dtype=gen.dtype) - 1j * s * gen


def basis_gates(basis: str) -> list[tuple[str, int]]:
    """The measurement-basis change as gates (noisy, like any other gate on hardware)."""
    out = []
    for q, c in enumerate(basis):
        if c == "X":
            out.append(("H", q))
        elif c == "Y":
            out += [("SDG", q), ("H", q)]
    return out


def noisy_probabilities(
    circuit: Circuit, angles: np.ndarray, basis: str, p1: float, p2: float
) -> np.ndarray:
    """Exact outcome probabilities ``(B, D)`` (before readout) of the noisy circuit."""
    n = circuit.n_qubits
    D = 2**n
    B = angles.shape[0]
    chunk = max(1, CHUNK_BYTES // (16 * D * D * 3))
    out = np.empty((B, D))
    slot_of = {gi: s for s, gi in enumerate(circuit.slots)}
    pp = {gi: two_qubit_phase_perm(g, n) for gi, g in enumerate(circuit.gates) if len(g.qubits) == 2}
    extra = basis_gates(basis)
    with torch.no_grad():
        for start in range(0, B, chunk):
            a = torch.as_tensor(angles[start : start + chunk])
            R = a.shape[0]
            rho = torch.zeros(R, D, D, dtype=torch.complex128)
            rho[:, 0, 0] = 1
            for gi, g in enumerate(circuit.gates):
                if len(g.qubits) == 2:
                    perm, phase = pp[gi]
                    if not np.array_equal(perm, np.arange(D)):
                        perm_t = torch.as_tensor(perm)
                        rho = rho[:, perm_t][:, :, perm_t]
                    ph = torch.as_tensor(phase)
                    rho = ph[:, None] * ph.conj()[None, :] * rho
                    rho = _depolarize(rho, g.qubits, p2, n)
                    continue
                q = g.qubits[0]
                if g.is_rotation:
                    u = _rotation(g.name, a[:, slot_of[gi]])
                else:
                    u = torch.as_tensor(FIXED_MATRICES[g.name])[None]
                rho = _depolarize(_apply_1q(rho, u, q, n), (q,), p1, n)
            for name, q in extra:
                u = torch.as_tensor(FIXED_MATRICES[name])[None]
                rho = _depolarize(_apply_1q(rho, u, q, n), (q,), p1, n)
            out[start : start + R] = torch.diagonal(rho, dim1=1, dim2=2).real.numpy()
    return out
