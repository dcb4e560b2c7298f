"""Shot allocation for one training step: a total split over forward rows and gradient rows.

``uniform`` gives every circuit of the step the same shots. ``variance`` is Neyman
allocation — ``n_i ∝ |c_i| σ_i``, which minimises the variance of a weighted sum of
independent estimates for a fixed total — as used for shot-frugal variational optimisation
by Arrasmith et al., "Operator Sampling for Shot-frugal Optimization in Variational
Algorithms" (arXiv:2004.06252) and Kübler et al., "An Adaptive Optimizer for
Measurement-Frugal Variational Algorithms", Quantum 4, 263 (2020). Here c = 1 for a forward
row and ½ for a parameter-shift term; σ of a row's shifted circuits is estimated from that
row's forward values, ``σ² = mean_o(1 − ⟨O⟩²)`` (Z-type outcomes are ±1). The forward pass
runs before those values exist, so it assumes equal σ: it receives ``1 / (1 + G')`` of the
total, and the rest follows the forward estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.contract import check_shots
from ..core.exceptions import InvalidRequestError

SPLITS = ("uniform", "variance")


@dataclass(frozen=True)
class StepShots:
    """A total of ``total`` shots per training step (forward + gradient).

    Args:
        total: shots for the whole step.
        split: ``"uniform"`` or ``"variance"`` (Neyman allocation, see the module doc).
        min_shots: floor per circuit (a circuit never gets fewer).
    """

    total: int
    split: str = "uniform"
    min_shots: int = 8

    def __post_init__(self) -> None:
        check_shots(self.total, "StepShots.total")
        check_shots(self.min_shots, "StepShots.min_shots")
        if self.split not in SPLITS:
            raise InvalidRequestError(f"unknown shot split {self.split!r}; expected one of {SPLITS}")

    def forward(self, batch: int, shift_terms: int) -> int:
        """Shots per forward row; ``shift_terms`` = gradient circuits per row (2G', 0 if none)."""
        if shift_terms == 0:
            share = self.total
        elif self.split == "uniform":
            share = self.total * batch / (batch * (1 + shift_terms))
        else:  # forward weight 1 per row vs ½ for each of the 2G' terms
            share = self.total / (1 + shift_terms / 2)
        return max(self.min_shots, int(share // batch))

    def gradient(self, forward_values: np.ndarray, forward_shots: int, shift_terms: int) -> np.ndarray:
        """Shots of every gradient row ``(B·shift_terms,)``, ordered (row, term)."""
        B = forward_values.shape[0]
        remaining = max(self.total - B * forward_shots, 0)
        if self.split == "uniform":
            per = np.full(B, remaining / (B * shift_terms))
        else:
            sigma = np.sqrt(np.clip(1.0 - forward_values**2, 0.0, 1.0).mean(axis=1))
            sigma = np.maximum(sigma, 0.05)  # an estimate of 0 must not starve a row
            per = remaining * sigma / (shift_terms * sigma.sum())
        shots = np.maximum(self.min_shots, np.floor(per)).astype(np.int64)
        return np.repeat(shots, shift_terms)
