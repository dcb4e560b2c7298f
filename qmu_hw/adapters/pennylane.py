"""Any PennyLane device by name: rows as one broadcast tape per shot level, one execute.

Parametric noise from the profile is inserted as channels after each gate, in Aer's
convention (Aer's 1-qubit depolarizing p is PennyLane's ``DepolarizingChannel(3p/4)``;
2-qubit depolarizing is a 16-Kraus ``QubitChannel``), and symmetric readout error as a
``BitFlip`` before measurement; noise needs a mixed-state device such as ``default.mixed``.
Basis changes for X/Y observables are PennyLane's own (noiseless) diagonalizing gates.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..core.backend import BaseBackend, RunOutput, check_options
from ..core.contract import Capabilities, EstimateRequest
from ..core.deps import require
from ..core.exceptions import InvalidRequestError
from ..core.profiles import Profile
from .registry import register_adapter
from .sampling import pauli_stderr

OPTION_SCHEMA = {
    "device": "PennyLane device name (default default.qubit; noise needs default.mixed)",
    "device_kwargs": "extra keyword arguments of qml.device",
    "max_qubits": "largest circuit accepted",
}
OPTIONS = set(OPTION_SCHEMA)


def _depol2_kraus(p: float) -> list[np.ndarray]:
    paulis = [np.eye(2), np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.diag([1.0, -1.0])]
    ops = [np.kron(a, b) for a, b in itertools.product(paulis, paulis)]
    return [np.sqrt(1 - 15 * p / 16) * ops[0]] + [np.sqrt(p / 16) * o for o in ops[1:]]


@register_adapter("pennylane")
class PennyLaneBackend(BaseBackend):
    sdk = ("pennylane",)
    extra = "pennylane"
    option_schema = OPTION_SCHEMA

    def __init__(self, profile: Profile, *, options: dict[str, Any] | None = None, native=None,
                 **kw: Any) -> None:
        """``native``: a PennyLane device object given to ``get_backend``; it runs every request
        (its own seed, not the request's; its wires must include 0..n-1)."""
        super().__init__(profile, **kw)
        self.native = native
        require("pennylane", "pennylane", "PennyLane backends")
        options = check_options(profile, options, OPTIONS)
        self.device_name = options.get("device", "default.qubit")
        self.device_kwargs = dict(options.get("device_kwargs", {}))
        self.p1, self.p2, self.readout = profile.parametric_noise("PennyLane")
        noisy = self.p1 or self.p2 or self.readout
        if noisy and self.device_name not in ("default.mixed",):
            raise InvalidRequestError(
                f"backend {profile.name!r}: noise needs a mixed-state device (default.mixed), got {self.device_name!r}"
            )
        max_q = int(options.get("max_qubits", profile.limits.get("max_qubits", 16)))
        self.capabilities = Capabilities(exact=True, sampling=True, noise=profile.describe_noise(),
                                         max_qubits=max_q, backprop=False)

    def _ops(self, circuit, angles: np.ndarray):
        import pennylane as qml

        single = {"RX": qml.RX, "RY": qml.RY, "RZ": qml.RZ, "H": qml.Hadamard, "X": qml.PauliX, "Y": qml.PauliY,
                  "Z": qml.PauliZ, "S": qml.S, "SDG": lambda wires: qml.adjoint(qml.S(wires=wires))}
        slot_of = {gi: s for s, gi in enumerate(circuit.slots)}
        ops = []
        for gi, g in enumerate(circuit.gates):
            if g.name in ("CZ", "CNOT"):
                ops.append((qml.CZ if g.name == "CZ" else qml.CNOT)(wires=list(g.qubits)))
                if self.p2:
                    ops.append(qml.QubitChannel(_depol2_kraus(self.p2), wires=list(g.qubits)))
                continue
            if g.is_rotation:
                ops.append(single[g.name](angles[:, slot_of[gi]], wires=g.qubits[0]))
            else:
                ops.append(single[g.name](wires=g.qubits[0]))
            if self.p1:
                ops.append(qml.DepolarizingChannel(0.75 * self.p1, wires=g.qubits[0]))
        if self.readout:
            ops += [qml.BitFlip(self.readout, wires=q) for q in range(circuit.n_qubits)]
        return ops

    def _observable(self, label: str):
        import pennylane as qml

        ops = {"X": qml.PauliX, "Y": qml.PauliY, "Z": qml.PauliZ}
        terms = [ops[c](q) for q, c in enumerate(label) if c != "I"]
        return qml.prod(*terms) if len(terms) > 1 else (terms[0] if terms else qml.Identity(0))

    def _run(self, request: EstimateRequest) -> RunOutput:
        import pennylane as qml

        circuit = request.circuit
        angles = circuit.angles(request.params)
        if self.native is not None:
            dev = self.native
            if dev.wires is not None and not set(range(circuit.n_qubits)) <= set(dev.wires):
                raise InvalidRequestError(
                    f"backend {self.name!r}: the device's wires {list(dev.wires)} do not include the "
                    f"circuit's qubits 0..{circuit.n_qubits - 1}")
        else:
            dev = qml.device(self.device_name, wires=circuit.n_qubits, seed=request.seed, **self.device_kwargs)
        levels = [None] if request.shots is None else sorted(set(request.row_shots.tolist()))
        tapes, rows_of = [], []
        for level in levels:
            rows = np.arange(request.batch_size) if level is None else np.flatnonzero(request.row_shots == level)
            meas = [qml.expval(self._observable(t.label)) for t in request.observables]
            tapes.append(qml.tape.QuantumScript(self._ops(circuit, angles[rows]), meas, shots=level))
            rows_of.append(rows)
        results = qml.execute(tapes, dev)  # one execute for every row (broadcast or expanded)
        vals = np.zeros((request.batch_size, request.n_observables))
        for res, rows in zip(results, rows_of, strict=True):
            arr = np.asarray(res, dtype=np.float64).reshape(request.n_observables, -1).T
            vals[rows] = arr.reshape(len(rows), request.n_observables)
        coeffs = np.array([t.coeff for t in request.observables])
        if request.shots is None:
            return RunOutput(vals * coeffs, np.zeros_like(vals), "exact", request.batch_size)
        err = pauli_stderr(vals, request.row_shots)
        return RunOutput(vals * coeffs, err * np.abs(coeffs), "sampled", request.batch_size, submissions=1)
