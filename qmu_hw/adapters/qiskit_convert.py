"""The project IR as a Qiskit ``QuantumCircuit`` (used by the Aer and IBM adapters).

Our qubit q is Qiskit's virtual qubit q and is measured into classical bit ``n-1-q``, so the
integer value of a Qiskit bitstring equals our basis-state index (qubit 0 most significant).
"""

from __future__ import annotations

import numpy as np

from ..core.circuit import Circuit

_1Q = {"RX": "rx", "RY": "ry", "RZ": "rz", "H": "h", "X": "x", "Y": "y", "Z": "z", "S": "s", "SDG": "sdg"}
ONE_QUBIT_GATES = tuple(_1Q.values())
TWO_QUBIT_GATES = ("cz", "cx")


def to_qiskit(circuit: Circuit, basis: str | None = None, measure: bool = True):
    """``(QuantumCircuit, ParameterVector)``: symbolic parameters, optional basis change
    (``basis[q]`` in X/Y rotates qubit q so that Z-measurement reads that Pauli) and
    measurements."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    n = circuit.n_qubits
    pv = ParameterVector("p", circuit.n_params)
    qc = QuantumCircuit(n, n if measure else 0, name=circuit.name)
    for g in circuit.gates:
        if g.name == "CZ":
            qc.cz(*g.qubits)
        elif g.name == "CNOT":
            qc.cx(*g.qubits)
        elif g.is_rotation:
            if g.param is None:
                angle = g.offset
            else:
                angle = g.coeff * pv[g.param] if g.coeff != 1.0 else pv[g.param]
                angle = angle + g.offset if g.offset else angle
            getattr(qc, _1Q[g.name])(angle, g.qubits[0])
        else:
            getattr(qc, _1Q[g.name])(g.qubits[0])
    for q, c in enumerate(basis or ""):
        if c == "X":
            qc.h(q)
        elif c == "Y":
            qc.sdg(q)
            qc.h(q)
    if measure:
        qc.measure(list(range(n)), [n - 1 - q for q in range(n)])
    return qc, pv


def counts_to_array(counts: list[dict], n_qubits: int) -> np.ndarray:
    """Qiskit counts dicts (bitstrings or hex keys) → ``(B, 2**n)`` integer array."""
    out = np.zeros((len(counts), 2**n_qubits), dtype=np.int64)
    for i, c in enumerate(counts):
        for key, v in c.items():
            k = key.replace(" ", "")
            out[i, int(k, 16) if k.startswith("0x") else int(k, 2)] += v
    return out


def measured_physical_qubits(tqc, n_qubits: int) -> list[int]:
    """Physical qubit measured into each classical bit 0..n-1 of a transpiled circuit."""
    phys = [-1] * n_qubits
    for inst in tqc.data:
        if inst.operation.name == "measure":
            q = tqc.find_bit(inst.qubits[0]).index
            c = tqc.find_bit(inst.clbits[0]).index
            phys[c] = q
    return phys
