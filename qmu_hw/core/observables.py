"""Pauli-string observables.

A label has one character per qubit, ``label[q]`` acting on qubit q (so ``"ZII"`` is Z on
qubit 0), the same order as the circuit IR.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from .exceptions import InvalidRequestError

PAULIS = "IXYZ"


@dataclass(frozen=True)
class PauliTerm:
    """A Pauli string times a real coefficient."""

    label: str
    coeff: float = 1.0

    def __post_init__(self) -> None:
        label = str(self.label).upper()
        if not label or any(c not in PAULIS for c in label):
            raise InvalidRequestError(f"Pauli label must use only {PAULIS!r}, got {self.label!r}")
        if not np.isfinite(self.coeff):
            raise InvalidRequestError(f"Pauli coefficient must be finite, got {self.coeff}")
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "coeff", float(self.coeff))

    @classmethod
    def from_sparse(cls, ops: Mapping[int, str], n_qubits: int, coeff: float = 1.0) -> PauliTerm:
        """``PauliTerm.from_sparse({0: "Z", 2: "X"}, 3)`` is ``ZIX``."""
        chars = ["I"] * n_qubits
        for q, p in ops.items():
            if not 0 <= q < n_qubits:
                raise InvalidRequestError(f"qubit {q} outside a {n_qubits}-qubit observable")
            chars[q] = p
        return cls("".join(chars), coeff)

    @property
    def n_qubits(self) -> int:
        return len(self.label)

    @property
    def support(self) -> tuple[int, ...]:
        return tuple(q for q, c in enumerate(self.label) if c != "I")

    @property
    def is_diagonal(self) -> bool:
        return all(c in "IZ" for c in self.label)


def z_each(n_qubits: int) -> tuple[PauliTerm, ...]:
    """Z on every qubit, the default readout of the study's models."""
    return tuple(PauliTerm.from_sparse({q: "Z"}, n_qubits) for q in range(n_qubits))


def as_observables(obs: Iterable[PauliTerm | str] | None, n_qubits: int) -> tuple[PauliTerm, ...]:
    """Normalise user input (None, labels or terms) to a tuple of terms of the right width."""
    if obs is None:
        return z_each(n_qubits)
    terms = tuple(o if isinstance(o, PauliTerm) else PauliTerm(o) for o in obs)
    if not terms:
        raise InvalidRequestError("observables must not be empty; pass None for Z on every qubit")
    for t in terms:
        if t.n_qubits != n_qubits:
            raise InvalidRequestError(
                f"observable {t.label!r} has {t.n_qubits} qubits, the circuit has {n_qubits}"
            )
    return terms


def measurement_groups(terms: tuple[PauliTerm, ...]) -> list[tuple[str, list[int]]]:
    """Greedy qubit-wise-commuting groups: ``[(basis_label, [term indices]), ...]``.

    Terms in one group are estimated from the same shots measured in ``basis_label``
    (``I`` positions measured in Z).
    """
    groups: list[tuple[list[str], list[int]]] = []
    for i, t in enumerate(terms):
        for basis, members in groups:
            if all(b == "I" or c == "I" or b == c for b, c in zip(basis, t.label, strict=False)):
                for q, c in enumerate(t.label):
                    if c != "I":
                        basis[q] = c
                members.append(i)
                break
        else:
            groups.append((list(t.label), [i]))
    return [("".join(b), m) for b, m in groups]


def bit_of(index: np.ndarray, qubit: int, n_qubits: int) -> np.ndarray:
    """Bit of ``qubit`` in basis-state indices (qubit 0 is the most significant bit)."""
    return (index >> (n_qubits - 1 - qubit)) & 1


def pauli_phase_perm(label: str) -> tuple[np.ndarray, np.ndarray]:
    """A Pauli string as ``(P ψ)[i] = phase[i] * ψ[perm[i]]`` on ``2**n`` amplitudes."""
    n = len(label)
    idx = np.arange(2**n)
    xmask = 0
    for q, c in enumerate(label):
        if c in "XY":
            xmask |= 1 << (n - 1 - q)
    src = idx ^ xmask
    phase = np.ones(2**n, dtype=np.complex128)
    for q, c in enumerate(label):
        b = bit_of(src, q, n)
        if c == "Z":
            phase *= 1 - 2 * b
        elif c == "Y":  # Y|0> = i|1>, Y|1> = -i|0>
            phase *= 1j * (1 - 2 * b)
    return src, phase


def z_signs(labels: list[str], n_qubits: int) -> np.ndarray:
    """``(D, O)`` matrix of ±1: the eigenvalue of each Z-type string on each basis state.

    Non-Z letters count as Z, i.e. the value after rotating into that letter's basis.
    """
    idx = np.arange(2**n_qubits)
    out = np.ones((2**n_qubits, len(labels)))
    for o, label in enumerate(labels):
        for q, c in enumerate(label):
            if c != "I":
                out[:, o] *= 1 - 2 * bit_of(idx, q, n_qubits)
    return out
