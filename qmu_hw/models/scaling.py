"""Input scaling that belongs to the model: tabular features → rotation angles in [−a, a].

The min/max are fitted on the data the model itself trains on (the teacher on the training
split, an oracle or a retrained model on the retain set), stored as buffers (so checkpoints
and transfers carry them) and applied in ``forward``: every model can then be evaluated on
the same raw rows while each sees them through its own scaling.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.exceptions import InvalidRequestError


class InputScaler(nn.Module):
    """``x ↦ (x − lo)/span · 2a − a`` per feature, ``a = half_range``; ``(B, F) → (B, F)``."""

    def __init__(self, n_features: int, half_range: float) -> None:
        super().__init__()
        if not half_range > 0:
            raise InvalidRequestError(f"input half_range must be > 0, got {half_range}")
        self.half_range = float(half_range)
        self.register_buffer("lo", torch.zeros(n_features, dtype=torch.float64))
        self.register_buffer("span", torch.ones(n_features, dtype=torch.float64))
        self.register_buffer("fitted", torch.tensor(False))

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted)

    @torch.no_grad()
    def fit(self, X: torch.Tensor) -> InputScaler:
        """Min/max of ``X`` ``(N, F)``; a constant feature gets span 1 (maps to −a)."""
        if X.ndim != 2 or X.shape[1] != self.lo.numel() or len(X) == 0:
            raise InvalidRequestError(
                f"input scaler expects a non-empty (N, {self.lo.numel()}) training set, got {tuple(X.shape)}"
            )
        lo, hi = X.double().amin(dim=0), X.double().amax(dim=0)
        self.lo.copy_(lo)
        self.span.copy_(torch.where(hi > lo, hi - lo, torch.ones_like(lo)))
        self.fitted.fill_(True)
        return self

    def reset(self) -> None:
        """Forget the fitted statistics (a model re-initialised to be retrained)."""
        self.lo.zero_()
        self.span.fill_(1.0)
        self.fitted.fill_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.is_fitted:
            raise InvalidRequestError(
                "the model's input scaler is not fitted: train the model with qmu_hw.models.fit (which fits "
                "it on the training rows) or call model.scaler.fit(X_train) first"
            )
        a = self.half_range
        return (x - self.lo.to(x.dtype)) / self.span.to(x.dtype) * (2 * a) - a

    def angle_step(self, eps: float) -> torch.Tensor:
        """The raw-feature change ``(F,)`` that moves each rotation angle by ``eps``."""
        return eps * self.span / (2 * self.half_range)

    def extra_repr(self) -> str:
        return f"features={self.lo.numel()}, half_range={self.half_range:.4f}, fitted={self.is_fitted}"
