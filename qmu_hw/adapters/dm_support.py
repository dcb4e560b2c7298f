"""Where each observable's adjoint vector lives, layer by layer, in the parameter-shift sweep.

A cone is the union over the whole circuit; walking one observable backward from its
readout, its Heisenberg image is the identity on most qubits for the last layers (``Z_q``
after a CZ ring layer: qubits ``q−1 … q+1``; after L layers ``2L+1`` qubits). Single-qubit
maps are trace-preserving (their PTM's first row is ``(1, 0, 0, 0)``), so they keep the
identity; only two-qubit layers widen the support. So the adjoint sweep can run each
observable on its support: ``4^|S|`` numbers instead of ``4^k``. On ``hqml(10, 6, "ring")``
the adjoint work drops from 6 full-register layers to about 1.3.

Only groups whose two-qubit layers are all gathers (Clifford gates with Pauli noise) are
planned here (the gather's permutation gives the support exactly); others keep full vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .dm_compile import Group


@dataclass
class OutputPlan:
    """One observable of one member: its support before each layer's adjoint step and the
    reduced maps of the gathers."""

    member: int
    obs: int
    after: list  # per layer: the support (local qubits, sorted) of the adjoint just after it
    readin: torch.Tensor  # the readout functional on the support after the last layer
    gathers: dict  # layer → (index, scale) tensors: Y_in = Y_out[index] * scale on the reduced registers


def _embed(S: tuple, k: int) -> np.ndarray:
    """Full indices of the reduced register on ``S`` (identity elsewhere), in reduced order."""
    idx = np.zeros(1, dtype=np.int64)
    for q in S:
        idx = (idx[:, None] + np.arange(4)[None, :] * 4 ** (k - 1 - q)).reshape(-1)
    return idx


@lru_cache(maxsize=4)
def _qubit_masks(k: int) -> np.ndarray:
    """Per index of a k-qubit register, the bitmask of qubits whose letter is not I."""
    idx = np.arange(4**k)
    out = np.zeros(4**k, dtype=np.int64)
    for q in range(k):
        out |= (((idx >> (2 * (k - 1 - q))) & 3) != 0).astype(np.int64) << q
    return out


def _letters_support(indices: np.ndarray, k: int) -> tuple:
    """Qubits on which some of ``indices`` has a letter other than I (one OR over a lookup:
    the per-qubit divisions took 2 s per group at 10 qubits)."""
    mask = int(np.bitwise_or.reduce(_qubit_masks(k)[indices])) if len(indices) else 0
    return tuple(q for q in range(k) if mask >> q & 1)


def _positions(emb: np.ndarray, full: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Reduced positions of full indices in ``emb``, -1 where absent, through ``table`` (a
    ``4^k`` buffer of -1 shared by a plan's layers: a fresh table per layer, or a sorted
    search, took about 1 s per group at 10 qubits)."""
    if len(emb) == len(table):  # the full register: positions are the indices
        return full
    table[emb] = np.arange(len(emb))
    out = table[full]
    table[emb] = -1
    return out


def output_plans(group: Group, adjoint: list) -> list[OutputPlan] | None:
    """Per (member, observable) its supports and reduced gathers, or ``None`` when the group
    has a two-qubit layer that is not a permutation gather (cached on the group)."""
    if hasattr(group, "output_plans"):
        return group.output_plans
    plans = None
    if all(adj is None or adj[0] == "2m" for adj in adjoint):
        plans = [_plan(group, adjoint, m, o) for m, o in _outputs(group)]
    group.output_plans = plans
    return plans


def _outputs(group: Group) -> list[tuple[int, int]]:
    mem, _, _, obs = group.readout
    return sorted({(int(m), int(o)) for m, o in zip(mem, obs, strict=True)})


def _plan(group: Group, adjoint: list, m: int, o: int) -> OutputPlan:
    k = group.k
    mem, idx, w, obs = group.readout
    sel = (mem == m) & (obs == o)
    S = _letters_support(idx[sel], k) or (0,)
    table = -np.ones(4**k, dtype=np.int64)
    readin = torch.zeros(4 ** len(S), dtype=torch.float64)
    readin.index_add_(0, torch.as_tensor(_positions(_embed(S, k), idx[sel], table)), torch.as_tensor(w[sel], dtype=torch.float64))
    after: list = [None] * len(group.layers)
    gathers: dict = {}
    # Where the adjoint may be nonzero: the readout's own indices at first (Z_q: I and Z on q,
    # which a CZ maps to themselves, so the last CZ layer does not widen the support), then,
    # once a single-qubit layer has mixed the letters, every index of the support (None).
    nz = idx[sel]
    for li in range(len(group.layers) - 1, -1, -1):
        after[li] = S
        adj = adjoint[li]
        if adj is None:
            nz = None
            continue
        if len(S) == k and nz is None:  # full register on both sides: the adjoint gather itself
            gathers[li] = (adj[1][m], adj[2][m])
            continue
        src = group.layers[li][1][m].numpy()  # forward: out[i] = scale[i] · in[src[i]]
        emb_out = _embed(S, k)
        nz = src[emb_out if nz is None else nz]
        S_in = _letters_support(nz, k) or (0,)
        emb_in = _embed(S_in, k)
        inv, scale = adj[1][m].numpy(), adj[2][m].numpy()  # adjoint: Y_in[j] = scale[j] · Y_out[inv[j]]
        r = _positions(emb_out, inv[emb_in], table)
        gathers[li] = (torch.as_tensor(np.maximum(r, 0)), torch.as_tensor(np.where(r >= 0, scale[emb_in], 0.0)))
        S = S_in
    return OutputPlan(m, o, after, readin, gathers)


def work(group: Group, plans: list[OutputPlan]) -> tuple[int, int]:
    """Numbers the adjoint sweep touches per row over single-qubit layers: on the supports,
    and on full registers (every output)."""
    ones = [li for li, layer in enumerate(group.layers) if layer[0] == "1"]
    reduced = sum(4 ** len(p.after[li]) for p in plans for li in ones)
    return reduced, len(plans) * len(ones) * 4**group.k


def reduced_slice(X: torch.Tensor, S: tuple, k: int) -> torch.Tensor:
    """``X (R, 4^k)`` at identity on the qubits outside ``S``: ``(R, 4^|S|)``."""
    if len(S) == k:
        return X
    view = X.reshape((X.shape[0],) + (4,) * k)
    index = tuple(slice(None) if q in S else 0 for q in range(k))
    return view[(slice(None),) + index].reshape(X.shape[0], -1)
