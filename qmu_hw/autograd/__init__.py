"""Gradients of quantum expectation values and the torch bridge."""

from .allocation import StepShots
from .layer import GRADIENTS, QuantumLayer
from .shift import ShiftPlan, shift_plan
from .spsa import SpsaPlan, spsa_plan

__all__ = ["GRADIENTS", "QuantumLayer",
    "StepShots", "ShiftPlan", "SpsaPlan", "shift_plan", "spsa_plan"]
