"""Hybrid quantum-classical models of the study: [front end] → QuantumLayer → head."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..autograd.layer import QuantumLayer
from ..core.ansatz import hqml
from ..core.exceptions import InvalidRequestError
from .scaling import InputScaler

MODELS = ("hqml-iris", "hqml-iris-deep", "hqml-cnn")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model (checkpoints store it)."""

    name: str
    n_qubits: int
    n_layers: int
    entangler: str = "ring"
    n_classes: int = 3
    image_size: int | None = None
    gradient: str = "backprop"
    shots: Any = "backend"
    grad_shots: Any = "backend"
    extra: dict = field(default_factory=dict)
    input_range: float | None = None  # tabular inputs: angles in [−a, a], scaler fitted on the model's own data


class _AngleMap(nn.Module):
    """``tanh(x)·π``: CNN features → rotation angles."""

    def forward(self, x):
        return torch.tanh(x) * math.pi


class HybridModel(nn.Module):
    """[``scaler``] → ``front`` (optional CNN) → ``quantum`` (QuantumLayer) → ``head``.

    ``scaler`` (tabular data) maps raw features to angles with statistics fitted on this
    model's own training rows (:mod:`.scaling`); it has no trainable parameters. ``blocks()`` lists the trainable blocks input→output, which CF-k / EU-k address by
    position; ``groups()`` names the parameter groups (front, quantum, head).
    """

    def __init__(self, config: ModelConfig, front: nn.Module | None, quantum: QuantumLayer, head: nn.Sequential,
                 scaler: InputScaler | None = None):
        super().__init__()
        self.config = config
        self.scaler = scaler
        self.front = front
        self.quantum = quantum
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scaler is not None:
            x = self.scaler(x)
        if self.front is not None:
            x = self.front(x)
        q = self.quantum(x)
        return self.head(q.to(next(self.head.parameters()).dtype))

    def blocks(self) -> list[tuple[str, nn.Module]]:
        out: list[tuple[str, nn.Module]] = []
        if self.front is not None:
            out += [(f"front.{i}", m) for i, m in enumerate(self.front) if _has_params(m)]
        out.append(("quantum", self.quantum))
        out += [(f"head.{i}", m) for i, m in enumerate(self.head) if _has_params(m)]
        return out

    def groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "front": [] if self.front is None else list(self.front.parameters()),
            "quantum": list(self.quantum.parameters()),
            "head": list(self.head.parameters()),
        }

    def set_phase(self, phase: str) -> None:
        """Ledger label for the quantum requests of this model."""
        self.quantum.phase = phase

    @property
    def backend(self):
        return self.quantum.backend


def _has_params(m: nn.Module) -> bool:
    return any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.parameters())


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
