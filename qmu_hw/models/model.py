"""The model class every study model is: [scaler] → [front end] → QuantumLayer → head, and
its build settings. Apart from :mod:`.hybrid` (the built-in models) so that user models
(:mod:`.custom`) build the same class without importing the built-in catalogue, which in
turn dispatches to them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..autograd.layer import QuantumLayer
from .scaling import InputScaler


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


