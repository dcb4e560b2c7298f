"""Datasets: raw arrays, balanced per-class subsampling, no downloads ever."""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.exceptions import InvalidRequestError

DATASETS = ("iris", "digits", "mnist", "fashion-mnist")
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class Dataset:
    """``X`` is ``(N, d)`` features or ``(N, 1, H, W)`` images (float64); ``y`` is ``(N,)``."""

    name: str
    X: np.ndarray
    y: np.ndarray
    n_classes: int
    kind: str  # "tabular" | "image"

    def __post_init__(self) -> None:
        if len(self.X) != len(self.y):
            raise InvalidRequestError(f"dataset {self.name}: {len(self.X)} inputs but {len(self.y)} labels")
        if not np.all(np.isfinite(self.X)):
            raise InvalidRequestError(f"dataset {self.name}: inputs contain NaN or inf")


def balanced_subsample(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices with ``per_class`` samples of every class (all of a class if it has fewer)."""
    idx = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        idx.append(rng.choice(members, size=min(per_class, len(members)), replace=False))
    return np.sort(np.concatenate(idx))


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise InvalidRequestError(f"{path} is not an IDX file (bad magic number)")
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}.get(data[2])
    if dtype is None:
        raise InvalidRequestError(f"{path}: unknown IDX data type 0x{data[2]:02x}")
    ndim = data[3]
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise InvalidRequestError(f"{path}: header says shape {shape} but holds {arr.size} values")
    return arr.reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for cand in (folder / stem, folder / f"{stem}.gz"):
        if cand.is_file():
            return cand
    return None


def _load_mnist_like(name: str, data_dir: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    if data_dir is None:
        raise InvalidRequestError(
            f"dataset {name!r} is read from local files: pass data_dir=FOLDER holding either "
            f"{name}.npz (arrays x_train, y_train, x_test, y_test) or the four IDX files "
            "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
            "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]. qmu-hw never downloads data."
        )
    folder = Path(data_dir)
    npz = folder / f"{name}.npz"
    if npz.is_file():
        try:  # allow_pickle=False: an object array in a downloaded file is refused, never unpickled
            with np.load(npz, allow_pickle=False) as z:
                missing = {"x_train", "y_train", "x_test", "y_test"} - set(z.files)
                if missing:
                    raise InvalidRequestError(f"{npz} lacks arrays {sorted(missing)}")
                X = np.concatenate([z["x_train"], z["x_test"]])
                y = np.concatenate([z["y_train"], z["y_test"]])
        except (ValueError, OSError, EOFError) as exc:
            if isinstance(exc, InvalidRequestError):
                raise
            raise InvalidRequestError(f"{npz} is not a plain numeric npz ({str(exc).splitlines()[0]})") from None
        return X, y
    parts = []
    for split, (img, lab) in _IDX_FILES.items():
        pi, pl = _find(folder, img), _find(folder, lab)
        if pi is None or pl is None:
            raise InvalidRequestError(
                f"dataset {name!r}: no {name}.npz and no IDX {split} files in {folder}; expected "
                f"{img}[.gz] and {lab}[.gz] (or {name}.npz). qmu-hw never downloads data."
            )
        parts.append((read_idx(pi), read_idx(pl)))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    per_class: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Load a dataset by name; ``per_class`` subsamples a balanced set (as the paper does)."""
    if name not in DATASETS:
        raise InvalidRequestError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    if name == "iris":
        from .bundled import load_iris

        X, y = load_iris()
        kind = "tabular"
    elif name == "digits":
        from .bundled import load_digits

        X, y = load_digits()
        X = X.reshape(-1, 1, 8, 8) / 16.0
        kind = "image"
    else:
        X, y = _load_mnist_like(name, data_dir)
        if X.ndim != 3:
            raise InvalidRequestError(f"{name}: expected images (N, H, W), got shape {X.shape}")
        X = X.reshape(len(X), 1, *X.shape[1:]).astype(np.float64) / 255.0
        kind = "image"
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if per_class is not None:
        if per_class < 1:
            raise InvalidRequestError(f"per_class must be >= 1, got {per_class}")
        idx = balanced_subsample(y, per_class, np.random.default_rng(seed))
        X, y = X[idx], y[idx]
    return Dataset(name, X, y, int(y.max()) + 1, kind)
