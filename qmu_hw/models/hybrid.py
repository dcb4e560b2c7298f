"""Hybrid quantum-classical models of the study: [front end] → QuantumLayer → head."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..autograd.layer import QuantumLayer
from ..core.ansatz import hqml
from ..core.exceptions import InvalidRequestError
from .model import HybridModel, ModelConfig, _has_params  # noqa: F401  (re-exported)
from .scaling import InputScaler

MODELS = ("hqml-iris", "hqml-iris-deep", "hqml-cnn")


class _AngleMap(nn.Module):
    """``tanh(x)·π``: CNN features → rotation angles."""

    def forward(self, x):
        return torch.tanh(x) * math.pi


def _cnn_front(n_qubits: int, image_size: int) -> nn.Sequential:
    pad = 1 if image_size < 16 else 0  # 8×8 digits need padding to survive two poolings
    s = image_size
    s = (s + 2 * pad - 2) // 2
    s = (s + 2 * pad - 2) // 2
    if s < 1:
        raise InvalidRequestError(f"images of size {image_size} are too small for the CNN front end")
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * s * s, n_qubits), _AngleMap(),
    )


def build_model(
    name: str,
    backend,
    *,
    gradient: str = "backprop",
    shots: Any = "backend",
    grad_shots: Any = "backend",
    n_qubits: int | None = None,
    n_layers: int | None = None,
    entangler: str = "ring",
    n_classes: int | None = None,
    image_size: int | None = None,
    seed: int | None = None,
    step_shots=None,
    input_range: float | None = None,
    extra: dict | None = None,
) -> HybridModel:
    """Build a study model on ``backend``.

    ``hqml-iris``: 4q×2L → Linear(4,16) ReLU Linear(16,3) (the paper's Iris model).
    ``hqml-iris-deep``: 4q×6L → the paper's deeper head (BN, ELU, dropout).
    ``hqml-cnn``: CNN front → n_qubits angles → hqml → Linear(n,32) ReLU Linear(32,C);
    8 qubits for MNIST, 10 for Fashion-MNIST; ``image_size=8`` for the 8×8 digits.
    ``input_range=a`` (tabular models) puts an :class:`InputScaler` to [−a, a] in front,
    fitted by :func:`~qmu_hw.models.training.fit` on the rows the model trains on.
    ``factory:pkg.module:build`` / ``circuit:/path/file.qasm``: a user model
    (:mod:`qmu_hw.models.custom`; ``extra`` carries its inputs/weights names).
    """
    from .custom import build_custom, is_custom

    if is_custom(name):
        return build_custom(name, backend, gradient=gradient, shots=shots, grad_shots=grad_shots, n_qubits=n_qubits,
                            n_classes=n_classes, seed=seed, step_shots=step_shots, extra=extra,
                            input_range=input_range)
    if name not in MODELS:
        raise InvalidRequestError(f"unknown model {name!r}; expected one of {MODELS}")
    if seed is not None:
        torch.manual_seed(seed)
    front = None
    if name == "hqml-iris":
        n_qubits, n_layers, n_classes = n_qubits or 4, 2 if n_layers is None else n_layers, n_classes or 3
        head = nn.Sequential(nn.Linear(n_qubits, 16), nn.ReLU(), nn.Linear(16, n_classes))
    elif name == "hqml-iris-deep":
        n_qubits, n_layers, n_classes = n_qubits or 4, 6 if n_layers is None else n_layers, n_classes or 3
        head = nn.Sequential(
            nn.Linear(n_qubits, 32), nn.BatchNorm1d(32), nn.ELU(),
            nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ELU(),
            nn.Linear(32, 16), nn.ELU(), nn.Dropout(0.2), nn.Linear(16, n_classes),
        )
    else:
        n_qubits, n_layers, n_classes = n_qubits or 8, 2 if n_layers is None else n_layers, n_classes or 10
        image_size = image_size or 28
        front = _cnn_front(n_qubits, image_size)
        head = nn.Sequential(nn.Linear(n_qubits, 32), nn.ReLU(), nn.Linear(32, n_classes))
    if n_qubits > backend.capabilities.max_qubits:
        raise InvalidRequestError(
            f"model {name} needs {n_qubits} qubits; backend {backend.name!r} allows {backend.capabilities.max_qubits}"
        )
    if gradient == "backprop" and not backend.capabilities.backprop:
        gradient = "parameter-shift"  # noisy / hardware backends: the shot-based gradient
    if input_range is not None and front is not None:
        raise InvalidRequestError(f"model {name} reads images through a CNN front end; input_range is for tabular models")
    config = ModelConfig(name, n_qubits, n_layers, entangler, n_classes, image_size, gradient,
                         shots, grad_shots, input_range=input_range)
    qlayer = QuantumLayer(hqml(n_qubits, n_layers, entangler), backend, gradient=gradient,
                          shots=None if gradient == "backprop" else shots,
                          grad_shots=grad_shots, seed=seed, step_shots=step_shots)
    scaler = None if input_range is None else InputScaler(n_qubits, input_range)
    return HybridModel(config, front, qlayer, head, scaler)
