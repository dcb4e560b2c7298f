"""Independent reference: the same IR circuit executed by PennyLane's default.qubit."""

from __future__ import annotations

import numpy as np
import torch

from qmu_hw.core.circuit import Circuit


def _pl_ops(qml, circuit: Circuit, params):
    for g in circuit.gates:
        w = list(g.qubits)
        if g.is_rotation:
            getattr(qml, g.name)(g.coeff * params[g.param], wires=w[0])
        elif g.name == "CNOT":
            qml.CNOT(wires=w)
        elif g.name == "CZ":
            qml.CZ(wires=w)
        else:
            {"H": qml.Hadamard, "X": qml.PauliX, "Y": qml.PauliY, "Z": qml.PauliZ, "S": qml.S,
             "SDG": lambda wires: qml.adjoint(qml.S)(wires=wires)}[g.name](wires=w[0])


def _pl_obs(qml, label: str):
    ops = {"X": qml.PauliX, "Y": qml.PauliY, "Z": qml.PauliZ}
    terms = [ops[c](q) for q, c in enumerate(label) if c != "I"]
    if not terms:
        return qml.Identity(0)
    out = terms[0]
    for t in terms[1:]:
        out = out @ t
    return out


def pennylane_values_and_jacobian(circuit: Circuit, params: np.ndarray, labels=None):
    """Values ``(B, O)`` and Jacobian ``(B, O, P)`` from PennyLane + torch autograd."""
    import pennylane as qml

    labels = labels or ["".join("Z" if q == k else "I" for q in range(circuit.n_qubits))
                        for k in range(circuit.n_qubits)]
    dev = qml.device("default.qubit", wires=circuit.n_qubits)

    @qml.qnode(dev, interface="torch", diff_method="backprop")
    def f(p):
        _pl_ops(qml, circuit, p)
        return [qml.expval(_pl_obs(qml, lab)) for lab in labels]

    vals, jacs = [], []
    for row in params:
        p = torch.tensor(row, dtype=torch.float64, requires_grad=True)
        fn = lambda p: torch.stack(f(p))  # noqa: E731
        vals.append(fn(p).detach().numpy())
        jacs.append(torch.autograd.functional.jacobian(fn, p).numpy())
    return np.array(vals), np.array(jacs)
