"""The study's hybrid models; they receive a backend and never import an adapter."""

from .hybrid import MODELS, HybridModel, build_model
from .training import (
    TrainResult,
    evaluate_accuracy,
    fit,
    load_checkpoint,
    predict_proba,
    save_checkpoint,
)

__all__ = [
    "MODELS",
    "HybridModel",
    "TrainResult",
    "build_model",
    "evaluate_accuracy",
    "fit",
    "load_checkpoint",
    "predict_proba",
    "save_checkpoint",
]
