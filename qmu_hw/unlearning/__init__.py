"""Unlearning methods, by name: ``unlearn("scrub", teacher, data)``.

The paper's eleven (``ga``, ``fisher-ewc`` — the paper's "Fisher" —, ``neggrad+``, ``cf-k``, ``eu-k``, ``scrub``,
``scrub+r``, ``certified``, ``q-mul``, ``lca``, ``adv-uniform``), the baselines
(``retrain`` — the oracle —, ``identity``, ``finetune``, ``random-label``) and two strong
classical methods (``fisher`` — Golatkar et al.'s Fisher forgetting —, ``salun``, ``ssd``).
Every method registers its cost model with it (:mod:`.cost`). None mutates the teacher it is given.
"""

from . import adversarial, distill, fisher, gradient, labels, retrain  # noqa: F401  (registration)
from .base import (
    UnlearnData,
    UnlearnReport,
    check_hyperparameters,
    get_method,
    hyperparameter_problem,
    method_cost,
    method_defaults,
    method_names,
    register_method,
    unlearn,
)

PAPER_METHODS = ("ga", "fisher-ewc", "neggrad+", "cf-k", "eu-k", "scrub", "scrub+r", "certified", "q-mul",
                 "lca", "adv-uniform")
BASELINES = ("retrain", "identity", "finetune", "random-label")
CLASSICAL = ("fisher", "salun", "ssd")

__all__ = [
    "BASELINES",
    "CLASSICAL",
    "PAPER_METHODS",
    "UnlearnData",
    "UnlearnReport",
    "check_hyperparameters",
    "get_method",
    "hyperparameter_problem",
    "method_cost",
    "method_defaults",
    "method_names",
    "register_method",
    "unlearn",
]
