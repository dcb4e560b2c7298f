"""The fast noisy engine: batched torch density matrices with the parametric noise model."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.backend import BaseBackend, RunOutput, check_options
from ..core.contract import Capabilities, EstimateRequest
from ..core.observables import measurement_groups
from ..core.profiles import Profile
from .dm_engine import noisy_probabilities
from .registry import register_adapter
from .sampling import apply_readout, confusion, estimates_by_group


@register_adapter("density-matrix")
class DensityMatrixBackend(BaseBackend):
    """Depolarizing + readout noise on ≤ ~10 qubits; agrees with Aer on the same model.

    Options: ``max_qubits`` (default 10).
    """

    def __init__(self, profile: Profile, *, options: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(profile, **kw)
        options = check_options(profile, options, {"max_qubits"})
        self.p1, self.p2, self.readout = profile.parametric_noise("density-matrix")
        max_q = int(options.get("max_qubits", profile.limits.get("max_qubits", 10)))
        self.capabilities = Capabilities(
            exact=True, sampling=True, noise=profile.describe_noise(), max_qubits=max_q, backprop=False
        )

    def probabilities(self, circuit, params: np.ndarray, basis: str | None = None) -> np.ndarray:
        """Exact noisy outcome probabilities ``(B, 2**n)`` including readout error."""
        n = circuit.n_qubits
        probs = noisy_probabilities(circuit, circuit.angles(np.atleast_2d(params)), basis or "Z" * n, self.p1, self.p2)
        return apply_readout(probs, n, confusion(self.readout)) if self.readout else probs

    def _run(self, request: EstimateRequest) -> RunOutput:
        circuit, n = request.circuit, request.circuit.n_qubits
        groups = measurement_groups(request.observables)
        per_group = [self.probabilities(circuit, request.params, basis) for basis, _ in groups]
        rng = np.random.default_rng(request.seed)
        vals, errs = estimates_by_group(request.observables, groups, n, per_group, request.shots, rng)
        method = "exact" if request.shots is None else "sampled"
        return RunOutput(vals, errs, method, request.batch_size * len(groups))
