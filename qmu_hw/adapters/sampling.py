"""Shot sampling shared by the torch engines: probabilities → counts → estimates ± stderr."""

from __future__ import annotations

import numpy as np

from ..core.observables import PauliTerm, z_signs


def normalise(probs: np.ndarray) -> np.ndarray:
    """Clip round-off negatives and renormalise rows to sum to exactly 1 in float64."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 0.0, None)
    return p / p.sum(axis=1, keepdims=True)


def sample_counts(probs: np.ndarray, shots, rng: np.random.Generator) -> np.ndarray:
    """Multinomial counts ``(B, D)`` with ``shots`` (an int or ``(B,)`` array) draws per row."""
    return rng.multinomial(shots, normalise(probs))


def estimates_from_counts(
    counts: np.ndarray, labels: list[str], n_qubits: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of ±1 parities for each label: ``(B, O)`` each.

    The stderr is the sample standard deviation over the shots divided by √N (the
    unbiased sample variance of ±1 outcomes is ``N/(N-1)·(1 − mean²)``).
    """
    shots = counts.sum(axis=1)
    mean = (counts @ z_signs(labels, n_qubits)) / shots[:, None]
    return mean, pauli_stderr(mean, shots)


def pauli_stderr(mean: np.ndarray, shots: np.ndarray) -> np.ndarray:
    """Standard error ``(B, O)`` of ±1-valued estimates ``mean`` from ``shots (B,)`` each:
    the unbiased sample variance ``N/(N−1)·(1 − mean²)`` divided by N."""
    n = np.asarray(shots, dtype=np.float64).reshape(-1, 1)
    var = np.clip(1.0 - mean**2, 0.0, None)
    var = np.where(n > 1, var * n / np.maximum(n - 1, 1), var)
    return np.sqrt(var / n)


def sample_parities(expectations: np.ndarray, shots, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mean and stderr ``(B, O)`` of ``shots`` ±1 outcomes per row (an int or ``(B,)``) of each
    observable with exact expectation ``expectations (B, O)`` (readout included).

    The mean of N shots of one ±1 parity is ``2k/N − 1`` with ``k ~ Binomial(N, (1 + ⟨P⟩)/2)``
    whatever the rest of the register does, so each observable's (value, stderr) has exactly
    the distribution it has when counted from the joint outcomes; only the correlation between
    observables of one row (one shot measures them all) is not reproduced."""
    n = np.broadcast_to(np.asarray(shots, dtype=np.int64).reshape(-1, 1), expectations.shape)
    p = np.clip((1.0 + np.asarray(expectations, dtype=np.float64)) / 2.0, 0.0, 1.0)
    mean = 2.0 * rng.binomial(n, p) / n - 1.0
    return mean, pauli_stderr(mean, n[:, :1])


def confusion(p01: float, p10: float | None = None) -> np.ndarray:
    """Readout confusion matrix ``M[read, prepared]``; ``p01`` = P(read 1 | prepared 0)."""
    p10 = p01 if p10 is None else p10
    return np.array([[1 - p01, p10], [p01, 1 - p10]])


def apply_readout(probs: np.ndarray, n_qubits: int, confusions) -> np.ndarray:
    """Per-qubit readout confusion on outcome probabilities ``(B, D)``.

    ``confusions``: one ``(2, 2)`` matrix for every qubit, or a list of ``n_qubits`` of them
    (qubit 0 first, the most significant bit of the index).
    """
    mats = [np.asarray(confusions)] * n_qubits if np.ndim(confusions) == 2 else list(confusions)
    B = probs.shape[0]
    t = probs.reshape((B,) + (2,) * n_qubits)
    for q in range(n_qubits):
        t = np.moveaxis(np.tensordot(mats[q], t, axes=([1], [q + 1])), 0, q + 1)
    return t.reshape(B, -1)


def term_values(terms: tuple[PauliTerm, ...], group_means: dict[int, tuple[np.ndarray, np.ndarray]]):
    """Assemble ``(B, O)`` values and stderr from per-term (mean, stderr), scaled by coeffs."""
    vals = np.stack([group_means[i][0] for i in range(len(terms))], axis=1)
    errs = np.stack([group_means[i][1] for i in range(len(terms))], axis=1)
    coeffs = np.array([t.coeff for t in terms])
    return vals * coeffs, errs * np.abs(coeffs)


def estimates_by_group(
    terms: tuple[PauliTerm, ...],
    groups: list[tuple[str, list[int]]],
    n_qubits: int,
    per_group,
    shots: int | None,
    rng: np.random.Generator | None = None,
    kind: str = "probs",
):
    """Values and stderr ``(B, O)`` from one array per measurement group.

    ``per_group[k]`` holds outcome probabilities (``kind="probs"``; exact if ``shots`` is
    None, otherwise sampled here) or measured counts (``kind="counts"``) for group k.
    """
    per_term: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for (_, members), arr in zip(groups, per_group, strict=True):
        labels = [terms[i].label for i in members]
        if kind == "counts":
            mean, err = estimates_from_counts(arr, labels, n_qubits)
        elif shots is None:
            mean = normalise(arr) @ z_signs(labels, n_qubits)
            err = np.zeros_like(mean)
        else:
            mean, err = estimates_from_counts(sample_counts(arr, shots, rng), labels, n_qubits)
        for j, i in enumerate(members):
            per_term[i] = (mean[:, j], err[:, j])
    return term_values(terms, per_term)
