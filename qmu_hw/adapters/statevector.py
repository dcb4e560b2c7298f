"""The exact engine: batched torch statevectors, exact or multinomially sampled."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch

from ..core.backend import BaseBackend, RunOutput, check_options
from ..core.contract import Capabilities, EstimateRequest
from ..core.exceptions import ProfileError
from ..core.observables import PauliTerm, measurement_groups
from ..core.profiles import Profile
from . import sv_cones
from . import torch_engine as te
from .registry import register_adapter
from .sampling import estimates_by_group
from .threads import engine_threads


@register_adapter("statevector")
class StatevectorBackend(BaseBackend):
    """Exact torch statevector engine; also differentiable (``gradient="backprop"``).

    Options: ``max_qubits`` (default 20), ``dtype`` (``float64`` | ``float32``).
    """

    option_schema = {"max_qubits": "largest circuit accepted (default 20)",
                     "dtype": "float64 | float32"}

    def __init__(self, profile: Profile, *, options: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(profile, **kw)
        if profile.noise_kind != "none":
            # A noiseless engine that ignored [noise] would report noise-free numbers under a
            # noisy profile's name.
            raise ProfileError(
                f"backend profile {profile.path}: key 'noise.kind': the statevector engine is noiseless, "
                f"got {profile.noise_kind!r}; use adapter = \"density-matrix\" (depolarizing + readout) or "
                "\"aer\" for noisy simulation, or drop the [noise] table"
            )
        options = check_options(profile, options, {"max_qubits", "dtype"})
        self.dtype = {"float64": torch.float64, "float32": torch.float32}[options.get("dtype", "float64")]
        max_q = int(options.get("max_qubits", profile.limits.get("max_qubits", 20)))
        self.capabilities = Capabilities(
            exact=True, sampling=True, noise="none", max_qubits=max_q, backprop=True
        )

    def _run(self, request: EstimateRequest) -> RunOutput:
        circuit = request.circuit
        with torch.no_grad(), engine_threads(circuit.n_qubits):
            angles = self._angles(request)
            if request.shots is None:  # each observable on its light cone, rows deduplicated
                labels = tuple(t.label for t in request.observables)
                coeffs = torch.tensor([t.coeff for t in request.observables], dtype=self.dtype)
                vals = (sv_cones.expectations(circuit, angles, labels) * coeffs).to(torch.float64).numpy()
                return RunOutput(vals, np.zeros_like(vals), "exact", request.batch_size)
            state = te.simulate(te.compile_plan(circuit), angles)
            vals, errs = self._sample(state, request)
        groups = self.n_groups(request)
        return RunOutput(vals, errs, "sampled", request.batch_size * groups)

    def _angles(self, request: EstimateRequest) -> torch.Tensor:
        """The rows' slot angles. A slot circuit's (parameter-shift rows) are the request's
        params themselves: shared, not copied (10^6 angles on wide circuits); the request's
        array is read-only and the engine only reads the tensor (no in-place op on angles)."""
        circuit = request.circuit
        if not circuit.identity_angles:
            return torch.as_tensor(circuit.angles(request.params), dtype=self.dtype)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.as_tensor(request.params, dtype=self.dtype)

    def _sample(self, state: torch.Tensor, request: EstimateRequest):
        groups = measurement_groups(request.observables)
        probs = []
        for basis, _ in groups:
            rotated = te.rotate_to_basis(state, basis)
            probs.append((rotated.real**2 + rotated.imag**2).to(torch.float64).numpy())
        rng = np.random.default_rng(request.seed)
        return estimates_by_group(
            request.observables, groups, request.circuit.n_qubits, probs, request.shots, rng
        )

    # -- differentiable path ----------------------------------------------------------
    def torch_expectation(
        self,
        circuit,
        inputs: torch.Tensor,
        weights: torch.Tensor,
        observables: tuple[PauliTerm, ...] | None = None,
        phase: str = "train",
    ) -> torch.Tensor:
        """Exact ``(B, O)`` expectations, differentiable in ``inputs (B, n_in)`` and ``weights``.

        Each observable runs on its light cone; on the full register the trainable layers,
        which do not depend on the row, fuse into one matrix when that pays.
        """
        obs = self._backprop_observables(circuit, observables)
        t0 = time.perf_counter()
        B = inputs.shape[0]
        with engine_threads(circuit.n_qubits):
            angles, shared, shared_slots = te.torch_angles(circuit, inputs.to(self.dtype), weights)
            out = sv_cones.expectations(circuit, angles, tuple(t.label for t in obs), shared, shared_slots)
            out = out * torch.tensor([t.coeff for t in obs], dtype=self.dtype)
        self._record_backprop(phase, B, t0)
        return out
