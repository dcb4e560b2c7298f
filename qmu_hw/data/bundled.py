"""The two small built-in datasets, shipped with qmu-hw (no scikit-learn needed).

The files are scikit-learn's own copies (see ``bundled/NOTICE``), read the way
``sklearn.datasets.load_iris`` / ``load_digits`` read them, so the arrays are identical.
"""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np


def _path(name: str):
    return resources.files("qmu_hw.data").joinpath("bundled", name)


def load_iris() -> tuple[np.ndarray, np.ndarray]:
    """``(X (150, 4) float64, y (150,) int64)``."""
    with _path("iris.csv").open("r") as f:
        f.readline()  # "150,4,setosa,versicolor,virginica"
        data = np.loadtxt(f, delimiter=",")
    return data[:, :4].astype(np.float64), data[:, 4].astype(np.int64)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(X (1797, 64) float64 in 0..16, y (1797,) int64)``."""
    with _path("digits.csv.gz").open("rb") as raw, gzip.open(raw, "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].astype(np.float64), data[:, -1].astype(np.int64)
