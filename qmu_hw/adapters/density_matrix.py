"""The fast noisy engine: exact, batched, differentiable Pauli-transfer simulation.

Noise: the parametric ``depolarizing`` profiles (optionally with T1/T2), or ``calibrated``
device noise derived from a Qiskit fake device (``device_calibration``). Exact expectations
use light-cone-reduced registers; sampled mode draws each observable's ±1 shots from its exact
light-cone value (option ``sampling = "marginal"``, the default: per-observable values and
stderr exact in distribution, near exact-mode cost) or multinomial shots from the exact joint
outcome distribution of each measured group (``"joint"``: full register, 4^n).

Circuits whose light cones cover most of the register (deep rings, the ``all`` entangler) can
run on Heisenberg-picture Pauli propagation instead (option ``method``; :mod:`.pauli_mode`),
with a rigorous truncation error bound in the result metadata and an exact fallback.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..core.backend import BaseBackend, RunOutput, check_options
from ..core.contract import Capabilities, EstimateRequest
from ..core.exceptions import ProfileError
from ..core.observables import PauliTerm, measurement_groups
from ..core.profiles import Profile
from . import dm_engine as dm
from . import dm_shift
from .pauli_mode import PauliChooser, PauliSettings
from .ptm_noise import PTMNoise, parametric_noise
from .registry import register_adapter
from .sampling import apply_readout, estimates_by_group, sample_parities
from .threads import engine_threads
from .torch_engine import torch_angles


@register_adapter("density-matrix")
class DensityMatrixBackend(BaseBackend):
    """Depolarizing / thermal / calibrated + readout noise on ≤ ~10 qubits; agrees with Aer on
    the same model; differentiable (``gradient="backprop"``) in exact mode.

    Options: ``max_qubits`` (default 10), ``max_memory_gb`` (default 4: a request whose
    reduced registers need more per row is refused before it runs), ``sampling``, and
    ``method`` / ``pauli_max_weight`` / ``pauli_tolerance`` (Pauli propagation for deep
    circuits, see :mod:`qmu_hw.adapters.pauli_mode`).
    """

    option_schema = {"max_qubits": "largest register accepted (default 10)",
                     "max_memory_gb": "memory plan per request in GiB (default 4)",
                     "sampling": "marginal (default: each observable's shots from its light cone; per-observable "
                                 "values and stderr exact in distribution) | joint (each measured group's full "
                                 "joint outcome distribution: also the correlations between observables)",
                     "method": "auto (default: Pauli propagation where some light cone has >= 7 qubits and its "
                               "rigorous error bound is <= pauli_tolerance, else exact) | ptm (always exact) | pauli "
                               "(always Pauli propagation; refuses a result whose bound exceeds pauli_tolerance)",
                     "pauli_max_weight": "Pauli propagation drops strings heavier than this (default 4; >= the "
                                         "qubit count: nothing dropped, exact)",
                     "pauli_tolerance": "largest accepted bound on |value - exact| of Pauli propagation (default "
                                        "1e-3); reported as raw['truncation_error_bound'] in the result metadata"}

    @classmethod
    def requirements(cls, profile: Profile) -> tuple[tuple[str, str | None], ...]:
        # Calibrated profiles read their device's calibration from qiskit-ibm-runtime's fake
        # provider; parametric noise needs nothing beyond torch.
        fake = (("qiskit_ibm_runtime", "ibm"),) if profile.noise_kind == "calibrated" else ()
        return super().requirements(profile) + fake

    def __init__(self, profile: Profile, *, options: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(profile, **kw)
        options = check_options(profile, options, set(self.option_schema))
        self.sampling = options.get("sampling", "marginal")
        if self.sampling not in ("marginal", "joint"):
            raise ProfileError(f"backend profile {profile.path}: option 'sampling': expected \"marginal\" or "
                               f"\"joint\", got {self.sampling!r}")
        kind = profile.noise_kind
        self._device = None
        self._noise: dict[int, PTMNoise] = {}
        self.layouts: dict[int, list[int]] = {}
        if kind == "calibrated":
            from .aer import fake_device

            device = profile.noise.get("device")
            if not isinstance(device, str):
                raise ProfileError(f"backend profile {profile.path}: key 'noise.device': a calibrated "
                                   "profile names a qiskit_ibm_runtime fake device, e.g. \"FakeBrisbane\"")
            self._device = fake_device(device)
            default_max = 10
        else:
            self._uniform = parametric_noise(profile.noise, profile.path)
            default_max = 10
        max_q = int(options.get("max_qubits", profile.limits.get("max_qubits", default_max)))
        if self._device is not None and max_q > self._device.num_qubits:
            max_q = self._device.num_qubits
        self.memory_limit = int(float(options.get("max_memory_gb", 4)) * 2**30)
        # How the last torch_expectation was computed (method, truncation bound): it returns a
        # bare tensor, so its metadata is kept here.
        self.last_backprop_metadata: dict = {}
        self.pauli = PauliChooser(PauliSettings.from_options(options, profile.path), self.memory_limit)
        self.capabilities = Capabilities(
            exact=True, sampling=True, noise=profile.describe_noise(), max_qubits=max_q, backprop=True
        )

    def noise_for(self, n_qubits: int) -> PTMNoise:
        """The noise on an ``n_qubits`` register (calibrated: on the device chain of that width)."""
        if self._device is None:
            return self._uniform
        if n_qubits not in self._noise:
            from .device_calibration import calibrated_noise

            self._noise[n_qubits], self.layouts[n_qubits] = calibrated_noise(self._device, n_qubits)
        return self._noise[n_qubits]

    def validate(self, request: EstimateRequest) -> None:
        super().validate(request)
        self.check_plan(request.circuit, request.observables, request.shots is not None)

    def check_plan(self, circuit, observables, sampled: bool, rows: int = 1) -> None:
        """Refuse, before anything runs, a register too large for the memory limit
        (``rows``: rows held in memory at once). A parameter-shift request may run on the
        sweep of :mod:`.dm_shift` instead, which plans its own memory against the same limit
        and, when one row of one cone does not fit, leaves the request to the general path
        checked here."""
        noise = self.noise_for(circuit.n_qubits)
        labels = tuple(t.label for t in observables)
        what = f"backend {self.name!r}, circuit {circuit.name!r}"
        if sampled and self.sampling == "joint":  # a group's joint distribution needs the whole register
            sizes = [circuit.n_qubits]
        elif self.pauli.use_pauli(circuit, noise, labels):
            self.pauli.plan(circuit, noise, labels, what)
            if self.pauli.settings.method == "pauli":
                return
            # auto may fall back to the exact engine: its plan must fit too
            cones, _ = dm.observable_cones(circuit, noise, labels)
            sizes = [len(c) for c in cones]
        else:
            cones, _ = dm.observable_cones(circuit, noise, tuple(t.label for t in observables))
            sizes = [len(c) for c in cones]
        dm.check_memory(sizes, self.memory_limit, what, rows)

    def probabilities(self, circuit, params: np.ndarray, basis: str | None = None) -> np.ndarray:
        """Exact noisy outcome probabilities ``(B, 2**n)`` including readout error."""
        n = circuit.n_qubits
        noise = self.noise_for(n)
        probs = dm.noisy_probabilities(
            circuit, circuit.angles(np.atleast_2d(params)), basis or "Z" * n, noise, self.memory_limit
        )
        return probs if noise.readout_free else apply_readout(probs, n, noise.confusions(n))

    def _run(self, request: EstimateRequest) -> RunOutput:
        with engine_threads(request.circuit.n_qubits):
            return self._run_threaded(request)

    def _run_threaded(self, request: EstimateRequest) -> RunOutput:
        circuit, n = request.circuit, request.circuit.n_qubits
        if request.shots is None:
            with torch.no_grad():
                angles = torch.as_tensor(circuit.angles(request.params), dtype=torch.float64)
                vals, raw = self._expectations(circuit, angles, request.observables)
            vals = vals.numpy()
            return RunOutput(vals, np.zeros_like(vals), "exact", request.batch_size, raw=raw)
        groups = measurement_groups(request.observables)
        rng = np.random.default_rng(request.seed)
        if self.sampling == "marginal":  # each observable's ±1 outcomes from its exact (cone) value
            unit = tuple(PauliTerm(t.label) for t in request.observables)
            with torch.no_grad():
                angles = torch.as_tensor(circuit.angles(request.params), dtype=torch.float64)
                exact, raw = self._expectations(circuit, angles, unit)
            # a truncated value may leave [-1, 1] by up to its bound: the parity sampler needs a probability
            mean, err = sample_parities(np.clip(exact.numpy(), -1.0, 1.0), request.shots, rng)
            coeffs = np.array([t.coeff for t in request.observables])
            if raw.get("truncation_error_bound_per_observable"):  # on the mean the shots are drawn from
                per = [b * abs(c) for b, c in zip(raw["truncation_error_bound_per_observable"], coeffs, strict=True)]
                raw = dict(raw, truncation_error_bound=max(per), truncation_error_bound_per_observable=per)
            return RunOutput(mean * coeffs, err * np.abs(coeffs), "sampled", request.batch_size * len(groups),
                             raw=raw)
        per_group = [self.probabilities(circuit, request.params, basis) for basis, _ in groups]
        vals, errs = estimates_by_group(request.observables, groups, n, per_group, request.shots, rng)
        return RunOutput(vals, errs, "sampled", request.batch_size * len(groups))

    def _expectations(self, circuit, angles: torch.Tensor, observables, rows: int = 1) -> tuple[torch.Tensor, dict]:
        """``(B, O)`` noisy expectations and the metadata saying how they were computed: Pauli
        propagation (with its truncation bound) where chosen and within tolerance, else exact
        (``rows``: rows the exact engine holds at once, checked before an ``auto`` fallback)."""
        noise = self.noise_for(circuit.n_qubits)
        raw: dict = {"method": "ptm"}
        labels = tuple(t.label for t in observables)
        if self.pauli.use_pauli(circuit, noise, labels):
            what = f"backend {self.name!r}, circuit {circuit.name!r}"
            vals, redo, raw = self.pauli.expectations(circuit, angles, observables, noise, what)
            if vals is not None and redo is None:
                return vals, raw
            cones, _ = dm.observable_cones(circuit, noise, labels)
            dm.check_memory([len(c) for c in cones], self.memory_limit, what, rows)
            if vals is not None:  # some rows over the tolerance: those exactly
                exact = dm.noisy_expectations(circuit, angles[redo], observables, noise, self.memory_limit)
                return vals.index_put((redo,), exact), raw
        if not angles.requires_grad:  # a parameter-shift request: one sweep per base row
            fast = dm_shift.shift_expectations(circuit, angles.numpy(), observables, noise, self.memory_limit)
            if fast is not None:
                raw = dict(raw, shift_base_rows=fast[1])
                return torch.as_tensor(fast[0]), raw
        return dm.noisy_expectations(circuit, angles, observables, noise, self.memory_limit), raw

    # -- differentiable path (the Differentiable contract of the exact engines) -----------
    def torch_expectation(
        self,
        circuit,
        inputs: torch.Tensor,
        weights: torch.Tensor,
        observables: tuple[PauliTerm, ...] | None = None,
        phase: str = "train",
    ) -> torch.Tensor:
        """Exact noisy ``(B, O)`` expectations, differentiable in ``inputs (B, n_in)`` and ``weights``."""
        obs = self._backprop_observables(circuit, observables)
        B = inputs.shape[0]
        # Autograd keeps every layer's state of every row: about two per entangling block.
        gates = circuit.gates
        blocks = 1 + sum(len(a.qubits) == 1 and len(b.qubits) == 2 for a, b in zip(gates, gates[1:], strict=False))
        noise = self.noise_for(circuit.n_qubits)
        if not self.pauli.use_pauli(circuit, noise, tuple(t.label for t in obs)):
            self.check_plan(circuit, obs, sampled=False, rows=B * 2 * blocks)
        t0 = time.perf_counter()
        # coeff·param + offset per slot, constant rotations included (imported circuits)
        with engine_threads(circuit.n_qubits):
            angles = torch_angles(circuit, inputs.to(torch.float64), weights.to(torch.float64))[0]
            out, self.last_backprop_metadata = self._expectations(circuit, angles, obs, rows=B * 2 * blocks)
        self._record_backprop(phase, B, t0)
        return out
