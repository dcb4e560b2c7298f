"""Shot allocation for one training step: a total split over forward rows and gradient rows.

``uniform`` gives every circuit of the step the same shots. ``variance`` keeps that per-
circuit share for the forward rows and splits the rest over the gradient circuits by
Neyman allocation, ``n_i ∝ |c_i| σ_i``, which minimises the variance of a weighted sum of
independent estimates for a fixed total; this is the allocation used for shot-frugal
variational optimisation by Arrasmith et al., "Operator Sampling for Shot-frugal
Optimization in Variational Algorithms" (arXiv:2004.06252), and Kübler et al., "An Adaptive
Optimizer for Measurement-Frugal Variational Algorithms", Quantum 4, 263 (2020). In a
backward pass the weight of a shifted circuit of row b is known exactly — ``½ · |∂L/∂f_b|``
from the upstream gradient — and its per-observable variance ``σ² = 1 − ⟨O⟩²`` is taken, as
in those optimisers, from the previous step's values of the same shift (1 at the first step).
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
        share = self.total / (1 + shift_terms)  # the same per-circuit share for both splits
        return max(self.min_shots, int(share // batch))

    def gradient(
        self,
        upstream: np.ndarray,
        forward_shots: int,
        shift_terms: int,
        sigma2: np.ndarray | None = None,
    ) -> np.ndarray:
        """Shots of every gradient circuit ``(B·shift_terms,)``, ordered (row, term).

        Args:
            upstream: ``(B, O)`` gradient of the loss w.r.t. the layer outputs.
            forward_shots: shots each forward row received.
            shift_terms: gradient circuits per row.
            sigma2: ``(shift_terms, O)`` variance estimates per term (None: all 1).
        """
        B, O = upstream.shape
        remaining = max(self.total - B * forward_shots, 0)
        if self.split == "uniform":
            per = np.full((B, shift_terms), remaining / (B * shift_terms))
        else:
            s2 = np.ones((shift_terms, O)) if sigma2 is None else np.clip(sigma2, 1e-4, 1.0)
            weight = 0.5 * np.sqrt((upstream[:, None, :] ** 2 * s2[None]).sum(axis=2))  # (B, T)
            if weight.sum() <= 0:
                weight = np.ones_like(weight)
            per = remaining * weight / weight.sum()
        return np.maximum(self.min_shots, np.floor(per)).astype(np.int64).reshape(-1)
