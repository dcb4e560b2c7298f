"""Circuits: the built-in ansatz and importers from Qiskit, OpenQASM 3 and PennyLane.

``qmu_hw.circuits.hqml(n_qubits, n_layers, entangler)``;
``from_qiskit(qc, inputs=..., weights=...)``, ``from_qasm3(text, inputs=[...], weights=[...])``,
``from_pennylane(qnode_or_tape, inputs=..., weights=...)`` (SDKs imported on call only).
"""

from ..core.ansatz import ENTANGLERS, entangler_pairs, hqml
from ..core.circuit import Circuit, Gate


def from_qiskit(qc, inputs=None, weights=None, name=None) -> Circuit:
    from .qiskit_import import from_qiskit as f

    return f(qc, inputs=inputs, weights=weights, name=name)


def from_qasm3(text, inputs=None, weights=None, name="qasm3") -> Circuit:
    from .qiskit_import import from_qasm3 as f

    return f(text, inputs=inputs, weights=weights, name=name)


def from_pennylane(qnode_or_tape, inputs=None, weights=None, name="pennylane") -> Circuit:
    from .pennylane_import import from_pennylane as f

    return f(qnode_or_tape, inputs=inputs, weights=weights, name=name)


from_qiskit.__doc__ = "See :func:`qmu_hw.circuits.qiskit_import.from_qiskit`."
from_qasm3.__doc__ = "See :func:`qmu_hw.circuits.qiskit_import.from_qasm3`."
from_pennylane.__doc__ = "See :func:`qmu_hw.circuits.pennylane_import.from_pennylane`."

__all__ = ["ENTANGLERS", "Circuit", "Gate", "entangler_pairs", "from_pennylane", "from_qasm3",
           "from_qiskit", "hqml"]
