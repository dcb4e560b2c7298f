"""Functional metrics of unlearning quality and membership inference."""

from .functional import (
    accuracy,
    agreement,
    js_divergence,
    kl_divergence,
    tpr_at_fpr,
    uqi,
)
from .mia import class_matched, confidence_auc, population_attack

__all__ = [
    "accuracy",
    "agreement",
    "class_matched",
    "confidence_auc",
    "js_divergence",
    "kl_divergence",
    "population_attack",
    "tpr_at_fpr",
    "uqi",
]
