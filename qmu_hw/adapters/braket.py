"""Amazon Braket local simulators (``braket_sv``, ``braket_dm`` with a noise model).

The circuit is built once per (circuit, measurement group) with ``FreeParameter``s; the B
rows of a request go out as one ``run_batch`` with per-row inputs, split deterministically
at ``limits.max_circuits_per_job``. Noise follows Aer's convention (Braket's
``Depolarizing(p)`` leaves ``1 − p`` of the state, so Aer's p1 maps to ``0.75·p1`` and p2 to
``15/16·p2``); readout error is a ``BitFlip`` before measurement.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.backend import RunOutput, check_options
from ..core.circuit import Circuit
from ..core.cloud import JournaledBackend
from ..core.contract import Capabilities, EstimateRequest
from ..core.exceptions import InvalidRequestError, MissingDependencyError
from ..core.observables import measurement_groups
from ..core.profiles import Profile
from .registry import register_adapter
from .sampling import pauli_stderr

OPTIONS = {"device", "max_parallel", "max_qubits"}
LOCAL_DEVICES = ("braket_sv", "braket_dm")


@register_adapter("braket")
class BraketBackend(JournaledBackend):
    def __init__(self, profile: Profile, *, options: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(profile, **kw)
        try:
            from braket.devices import LocalSimulator
        except ImportError as exc:  # pragma: no cover
            raise MissingDependencyError("Braket backends need amazon-braket-sdk") from exc
        options = check_options(profile, options, OPTIONS)
        self.device_name = options.get("device", "braket_sv")
        if self.device_name not in LOCAL_DEVICES:
            raise InvalidRequestError(
                f"backend {profile.name!r}: device must be one of {LOCAL_DEVICES} (local simulators), "
                f"got {self.device_name!r}"
            )
        self.p1, self.p2, self.readout = profile.parametric_noise("Braket local")
        if (self.p1 or self.p2 or self.readout) and self.device_name != "braket_dm":
            raise InvalidRequestError(f"backend {profile.name!r}: noise needs device = \"braket_dm\"")
        self.device = LocalSimulator(self.device_name)
        self.max_parallel = int(options.get("max_parallel", 1))
        self._built: dict[tuple, object] = {}
        self._last: dict[str, list] = {}
        max_q = int(options.get("max_qubits", profile.limits.get("max_qubits", 12)))
        self.capabilities = Capabilities(exact=True, sampling=True, noise=profile.describe_noise(), max_qubits=max_q,
                                         max_circuits_per_job=profile.limits.get("max_circuits_per_job"),
                                         backprop=False, seedable=False)

    def build(self, circuit: Circuit, basis: str, labels: tuple[str, ...]):
        """Braket circuit with FreeParameters ``s0 … s{G-1}`` (one per slot), cached."""
        key = (circuit.fingerprint, basis, labels)
        if key in self._built:
            return self._built[key]
        from braket.circuits import Circuit as BCircuit
        from braket.circuits import FreeParameter, Observable, noises

        bc = BCircuit()
        slot_of = {gi: s for s, gi in enumerate(circuit.slots)}
        names = {"H": "h", "X": "x", "Y": "y", "Z": "z", "S": "s", "SDG": "si", "RX": "rx", "RY": "ry", "RZ": "rz"}
        for gi, g in enumerate(circuit.gates):
            if g.name in ("CZ", "CNOT"):
                (bc.cz if g.name == "CZ" else bc.cnot)(*g.qubits)
                if self.p2:
                    bc.two_qubit_depolarizing(g.qubits[0], g.qubits[1], 15 / 16 * self.p2)
                continue
            q = g.qubits[0]
            if g.is_rotation:
                getattr(bc, names[g.name])(q, FreeParameter(f"s{slot_of[gi]}"))
            else:
                getattr(bc, names[g.name])(q)
            if self.p1:
                bc.depolarizing(q, 0.75 * self.p1)
        if self.readout:
            for q in range(circuit.n_qubits):
                bc.bit_flip(q, self.readout)
        paulis = {"X": Observable.X, "Y": Observable.Y, "Z": Observable.Z}
        for lab in labels:
            support = [q for q, c in enumerate(lab) if c != "I"]
            obs = paulis[lab[support[0]]]()
            for q in support[1:]:
                obs = obs @ paulis[lab[q]]()
            bc.expectation(observable=obs, target=support)
        _ = noises  # noise instructions are added through the circuit methods above
        self._built[key] = bc
        return bc

    def _jobs(self, request: EstimateRequest):
        """(group index, rows, shots) chunks; split at the device's circuits-per-job limit."""
        limit = self.capabilities.max_circuits_per_job or request.batch_size
        shots = np.zeros(request.batch_size, dtype=int) if request.shots is None else request.row_shots
        out = []
        for level in sorted(set(shots.tolist())):
            rows = np.flatnonzero(shots == level)
            for i in range(0, len(rows), limit):
                out.append((rows[i : i + limit], int(level)))
        return out

    def _submit(self, request: EstimateRequest) -> list[str]:
        circuit = request.circuit
        angles = circuit.angles(request.params)
        groups = measurement_groups(request.observables)
        ids, tasks = [], []
        for gi, (basis, members) in enumerate(groups):
            bc = self.build(circuit, basis, tuple(request.observables[i].label for i in members))
            for rows, shots in self._jobs(request):
                inputs = [{f"s{s}": float(a[s]) for s in range(circuit.n_slots)} for a in angles[rows]]
                batch = self.device.run_batch([bc] * len(rows), shots=shots, inputs=inputs,
                                              max_parallel=self.max_parallel)
                results = batch.results()  # local simulators finish synchronously
                tasks.append((gi, rows, results))
                ids += [r.task_metadata.id for r in results]
        self._last = {"ids": ids, "tasks": tasks}
        return ids

    def _collect(self, job_ids: list[str], request: EstimateRequest) -> RunOutput:
        if self._last.get("ids") != job_ids:  # local tasks live in this process only: run again
            self._submit(request)
        groups = measurement_groups(request.observables)
        vals = np.zeros((request.batch_size, request.n_observables))
        for gi, rows, results in self._last["tasks"]:
            members = groups[gi][1]
            res = np.array([np.asarray(r.values, dtype=float) for r in results])
            vals[np.ix_(rows, members)] = res
        coeffs = np.array([t.coeff for t in request.observables])
        n_jobs = len(self._last["tasks"])
        if request.shots is None:
            return RunOutput(vals * coeffs, np.zeros_like(vals), "exact", request.batch_size * len(groups),
                             job_ids, submissions=n_jobs)
        err = pauli_stderr(vals, request.row_shots)
        return RunOutput(vals * coeffs, err * np.abs(coeffs), "sampled", request.batch_size * len(groups),
                         job_ids, submissions=n_jobs)

    def submissions_for(self, request: EstimateRequest) -> int:
        return len(measurement_groups(request.observables)) * len(self._jobs(request))
