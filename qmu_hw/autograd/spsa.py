"""SPSA Jacobian estimates: two evaluations per row, whatever the number of parameters.

``J ≈ (f(p + cΔ) − f(p − cΔ)) / (2c) ⊗ Δ`` with Rademacher ``Δ`` drawn independently per row
(Spall 1992), restricted to the parameters that need a gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpsaPlan:
    rows: np.ndarray  # (2B, P) ordered (row, ±)
    delta: np.ndarray  # (B, P), zero where no gradient is needed
    epsilon: float

    def jacobian(self, values: np.ndarray) -> np.ndarray:
        """``(2B, O)`` → ``(B, O, P)``."""
        B = self.delta.shape[0]
        v = values.reshape(B, 2, -1)
        diff = (v[:, 0] - v[:, 1]) / (2 * self.epsilon)
        return diff[:, :, None] * self.delta[:, None, :]


def spsa_plan(
    params: np.ndarray, mask: np.ndarray, rng: np.random.Generator, epsilon: float = 0.1
) -> SpsaPlan:
    """Perturbed rows for ``params (B, P)``; ``mask (P,)`` marks parameters needing a gradient."""
    params = np.atleast_2d(np.asarray(params, dtype=np.float64))
    delta = rng.choice([-1.0, 1.0], size=params.shape) * np.asarray(mask, dtype=np.float64)
    rows = np.stack([params + epsilon * delta, params - epsilon * delta], axis=1)
    return SpsaPlan(rows.reshape(-1, params.shape[1]), delta, epsilon)
