"""``[evaluation.per_example]``: the population size of the per-example evaluation.

Kept apart from :mod:`.populations` (which imports torch) so the config check can use the
same rule without loading a model library."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.exceptions import InvalidRequestError

MIN_MODELS = 8
DEFAULT_MODELS = 32


@dataclass(frozen=True)
class PerExampleSettings:
    """``[evaluation.per_example]``: ``n_models`` retrained models and ``n_models`` method runs
    per (scenario, backend arm). Below 8 the Clopper–Pearson bounds cannot certify any ε
    above 0.52, so the evaluation could not tell ``identity`` from ``retrain``."""

    n_models: int = DEFAULT_MODELS

    def __post_init__(self) -> None:
        n = self.n_models
        if not isinstance(n, int) or isinstance(n, bool) or n < MIN_MODELS:
            raise InvalidRequestError(
                f"[evaluation.per_example] n_models: expected an integer ≥ {MIN_MODELS}, got {n!r}")
