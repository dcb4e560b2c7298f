"""Qiskit Aer: ideal, parametric-noise and calibrated fake-device simulation.

Exact mode saves the outcome probabilities (statevector, or density matrix when noisy) and
applies readout confusion by hand, because Aer applies readout error only to measurements.
Sampled mode runs real shots and reads the counts (Aer's EstimatorV2 "precision" only adds
Gaussian noise and ignores readout error, so it is not used). Every request is one
``AerSimulator.run`` call with all B rows as parameter binds; each circuit is converted and
transpiled once per (circuit, measurement basis) and cached.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.backend import BaseBackend, RunOutput, check_options
from ..core.circuit import Circuit
from ..core.contract import Capabilities, EstimateRequest
from ..core.deps import require
from ..core.exceptions import InvalidRequestError
from ..core.observables import measurement_groups
from ..core.profiles import Profile
from .qiskit_convert import (
    ONE_QUBIT_GATES,
    TWO_QUBIT_GATES,
    counts_to_array,
    measured_physical_qubits,
    to_qiskit,
)
from .registry import register_adapter
from .sampling import apply_readout, confusion, estimates_by_group

OPTION_SCHEMA = {
    "method": "Aer simulation method (default: statevector, density_matrix when noisy)",
    "threads": "Aer OpenMP threads (default 1: more slow later torch work in the same process)",
    "optimization_level": "transpiler optimisation level for device targets (default 1)",
    "initial_layout": "\"chain\" (a connected path of physical qubits) or a list of physical qubits",
    "seed_transpiler": "transpiler seed (default 0)",
    "max_qubits": "largest circuit accepted",
}
OPTIONS = set(OPTION_SCHEMA)


def _require_aer():
    return require("qiskit_aer", "aer", "the 'aer' backends")


def fake_device(name: str):
    """A ``qiskit_ibm_runtime.fake_provider`` backend by class name (``FakeManilaV2``)."""
    fake_provider = require("qiskit_ibm_runtime.fake_provider", "ibm", "fake devices")
    cls = getattr(fake_provider, name, None)
    if cls is None:
        raise InvalidRequestError(
            f"unknown fake device {name!r}; expected a class of qiskit_ibm_runtime.fake_provider "
            "such as 'FakeManilaV2' or 'FakeBrisbane'"
        )
    return cls()


def chain_layout(coupling_edges, n: int, errors: dict | None = None) -> list[int]:
    """A path of ``n`` connected physical qubits (lowest summed 2-qubit error found first).

    Routing on a path adds no qubits, which keeps calibrated simulation affordable.
    """
    adj: dict[int, set[int]] = {}
    for a, b in coupling_edges:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    errors = errors or {}
    best: tuple[float, list[int]] | None = None
    for start in sorted(adj):
        stack = [[start]]
        while stack:
            path = stack.pop()
            if len(path) == n:
                cost = sum(errors.get((path[i], path[i + 1]), errors.get((path[i + 1], path[i]), 0.0))
                           for i in range(n - 1))
                if best is None or cost < best[0]:
                    best = (cost, path)
                break
            for nb in sorted(adj[path[-1]], reverse=True):
                if nb not in path:
                    stack.append(path + [nb])
        if best is not None and not errors:
            break
    if best is None:
        raise InvalidRequestError(f"the device has no chain of {n} connected qubits")
    return best[1]


def parametric_noise_model(noise: dict[str, Any]):
    """Depolarizing after every gate, optional thermal relaxation, symmetric readout error."""
    from qiskit_aer.noise import (
        NoiseModel,
        ReadoutError,
        depolarizing_error,
        thermal_relaxation_error,
    )

    nm = NoiseModel()
    p1, p2, ro = noise.get("p1", 0.0), noise.get("p2", 0.0), noise.get("readout", 0.0)
    e1 = depolarizing_error(p1, 1) if p1 else None
    e2 = depolarizing_error(p2, 2) if p2 else None
    if noise.get("t1_us"):
        t1, t2 = noise["t1_us"] * 1e3, noise.get("t2_us", noise["t1_us"]) * 1e3
        gate_ns = noise.get("gate_time_ns", 50.0)
        th1 = thermal_relaxation_error(t1, t2, gate_ns)
        th2 = thermal_relaxation_error(t1, t2, 5 * gate_ns).tensor(thermal_relaxation_error(t1, t2, 5 * gate_ns))
        e1 = th1 if e1 is None else e1.compose(th1)
        e2 = th2 if e2 is None else e2.compose(th2)
    if e1 is not None:
        nm.add_all_qubit_quantum_error(e1, list(ONE_QUBIT_GATES))
    if e2 is not None:
        nm.add_all_qubit_quantum_error(e2, list(TWO_QUBIT_GATES))
    if ro:
        nm.add_all_qubit_readout_error(ReadoutError(confusion(ro).T.tolist()))
    return nm


def readout_confusions(noise_model, n_physical: int) -> dict[int, np.ndarray]:
    """Per-physical-qubit readout confusion matrices ``M[read, prepared]`` of a noise model."""
    out: dict[int, np.ndarray] = {}
    default = None
    for err in noise_model.to_dict().get("errors", []):
        if err.get("type") != "roerror":
            continue
        probs = np.array(err["probabilities"]).T  # Qiskit rows are prepared states
        qubits = err.get("gate_qubits")
        if not qubits:
            default = probs
        else:
            for qs in qubits:
                out[qs[0]] = probs
    if default is not None:
        for q in range(n_physical):
            out.setdefault(q, default)
    return out


@register_adapter("aer")
class AerBackend(BaseBackend):
    """Qiskit Aer. Options: ``method`` (default automatic), ``threads`` (default 1: Aer's
    OpenMP threads slow later torch work), ``optimization_level``, ``initial_layout``
    (``"chain"`` or a list), ``seed_transpiler``, ``max_qubits``."""

    sdk = ("qiskit", "qiskit_aer")
    extra = "aer"
    option_schema = OPTION_SCHEMA

    @classmethod
    def requirements(cls, profile: Profile) -> tuple[tuple[str, str | None], ...]:
        # Calibrated fake devices come from qiskit-ibm-runtime's fake provider.
        fake = (("qiskit_ibm_runtime", "ibm"),) if profile.noise_kind == "fake-device" else ()
        return super().requirements(profile) + fake

    def __init__(self, profile: Profile, *, options: dict[str, Any] | None = None, native=None,
                 noise_model=None, **kw: Any) -> None:
        """``native``/``noise_model``: the device object given to ``get_backend`` (a fake
        backend, or an AerSimulator and its noise model) instead of the profile's noise."""
        super().__init__(profile, **kw)
        _require_aer()
        from qiskit_aer import AerSimulator

        options = check_options(profile, options, OPTIONS)
        self.options = options
        kind = profile.noise_kind
        self.device = None
        self._basis_gates = None  # a user noise model's basis, when its errors sit on other gates
        if native is not None and kind == "fake-device":
            from qiskit_aer.noise import NoiseModel

            self.device = native
            self.noise_model = NoiseModel.from_backend(native)
            max_q = native.num_qubits
        elif native is not None:  # an AerSimulator: its noise model, and its target if it has one
            self.noise_model = noise_model
            self.device = native if native.coupling_map is not None else None
            max_q = native.num_qubits if self.device is not None else (14 if noise_model is not None else 24)
            if noise_model is not None and self.device is None and (
                    set(noise_model.noise_instructions) - set(ONE_QUBIT_GATES + TWO_QUBIT_GATES)):
                self._basis_gates = list(noise_model.basis_gates)
        elif kind == "fake-device":
            from qiskit_aer.noise import NoiseModel

            self.device = fake_device(profile.noise["device"])
            self.noise_model = NoiseModel.from_backend(self.device)
            max_q = self.device.num_qubits
        elif kind == "depolarizing":
            self.noise_model = parametric_noise_model(profile.noise)
            max_q = 14
        else:
            self.noise_model = None
            max_q = 24
        max_q = int(options.get("max_qubits", profile.limits.get("max_qubits", max_q)))
        noisy = self.noise_model is not None and not self.noise_model.is_ideal()
        method = options.get("method", "density_matrix" if noisy else "statevector")
        threads = int(options.get("threads", 1))
        sim_kw = dict(method=method, max_parallel_threads=threads, max_parallel_experiments=1)
        self._sim = AerSimulator(noise_model=self.noise_model, **sim_kw)
        self._readout = readout_confusions(self.noise_model, max_q) if self.noise_model else {}
        self._compiled: dict[tuple, tuple] = {}
        self.n_transpilations = 0
        self.capabilities = Capabilities(
            exact=True, sampling=True, noise=profile.describe_noise(), max_qubits=max_q, backprop=False
        )

    # -- compile once per (circuit, basis) ------------------------------------------------
    def compiled(self, circuit: Circuit, basis: str) -> tuple:
        """``(measured circuit, probability circuit, [(column, Parameter)], measured phys qubits)``."""
        key = (circuit.fingerprint, basis)
        if key not in self._compiled:
            qc, pv = to_qiskit(circuit, basis, measure=True)
            if self.device is not None:
                from qiskit.transpiler import generate_preset_pass_manager

                layout = self.options.get("initial_layout", "chain")
                if layout == "chain":
                    layout = chain_layout(self.device.coupling_map.get_edges(), circuit.n_qubits)
                pm = generate_preset_pass_manager(
                    optimization_level=int(self.options.get("optimization_level", 1)),
                    backend=self.device,
                    initial_layout=layout,
                    seed_transpiler=int(self.options.get("seed_transpiler", 0)),
                )
                qc = pm.run(qc)
                self.n_transpilations += 1
            elif self._basis_gates is not None:  # onto the gates the noise model puts errors on
                from qiskit import transpile

                qc = transpile(qc, basis_gates=self._basis_gates, optimization_level=0)
                self.n_transpilations += 1
            phys = measured_physical_qubits(qc, circuit.n_qubits)
            probs_qc = qc.remove_final_measurements(inplace=False)
            probs_qc.save_probabilities(phys)
            present = set(qc.parameters)
            columns = [(i, p) for i, p in enumerate(pv) if p in present]
            self._compiled[key] = (qc, probs_qc, columns, phys)
        return self._compiled[key]

    def _run(self, request: EstimateRequest) -> RunOutput:
        circuit, n, B = request.circuit, request.circuit.n_qubits, request.batch_size
        groups = measurement_groups(request.observables)
        compiled = [self.compiled(circuit, basis) for basis, _ in groups]
        if request.shots is None:
            per_group, submissions = self._run_exact(request, compiled), 1
        else:
            per_group, submissions = self._run_shots(request, compiled)
        vals, errs = estimates_by_group(
            request.observables, groups, n, per_group, request.shots,
            kind="probs" if request.shots is None else "counts",
        )
        return RunOutput(
            vals, errs, "exact" if request.shots is None else "sampled", B * len(groups),
            submissions=submissions,
            raw={"transpilations": self.n_transpilations, "method": self._sim.options.method},
        )

    def counts(self, circuit: Circuit, params: np.ndarray, shots: int, seed: int | None = None) -> np.ndarray:
        """Raw Z-basis counts ``(B, 2**n)`` (index: qubit 0 most significant); not charged."""
        req = EstimateRequest(circuit, params, shots=shots, seed=seed)
        return self._run_shots(req, [self.compiled(circuit, "Z" * circuit.n_qubits)])[0][0]

    def _binds(self, compiled, params: np.ndarray) -> list[dict]:
        return [{p: params[:, col] for col, p in c[2]} for c in compiled]

    def _run_exact(self, request: EstimateRequest, compiled) -> list[np.ndarray]:
        n, B = request.circuit.n_qubits, request.batch_size
        binds = self._binds(compiled, request.params)
        res = self._sim.run([c[1] for c in compiled], parameter_binds=binds).result()
        out = []
        for k, c in enumerate(compiled):  # Aer expands binds circuit by circuit
            probs = np.array([res.data(i)["probabilities"] for i in range(k * B, (k + 1) * B)])
            if self._readout:
                # Bit j of the index is classical bit j, i.e. our qubit n-1-j.
                mats = [self._readout.get(c[3][n - 1 - q], np.eye(2)) for q in range(n)]
                probs = apply_readout(probs, n, mats)
            out.append(probs)
        return out

    def _run_shots(self, request: EstimateRequest, compiled) -> tuple[list[np.ndarray], int]:
        """Real shots. One Aer job takes one shot count, so rows are grouped by their shots:
        one call for uniform shots, one per distinct value for allocated shots."""
        n, B = request.circuit.n_qubits, request.batch_size
        seed = request.seed if request.seed is not None else int(np.random.default_rng().integers(2**31))
        row_shots = request.row_shots
        levels = np.unique(row_shots)
        out = [np.zeros((B, 2**n), dtype=np.int64) for _ in compiled]
        for j, level in enumerate(levels):
            rows = np.flatnonzero(row_shots == level)
            res = self._sim.run(
                [c[0] for c in compiled], parameter_binds=self._binds(compiled, request.params[rows]),
                shots=int(level), seed_simulator=seed + j,
            ).result()
            R = len(rows)
            for k in range(len(compiled)):
                out[k][rows] = counts_to_array([res.get_counts(i) for i in range(k * R, (k + 1) * R)], n)
        return out, len(levels)
