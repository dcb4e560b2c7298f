"""Functional metrics of unlearning quality and membership inference."""

from .functional import (
    accuracy,
    agreement,
    js_divergence,
    kl_divergence,
    tpr_at_fpr,
    uqi,
)
from .mia import confidence_auc, population_attack

__all__ = [
    "accuracy",
    "agreement",
    "confidence_auc",
    "js_divergence",
    "kl_divergence",
    "population_attack",
    "tpr_at_fpr",
    "uqi",
]
