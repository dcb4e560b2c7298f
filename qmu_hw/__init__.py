"""qmu-hw: machine unlearning for hybrid quantum-classical models, from exact simulators
to real quantum hardware, with one backend interface.

``import qmu_hw`` stays light: the SDKs (qiskit, braket, pennylane) and matplotlib are
imported only by the adapters or reports that need them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .core.circuit import Circuit, Gate
from .core.contract import Backend, Capabilities, EstimateRequest, EstimateResult
from .core.exceptions import (
    BackendUnavailableError,
    BudgetExceededError,
    InvalidRequestError,
    MissingCredentialsError,
    MissingDependencyError,
    ProfileError,
    QmuHwError,
    ResultPendingError,
    TaskFailedError,
    UnsupportedFeatureError,
)
from .core.ledger import ShotBudget, ShotLedger
from .core.observables import PauliTerm, z_each

__version__ = "0.1.0"

_LAZY = {
    "QuantumLayer": "qmu_hw.autograd.layer",
    "get_backend": "qmu_hw.adapters.registry",
    "circuits": "qmu_hw.circuits",
}


def __getattr__(name: str) -> Any:
    # torch-backed pieces load on first use so that `import qmu_hw` stays fast.
    if name in _LAZY:
        mod = import_module(_LAZY[name])
        return mod if name == "circuits" else getattr(mod, name)
    raise AttributeError(f"module 'qmu_hw' has no attribute {name!r}")


__all__ = [
    "Backend",
    "BackendUnavailableError",
    "BudgetExceededError",
    "Capabilities",
    "Circuit",
    "EstimateRequest",
    "EstimateResult",
    "Gate",
    "InvalidRequestError",
    "MissingCredentialsError",
    "MissingDependencyError",
    "PauliTerm",
    "ProfileError",
    "QmuHwError",
    "QuantumLayer",
    "ResultPendingError",
    "ShotBudget",
    "ShotLedger",
    "TaskFailedError",
    "UnsupportedFeatureError",
    "circuits",
    "get_backend",
    "z_each",
]
