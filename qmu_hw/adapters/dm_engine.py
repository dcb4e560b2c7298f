"""Batched, exact, differentiable noisy simulation in the Pauli-transfer-matrix picture.

The state is the real vector of Pauli expectations (``4**k`` numbers on k qubits); a gate
followed by its noise is a real matrix. Three things keep it fast (measured in
benchmarks/bench_noisy_scale.py):

* **Light cones** (``light_cone``): each observable is computed on its own reduced register —
  3 qubits for ``⟨Z_q⟩`` after 2 ring layers, whatever the width — and observables whose
  reduced circuits have the same structure run as one batch ("members" of a group).
* **Single-qubit layers** are built in closed form for all rows, members and qubits at once
  (Rodrigues: ``R(θ) = I + sinθ K + (1 − cosθ) K²``) and fused per qubit into one 4×4.
* **Two-qubit layers** are one dense matrix up to ``FUSE_MAX_QUBITS``; beyond, CZ/CNOT with
  Pauli noise is a signed, scaled permutation of Paulis (one gather and one multiply per
  layer); non-unital noise (thermal relaxation) falls back to gate-by-gate contraction.

Compiling circuits into those batched groups is :mod:`.dm_compile` (its public names are
re-exported here); this module holds the memory plan, running a group over rows of angles,
and the entry points :func:`noisy_expectations` and :func:`noisy_probabilities`.

Everything is torch, so with ``requires_grad`` angles the expectations are differentiable
(``DensityMatrixBackend.torch_expectation``). Sampled mode draws each observable's shots from
its exact cone value by default (``sampling.sample_parities``); the joint outcome distribution
of a measured group (``sampling = "joint"``), which no small cone holds, runs on the full
register (:func:`noisy_probabilities`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..core.circuit import Circuit
from ..core.exceptions import InvalidRequestError
from ..core.observables import PauliTerm
from .dm_compile import (  # noqa: F401  (FUSE_MAX_QUBITS, FULL_REGISTER_QUBITS re-exported)
    FULL_REGISTER_QUBITS,
    FUSE_MAX_QUBITS,
    Group,
    _apply_2q,
    expectation_groups,
    full_register_group,
    observable_cones,
)
from .light_cone import distinct_rows
from .ptm_noise import PTMNoise

CHUNK_BYTES = 4 * 2**20  # rows per pass sized to stay in cache: 8x faster than 256 MiB on 4^8 registers
_WORK_COPIES = 6  # state, layer output and einsum temporaries alive at once, per row
PAIR_MIN_QUBITS = 6  # from here single-qubit layers are applied two qubits per pass


def planned_row_bytes(cone_sizes: list[int]) -> int:
    """Working memory per batch row of the largest group of reduced registers (upper bound:
    every register of one size batched together)."""
    counts: dict[int, int] = {}
    for k in cone_sizes:
        counts[k] = counts.get(k, 0) + 1
    return max((8 * m * 4**k * _WORK_COPIES for k, m in counts.items()), default=0)


def check_memory(cone_sizes: list[int], limit_bytes: int, what: str, rows: int = 1) -> None:
    """Refuse, before anything is compiled or run, a plan whose ``rows`` rows held at once
    (1 when chunked; the batch times the layers autograd keeps, when differentiating) need
    more memory than the limit."""
    need = planned_row_bytes(cone_sizes) * rows
    if need > limit_bytes:
        k = max(cone_sizes)
        held = "one row" if rows == 1 else f"{rows} row-layers kept for autograd"
        raise InvalidRequestError(
            f"{what}: the density-matrix engine would need {need / 2**30:.1f} GiB for {held} "
            f"(a {k}-qubit reduced register holds 4^{k} numbers), more than its memory limit of "
            f"{limit_bytes / 2**30:.1f} GiB; use fewer qubits, a circuit with smaller light cones "
            "(fewer layers, a sparser entangler), or raise the 'max_memory_gb' option"
        )


def row_bytes(group: Group) -> int:
    """Working memory per batch row of a compiled group (float64)."""
    return 8 * group.members * 4**group.k * _WORK_COPIES


def _position_mats(layer: tuple, ang: torch.Tensor) -> torch.Tensor:
    """Every position's 4×4 for all rows, members, qubits: ``(R, M, P, k, 4, 4)``."""
    _, slots, c0, c1, c2 = layer
    member = torch.arange(slots.shape[0])[:, None, None]
    theta = ang[:, member, slots][..., None, None]  # (R, M, P, k, 1, 1); slot -1: the zero column
    return c0 + torch.sin(theta) * c1 + (1 - torch.cos(theta)) * c2


def _ztype_tail(group: Group):
    """The layers after the last single-qubit layer restricted to Z-type strings, when they
    are gathers that map Z-type strings from Z-type strings (CZ/CNOT with Pauli noise);
    else None. Outcome probabilities need only Z-type strings, so the last single-qubit
    layer can then project each qubit onto (I, Z) as it goes (a quarter of the state)."""
    ones = [i for i, layer in enumerate(group.layers) if layer[0] == "1"]
    if not ones:
        return None
    zt = _ztype_indices(group.k)
    zpos = -np.ones(4**group.k, dtype=np.int64)
    zpos[zt] = np.arange(len(zt))
    tail = []
    for layer in group.layers[ones[-1] + 1 :]:
        if layer[0] != "2m":
            return None
        src = zpos[layer[1].numpy()[:, zt]]
        if (src < 0).any():
            return None
        tail.append(("2m", torch.as_tensor(src), layer[2][:, torch.as_tensor(zt)]))
    return ones[-1], tail


def run_group(group: Group, ang: torch.Tensor, ztail=None) -> torch.Tensor:
    """Final reduced states ``(R, M, 4**k)`` for per-member angles ``ang (R, M, G+1)``
    (last column 0). With ``ztail`` (from ``_ztype_tail``): only the Z-type strings,
    ``(R, M, 2**k)`` ordered like basis indices."""
    R, M, k = ang.shape[0], group.members, group.k
    last, layers = (None, group.layers) if ztail is None else (ztail[0], group.layers[: ztail[0] + 1] + ztail[1])
    state = None
    for li, layer in enumerate(layers):
        kind = layer[0]
        if kind == "1":
            m = _position_mats(layer, ang)
            keep = [0, 3] if li == last else slice(None)  # project onto (I, Z)
            if state is None:  # product state from |0…0⟩ = (I + Z) per qubit: matrix-vector chain
                v = m[:, :, 0, :, :, 0] + m[:, :, 0, :, :, 3]  # (R, M, k, 4)
                for p in range(1, m.shape[2]):
                    v = torch.einsum("rmkij,rmkj->rmki", m[:, :, p], v)
                v = v[..., keep]
                st = v[:, :, 0]
                for q in range(1, k):
                    st = (st[..., :, None] * v[:, :, q, None, :]).reshape(R, M, -1)
                state = st
                continue
            mats = m[:, :, 0]
            for p in range(1, m.shape[2]):
                mats = torch.einsum("rmkij,rmkjl->rmkil", m[:, :, p], mats)
            state = _apply_1q_layer(state, mats[..., keep, :], k)
            continue
        if state is None:
            state = _zero_state(R, M, k, ang.dtype)
        if kind == "2d":
            state = torch.einsum("rmi,mij->rmj", state, layer[1])
        elif kind == "2m":
            src, scale = layer[1], layer[2]
            state = torch.gather(state, 2, src.expand(R, -1, -1)) * scale
        else:
            state = torch.stack(
                [_seq(state[:, m], layer[1][m], k) for m in range(M)], dim=1
            )
    return _zero_state(R, M, k, ang.dtype) if state is None else state


def _apply_1q_layer(state: torch.Tensor, mats: torch.Tensor, k: int) -> torch.Tensor:
    """Per-qubit maps ``(R, M, k, o, 4)`` on ``(R, M, 4**k)`` (``o`` = 4, or 2 to keep only
    I and Z). On large registers the pass over memory dominates, so qubits go in pairs (one
    16×16 pass per pair; measured 2× at 8 qubits)."""
    R, M = state.shape[:2]
    o = mats.shape[-2]
    q = 0
    while q < k:
        if k >= PAIR_MIN_QUBITS and q + 1 < k:
            m = torch.einsum("rmij,rmkl->rmikjl", mats[:, :, q], mats[:, :, q + 1]).reshape(R, M, o * o, 16)
            width = 2
        else:
            m, width = mats[:, :, q], 1
        s = state.reshape(R, M, o**q, 4**width, 4 ** (k - q - width))
        state = torch.einsum("rmij,rmajc->rmaic", m, s).reshape(R, M, -1)
        q += width
    return state


def _seq(state: torch.Tensor, ops: list, k: int) -> torch.Tensor:
    for a, b, r in ops:
        state = _apply_2q(state, r, a, b, k)
    return state


def _zero_state(R: int, M: int, k: int, dtype) -> torch.Tensor:
    st = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=dtype)
    full = st
    for _ in range(1, k):
        full = torch.kron(full, st)
    return full.expand(R, M, -1)


def _distinct_rows(flat: np.ndarray, member_slots: list[np.ndarray], dedup: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose angles differ on a member's slots, per member: ``(R', M)`` row indices
    (padded by repetition) and ``(M, B)`` the distinct row serving each original row."""
    firsts, inverses = zip(*(distinct_rows(flat, slots, dedup) for slots in member_slots), strict=True)
    R = max(len(f) for f in firsts)
    rows = np.stack([np.concatenate([f, np.full(R - len(f), f[0])]) for f in firsts], axis=1)
    return torch.as_tensor(rows), torch.as_tensor(np.stack(inverses))


def _with_zero(angles: torch.Tensor) -> torch.Tensor:
    return torch.cat([angles, angles.new_zeros(angles.shape[0], 1)], dim=1)


def noisy_expectations(
    circuit: Circuit, angles: torch.Tensor, terms: tuple[PauliTerm, ...], noise: PTMNoise,
    memory_limit: int = 4 * 2**30,
) -> torch.Tensor:
    """Exact noisy ``(B, O)`` expectations (readout included), differentiable in ``angles (B, G)``."""
    labels = tuple(t.label for t in terms)
    cones, _ = observable_cones(circuit, noise, labels)
    check_memory([len(c) for c in cones], memory_limit, f"circuit {circuit.name!r}")
    groups, constant = expectation_groups(circuit, noise, labels)
    B = angles.shape[0]
    ang = _with_zero(angles.to(torch.float64))
    flat = ang.detach().numpy()
    vals = ang.new_zeros(B, len(terms))
    for g in groups:
        # under autograd, equal rows (a batch with repeated samples) keep their own gradients
        rows, inverse = _distinct_rows(flat, g.member_slots, dedup=not angles.requires_grad)
        mem, idx, w, obs = (torch.as_tensor(x) for x in g.readout)
        chunk = rows.shape[0] if angles.requires_grad else max(1, CHUNK_BYTES // row_bytes(g))
        parts = []
        for start in range(0, rows.shape[0], chunk):
            sel = rows[start : start + chunk]  # (r, M) row of each member
            st = run_group(g, ang[sel])
            parts.append(st[:, mem, idx] * w)
        contrib = torch.cat(parts)  # (R', E) on distinct rows
        contrib = contrib.gather(0, inverse[mem].T)  # back to (B, E)
        vals = vals.index_add(1, obs, contrib)
    if constant:
        vals[:, constant] = 1.0
    coeffs = torch.tensor([t.coeff for t in terms], dtype=torch.float64)
    return vals * coeffs


@lru_cache(maxsize=16)
def _walsh(n: int) -> np.ndarray:
    """``(2^n, 2^n)``: ``p(x) = 2^-n Σ_S ⟨Z_S⟩ (−1)^{|S∧x|}``."""
    h = np.array([[1.0, 1.0], [1.0, -1.0]])
    out = np.ones((1, 1))
    for _ in range(n):
        out = np.kron(out, h)
    return out / 2**n


@lru_cache(maxsize=16)
def _ztype_indices(n: int) -> np.ndarray:
    """PTM indices of the Z-type strings, ordered like basis indices (I→0, Z→1)."""
    idx = np.arange(2**n)
    out = np.zeros(2**n, dtype=np.int64)
    for q in range(n):
        out += ((idx >> (n - 1 - q)) & 1) * 3 * 4 ** (n - 1 - q)
    return out


def noisy_probabilities(
    circuit: Circuit, angles: np.ndarray, basis: str, noise: PTMNoise, memory_limit: int = 4 * 2**30
) -> np.ndarray:
    """Exact outcome probabilities ``(B, 2**n)`` in ``basis`` (before readout confusion)."""
    n = circuit.n_qubits
    check_memory([n], memory_limit, f"circuit {circuit.name!r}")
    g = full_register_group(circuit, noise, basis)
    if not hasattr(g, "ztail"):
        g.ztail = _ztype_tail(g)
    zt = torch.as_tensor(_ztype_indices(n))
    walsh = torch.as_tensor(_walsh(n))
    B = angles.shape[0]
    chunk = max(1, CHUNK_BYTES // row_bytes(g))
    out = np.empty((B, 2**n))
    with torch.no_grad():
        ang = _with_zero(torch.as_tensor(angles, dtype=torch.float64))[:, None, :]
        for start in range(0, B, chunk):
            st = run_group(g, ang[start : start + chunk], g.ztail)[:, 0]
            z = st if g.ztail is not None else st[:, zt]
            out[start : start + st.shape[0]] = (z @ walsh).numpy()
    return out
