"""Model factories that misbehave (used by test_bad_inputs)."""

from torch import nn

from qmu_hw import QuantumLayer
from qmu_hw.circuits import hqml


def four_logits(backend, n_inputs, n_classes):
    """One logit too many for the dataset (4 for 3-class Iris)."""
    return nn.Sequential(QuantumLayer(hqml(n_inputs, 1), backend, shots=None), nn.Linear(n_inputs, n_classes + 1))


def exits(backend, n_inputs, n_classes):
    raise SystemExit(0)
