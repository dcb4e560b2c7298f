"""Circuit constructors: ``qmu_hw.circuits.hqml(n_qubits, n_layers, entangler)``."""

from .core.ansatz import ENTANGLERS, entangler_pairs, hqml
from .core.circuit import Circuit, Gate

__all__ = ["ENTANGLERS", "Circuit", "Gate", "entangler_pairs", "hqml"]
