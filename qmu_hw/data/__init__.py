"""Datasets (embedded Iris and 8×8 digits; MNIST/Fashion-MNIST from local files) and
forget scenarios."""

from .datasets import DATASETS, Dataset, load_dataset
from .splits import DataSplits, ForgetScenario, make_scenario, make_splits, parse_scenario

__all__ = [
    "DATASETS",
    "DataSplits",
    "Dataset",
    "ForgetScenario",
    "load_dataset",
    "make_scenario",
    "make_splits",
    "parse_scenario",
]
