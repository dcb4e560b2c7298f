"""A user model factory that records ``torch.get_num_threads()`` seen inside a study's cells
(in the file named by QMU_HW_THREAD_PROBE), for test_threads."""

from __future__ import annotations

import os

import torch
from torch import nn

from qmu_hw import QuantumLayer
from qmu_hw.circuits import hqml


class Probe(nn.Module):
    def __init__(self, backend, n_inputs, n_classes):
        super().__init__()
        self.q = QuantumLayer(hqml(n_inputs, 1), backend, gradient="backprop", shots=None)
        self.head = nn.Linear(n_inputs, n_classes)

    def forward(self, x):
        with open(os.environ["QMU_HW_THREAD_PROBE"], "a") as f:
            f.write(f"{torch.get_num_threads()}\n")
        return self.head(self.q(x).float())


def build(backend, n_inputs, n_classes):
    return Probe(backend, n_inputs, n_classes)
