"""Unlearning methods, by name: ``unlearn("scrub", teacher, data)``.

The paper's eleven (``ga``, ``fisher``, ``neggrad+``, ``cf-k``, ``eu-k``, ``scrub``,
``scrub+r``, ``certified``, ``q-mul``, ``lca``, ``adv-uniform``), the baselines
(``retrain`` — the oracle —, ``identity``, ``finetune``, ``random-label``) and two strong
classical methods (``salun``, ``ssd``). None mutates the teacher it is given.
"""

from . import adversarial, distill, fisher, gradient, labels, retrain  # noqa: F401  (registration)
from .base import (
    UnlearnData,
    UnlearnReport,
    get_method,
    method_defaults,
    method_names,
    register_method,
    unlearn,
)

PAPER_METHODS = ("ga", "fisher", "neggrad+", "cf-k", "eu-k", "scrub", "scrub+r", "certified", "q-mul",
                 "lca", "adv-uniform")
BASELINES = ("retrain", "identity", "finetune", "random-label")
CLASSICAL = ("salun", "ssd")

__all__ = [
    "BASELINES",
    "CLASSICAL",
    "PAPER_METHODS",
    "UnlearnData",
    "UnlearnReport",
    "get_method",
    "method_defaults",
    "method_names",
    "register_method",
    "unlearn",
]
