"""Shot sampling shared by the torch engines: probabilities → counts → estimates ± stderr."""

from __future__ import annotations

import numpy as np

from ..core.observables import PauliTerm, z_signs


def normalise(probs: np.ndarray) -> np.ndarray:
    """Clip round-off negatives and renormalise rows to sum to exactly 1 in float64."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 0.0, None)
    return p / p.sum(axis=1, keepdims=True)


def sample_counts(probs: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Multinomial counts ``(B, D)`` with ``shots`` draws per row."""
    return rng.multinomial(shots, normalise(probs))


def estimates_from_counts(
    counts: np.ndarray, labels: list[str], n_qubits: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of ±1 parities for each label: ``(B, O)`` each.

    The stderr is the sample standard deviation over the shots divided by √N (the
    unbiased sample variance of ±1 outcomes is ``N/(N-1)·(1 − mean²)``).
    """
    shots = counts.sum(axis=1, keepdims=True).astype(np.float64)
    signs = z_signs(labels, n_qubits)
    mean = (counts @ signs) / shots
    var = np.clip(1.0 - mean**2, 0.0, None)
    var = np.where(shots > 1, var * shots / np.maximum(shots - 1, 1), var)
    return mean, np.sqrt(var / shots)


def apply_readout(probs: np.ndarray, n_qubits: int, p01: float, p10: float | None = None) -> np.ndarray:
    """Per-qubit readout confusion on outcome probabilities ``(B, D)``.

    ``p01`` is P(read 1 | prepared 0) and ``p10`` P(read 0 | prepared 1) (symmetric if None).
    """
    p10 = p01 if p10 is None else p10
    conf = np.array([[1 - p01, p10], [p01, 1 - p10]])
    B = probs.shape[0]
    t = probs.reshape((B,) + (2,) * n_qubits)
    for q in range(n_qubits):
        t = np.moveaxis(np.tensordot(conf, t, axes=([1], [q + 1])), 0, q + 1)
    return t.reshape(B, -1)


def term_values(terms: tuple[PauliTerm, ...], group_means: dict[int, tuple[np.ndarray, np.ndarray]]):
    """Assemble ``(B, O)`` values and stderr from per-term (mean, stderr), scaled by coeffs."""
    vals = np.stack([group_means[i][0] for i in range(len(terms))], axis=1)
    errs = np.stack([group_means[i][1] for i in range(len(terms))], axis=1)
    coeffs = np.array([t.coeff for t in terms])
    return vals * coeffs, errs * np.abs(coeffs)
