"""The paper's hybrid-QML circuit ("hqml") and its entanglers."""

from __future__ import annotations

from .circuit import Circuit, Gate
from .exceptions import InvalidRequestError

ENTANGLERS = ("ring", "linear", "all", "none")


def entangler_pairs(n_qubits: int, entangler: str) -> list[tuple[int, int]]:
    """CZ pairs of one entangling layer."""
    if entangler == "ring":
        pairs = [(w, w + 1) for w in range(n_qubits - 1)]
        if n_qubits > 2:
            pairs.append((n_qubits - 1, 0))
        return pairs
    if entangler == "linear":
        return [(w, w + 1) for w in range(n_qubits - 1)]
    if entangler == "all":
        return [(a, b) for a in range(n_qubits) for b in range(a + 1, n_qubits)]
    if entangler == "none":
        return []
    raise InvalidRequestError(f"unknown entangler {entangler!r}; expected one of {ENTANGLERS}")


def hqml(n_qubits: int, n_layers: int, entangler: str = "ring") -> Circuit:
    """The paper's circuit: angle encoding, then ``n_layers`` of RX RY RZ + CZ entangler.

    Encoding: qubit w gets RX(x_w) RY(x_w) RZ(x_w) with the same input feature. Layer l:
    RX(θ[l,0,w]) RY(θ[l,1,w]) RZ(θ[l,2,w]) on every qubit w, then CZs.

    Parameters: the ``n_qubits`` inputs first, then θ flattened in (layer, gate, qubit)
    order; ``weight_shape`` is ``(n_layers, 3, n_qubits)``.
    """
    if int(n_qubits) != n_qubits or n_qubits < 1:
        raise InvalidRequestError(f"n_qubits must be a positive integer, got {n_qubits!r}")
    if int(n_layers) != n_layers or n_layers < 0:
        raise InvalidRequestError(f"n_layers must be a non-negative integer, got {n_layers!r}")
    pairs = entangler_pairs(n_qubits, entangler)
    gates: list[Gate] = []
    for w in range(n_qubits):
        for name in ("RX", "RY", "RZ"):
            gates.append(Gate(name, (w,), param=w))
    base = n_qubits
    for layer in range(n_layers):
        for w in range(n_qubits):
            for k, name in enumerate(("RX", "RY", "RZ")):
                gates.append(Gate(name, (w,), param=base + (layer * 3 + k) * n_qubits + w))
        gates.extend(Gate("CZ", p) for p in pairs)
    return Circuit(
        n_qubits,
        tuple(gates),
        n_params=n_qubits + 3 * n_layers * n_qubits,
        n_inputs=n_qubits,
        name=f"hqml-{n_qubits}q{n_layers}l-{entangler}",
        weight_shape=(n_layers, 3, n_qubits),
    )
