"""A third-party adapter living outside qmu_hw (used by test_adapter_info): the torch
engine's exact expectations behind the BaseBackend contract, declared in a few lines."""

from __future__ import annotations

import numpy as np
import torch

from qmu_hw.adapters import torch_engine as te
from qmu_hw.core.backend import BaseBackend, RunOutput, check_options, register_adapter
from qmu_hw.core.contract import Capabilities


@register_adapter("toy")
class ToyBackend(BaseBackend):
    option_schema = {"max_qubits": "largest circuit accepted"}

    def __init__(self, profile, *, options=None, **kw):
        super().__init__(profile, **kw)
        options = check_options(profile, options, set(self.option_schema))
        self.capabilities = Capabilities(exact=True, sampling=False, noise="none",
                                         max_qubits=int(options.get("max_qubits", 8)))

    def _run(self, request):
        with torch.no_grad():
            state = te.simulate(te.compile_plan(request.circuit), torch.as_tensor(request.circuit.angles(request.params)))
            labels = tuple(t.label for t in request.observables)
            coeffs = torch.tensor([t.coeff for t in request.observables], dtype=torch.float64)
            vals = te.pauli_expectations(state, labels, coeffs).numpy()
        return RunOutput(vals, np.zeros_like(vals), "exact", request.batch_size)


@register_adapter("toy-cloud")
class ToyCloud(ToyBackend):
    """Declares an SDK that is not installed and a remote, billed service."""

    sdk = ("qmu_hw_toy_cloud_sdk",)
    extra = "toy-cloud"

    @classmethod
    def is_remote(cls, profile):
        return True
