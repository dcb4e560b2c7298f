"""Factories a user would write (imported by name in test_custom_models)."""

from __future__ import annotations

from torch import nn

from qmu_hw import QuantumLayer
from qmu_hw.circuits import hqml


class WithBlocks(nn.Module):
    def __init__(self, backend, n_inputs, n_classes, gradient, shots):
        super().__init__()
        self.q = QuantumLayer(hqml(n_inputs, 1), backend, gradient=gradient, shots=shots)
        self.head = nn.Linear(n_inputs, n_classes)

    def forward(self, x):
        return self.head(self.q(x).float())

    def blocks(self):
        return [("quantum", self.q), ("head", self.head)]

    def groups(self):
        return {"quantum": list(self.q.parameters()), "head": list(self.head.parameters())}


def build(backend, n_inputs, n_classes, gradient="backprop", shots=None):
    return WithBlocks(backend, n_inputs, n_classes, gradient, shots)


def build_plain(backend, n_inputs, n_classes, **kw):
    """No blocks()/groups(): methods that need them must say so."""
    return nn.Sequential(QuantumLayer(hqml(n_inputs, 1), backend, shots=None), nn.Linear(n_inputs, n_classes))


def build_two_layers(backend, n_inputs, n_classes):
    return nn.Sequential(QuantumLayer(hqml(n_inputs, 1), backend, shots=None),
                         QuantumLayer(hqml(n_inputs, 1), backend, shots=None))
