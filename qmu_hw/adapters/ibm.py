"""IBM Quantum through qiskit-ibm-runtime's EstimatorV2.

One request is one EstimatorV2 PUB: the ISA circuit (transpiled once per circuit and
device with the preset pass manager), the observables mapped through the layout and
broadcast against all B parameter rows. A device name starting with ``Fake`` selects the
SDK's local testing mode (the same code path, run by the fake backend's simulator).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.backend import RunOutput, check_options
from ..core.circuit import Circuit
from ..core.cloud import JournaledBackend
from ..core.contract import Capabilities, EstimateRequest
from ..core.exceptions import InvalidRequestError, MissingCredentialsError, MissingDependencyError
from ..core.profiles import Profile
from .qiskit_convert import to_qiskit
from .registry import register_adapter

OPTIONS = {"device", "channel", "optimization_level", "mode", "resilience_level", "twirling_gates",
           "twirling_measure", "dynamical_decoupling", "zne", "max_qubits", "seed_transpiler"}
MODES = ("job", "batch", "session")


def _pauli_label_qiskit(label: str) -> str:
    """Our label (qubit 0 first) → Qiskit's (qubit 0 last)."""
    return label[::-1]


@register_adapter("ibm")
class IBMBackend(JournaledBackend):
    """EstimatorV2 on an IBM device or, for ``Fake*`` device names, its local testing mode."""

    sdk = ("qiskit", "qiskit_ibm_runtime")
    extra = "ibm"
    option_schema = dict.fromkeys(sorted(OPTIONS), "see the IBM profile docs in README.md")

    @classmethod
    def is_remote(cls, profile: Profile) -> bool:
        return not str(profile.options.get("device", "")).startswith("Fake")

    @classmethod
    def credentials_visible(cls, profile: Profile) -> bool:
        """The token variable the profile names, or a saved account file (no network call)."""
        if not cls.is_remote(profile):
            return True
        if os.environ.get(profile.credentials.get("token_env", "QISKIT_IBM_TOKEN")):
            return True
        # qiskit-ibm-runtime creates this file empty ("{}") on first use: only a saved account
        # with a token counts.
        try:
            saved = json.loads((Path("~").expanduser() / ".qiskit" / "qiskit-ibm.json").read_text())
        except (OSError, ValueError):
            return False
        return isinstance(saved, dict) and any(isinstance(a, dict) and a.get("token") for a in saved.values())

    @classmethod
    def noise_label(cls, profile: Profile) -> str:
        device = str(profile.options.get("device", ""))
        if not cls.is_remote(profile):  # local testing mode simulates the fake device's noise
            return f"calibrated from {device} (local testing)"
        return "device (calibrated)"

    def __init__(self, profile: Profile, *, options: dict[str, Any] | None = None, native=None,
                 **kw: Any) -> None:
        super().__init__(profile, **kw)
        try:
            import qiskit_ibm_runtime  # noqa: F401
        except ImportError as exc:  # pragma: no cover
            raise MissingDependencyError("IBM backends need qiskit-ibm-runtime") from exc
        options = check_options(profile, options, OPTIONS)
        self.options = options
        self.mode = options.get("mode", "job")
        if self.mode not in MODES:
            raise InvalidRequestError(f"backend {profile.name!r}: mode must be one of {MODES}, got {self.mode!r}")
        device = options.get("device")
        if not isinstance(device, str):
            raise InvalidRequestError(f"backend profile {profile.path}: key 'options.device' names the IBM device")
        self.local = device.startswith("Fake")
        self.device = self._resolve_device(device) if native is None else native  # native: get_backend(IBMBackend)
        if native is not None and not self.local:
            self.service = native.service  # the account the user's device object came from
        self._compiled: dict[tuple, tuple] = {}
        self.n_transpilations = 0
        self._context = None
        max_q = int(options.get("max_qubits", profile.limits.get("max_qubits", self.device.num_qubits)))
        self.capabilities = Capabilities(
            exact=False, sampling=True, noise=f"IBM {'local ' if self.local else ''}{device}", max_qubits=max_q,
            max_circuits_per_job=profile.limits.get("max_circuits_per_job"), backprop=False,
        )

    # -- account and device --------------------------------------------------------------
    def _resolve_device(self, name: str):
        if self.local:
            from .aer import fake_device

            return fake_device(name)
        from qiskit_ibm_runtime import QiskitRuntimeService

        creds = self.profile.credentials
        token = os.environ.get(creds.get("token_env", "QISKIT_IBM_TOKEN"))
        instance = os.environ.get(creds.get("instance_env", "QISKIT_IBM_INSTANCE"))
        channel = creds.get("channel", "ibm_quantum_platform")
        try:
            if token:
                service = QiskitRuntimeService(channel=channel, token=token, instance=instance)
            else:
                service = QiskitRuntimeService(channel=channel, instance=instance)
        except Exception as exc:  # the SDK raises several account errors; none may leak a token
            raise MissingCredentialsError(
                f"backend {self.profile.name!r}: no usable IBM Quantum account ({type(exc).__name__}). Save one "
                "with QiskitRuntimeService.save_account(...) or set the environment variables named in the "
                f"profile ({creds.get('token_env', 'QISKIT_IBM_TOKEN')}, "
                f"{creds.get('instance_env', 'QISKIT_IBM_INSTANCE')})."
            ) from None
        self.service = service  # retrieves jobs by id after a crash, with the same account
        return service.backend(name)

    # -- execution context: Batch or Session held open by the caller -------------------------
    @contextlib.contextmanager
    def execution_context(self):
        """``with backend.execution_context():`` keeps one Batch/Session open (mode permitting)."""
        if self.mode == "job" or self._context is not None:
            yield self
            return
        from qiskit_ibm_runtime import Batch, Session

        ctx = (Batch if self.mode == "batch" else Session)(backend=self.device)
        self._context = ctx
        try:
            with ctx:
                yield self
        finally:
            self._context = None

    # -- compile once --------------------------------------------------------------------
    def compiled(self, circuit: Circuit, labels: tuple[str, ...]):
        """``(isa_circuit, ordered parameters, mapped observables)``, cached per circuit."""
        key = (circuit.fingerprint, labels)
        if key not in self._compiled:
            from qiskit.quantum_info import SparsePauliOp
            from qiskit.transpiler import generate_preset_pass_manager

            qc, pv = to_qiskit(circuit, measure=False)
            if circuit.fingerprint not in {k[0] for k in self._compiled}:
                self.n_transpilations += 1
            pm = generate_preset_pass_manager(
                optimization_level=int(self.options.get("optimization_level", 1)), backend=self.device,
                seed_transpiler=int(self.options.get("seed_transpiler", 0)),
            )
            isa = pm.run(qc)
            obs = [SparsePauliOp(_pauli_label_qiskit(lab)).apply_layout(isa.layout) for lab in labels]
            present = set(isa.parameters)
            cols = [(i, p) for i, p in enumerate(pv) if p in present]
            self._compiled[key] = (isa, cols, obs)
        return self._compiled[key]

    def _estimator(self, shots: int, seed: int | None = None):
        from qiskit_ibm_runtime import EstimatorV2

        est = EstimatorV2(mode=self._context if self._context is not None else self.device)
        o = est.options
        o.default_shots = int(shots)
        if "resilience_level" in self.options:
            o.resilience_level = int(self.options["resilience_level"])
        if self.options.get("twirling_gates") is not None:
            o.twirling.enable_gates = bool(self.options["twirling_gates"])
        if self.options.get("twirling_measure") is not None:
            o.twirling.enable_measure = bool(self.options["twirling_measure"])
        if self.options.get("dynamical_decoupling") is not None:
            o.dynamical_decoupling.enable = bool(self.options["dynamical_decoupling"])
        if self.options.get("zne") is not None:
            o.resilience.zne_mitigation = bool(self.options["zne"])
        if seed is not None and self.local:
            o.simulator.seed_simulator = int(seed)
        return est

    def _pub(self, request: EstimateRequest):
        isa, cols, obs = self.compiled(request.circuit, tuple(t.label for t in request.observables))
        values = np.stack([request.params[:, c] for c, _ in cols], axis=1) if cols else np.zeros((request.batch_size, 0))
        from qiskit.primitives.containers.bindings_array import BindingsArray

        bindings = BindingsArray({tuple(p for _, p in cols): values[:, None, :]}) if cols else None
        return (isa, [obs], bindings)

    def shots_charged(self, request: EstimateRequest) -> int:
        """EstimatorV2 takes one shot count per PUB, so every row runs at the largest row's
        shots (per measurement group): that is what the device spends and the ledger records."""
        if request.shots is None:
            return 0
        return int(np.max(request.row_shots)) * request.batch_size * self.n_groups(request)

    def shots_spent(self, request: EstimateRequest, out: RunOutput, charged: int) -> int:
        """What ran, from the result's metadata (local testing mode turns shots into a precision
        and back, so 4000 requested shots run as 4001)."""
        if request.shots is None or out.shots_run is None:
            return charged
        return int(out.shots_run) * request.batch_size * self.n_groups(request)

    def _submit(self, request: EstimateRequest) -> list[str]:
        if request.shots is None:
            raise InvalidRequestError(f"backend {self.name!r} samples; request shots=N")
        shots = int(np.max(request.row_shots))
        self._last_job = self._estimator(shots, request.seed).run([self._pub(request)])
        return [self._last_job.job_id()]

    def _collect(self, job_ids: list[str], request: EstimateRequest) -> RunOutput:
        job = getattr(self, "_last_job", None)
        if job is None or job.job_id() != job_ids[0]:
            if self.local:  # local-testing jobs die with their process; rerunning them is free
                self._submit(request)
                job = self._last_job
            else:
                job = self.service.job(job_ids[0])
        result = job.result()
        data = result[0].data
        coeffs = np.array([t.coeff for t in request.observables])
        vals = np.asarray(data.evs).reshape(request.batch_size, -1) * coeffs
        errs = np.asarray(data.stds).reshape(request.batch_size, -1) * np.abs(coeffs)
        meta = dict(result[0].metadata)
        try:
            qpu_s = float(job.usage() or 0.0)
        except Exception:  # noqa: BLE001 - usage is informative only
            qpu_s = 0.0
        return RunOutput(vals, errs, "provider", request.batch_size, [job.job_id()],
                         raw={"shots_run": meta.get("shots"), "target_precision": meta.get("target_precision"),
                              "transpilations": self.n_transpilations},
                         shots_run=meta.get("shots"), qpu_seconds=qpu_s)

    def _is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return True
        status = getattr(exc, "status_code", None)
        return type(exc).__name__ == "RequestsApiError" and status is not None and (status >= 500 or status == 429)
