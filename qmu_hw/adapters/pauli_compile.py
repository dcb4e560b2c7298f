"""Compiling a noisy circuit into a Heisenberg-picture Pauli-propagation plan.

Each observable (its readout functional after basis change and confusion, as the density-
matrix engine measures it) is a sum of Pauli strings; walking the noisy circuit from the last
gate to the first maps every string ``P`` through the transpose of the gate's Pauli-transfer
matrix, ``P → Σ_in R[P, in] · in`` (the same ``R`` the density-matrix engine applies
forwards, noise included). At the start only strings of ``I``/``Z`` have a nonzero value on
``|0…0⟩`` (one).

The *structure* — which strings exist after each step and which old string feeds which new
one — does not depend on the angles (a rotation's PTM at a generic angle has the union of all
angles' nonzero patterns), so it is compiled once per (circuit, noise, labels, max weight)
into index arrays; a run is one gather, multiply and ``index_add`` per step on ``(B, T)``
coefficient tensors (see :mod:`.pauli_prop`).

Truncation: a two-qubit gate is the only step that raises a string's weight (single-qubit
maps keep the support or shrink it). A string whose weight exceeds ``max_weight`` after a
two-qubit gate is dropped there, and the step keeps its source index and value so the run
can add ``|coefficient|`` to the error bound: the dropped term ``c·P`` would have contributed
``c·Tr(P ρ_t)`` with ``|Tr(P ρ_t)| ≤ 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..core.circuit import Circuit
from ..core.exceptions import InvalidRequestError
from .dm_compile import _readout_weights
from .light_cone import Op1, Op2, circuit_ops
from .ptm import K2_TABLE, K_TABLE
from .ptm_noise import PTMNoise

_XBIT = np.array([0, 1, 1, 0], dtype=np.int64)  # letters I X Y Z → x bit, z bit
_ZBIT = np.array([0, 0, 1, 1], dtype=np.int64)
_GENERIC = (0.7548776662, 2.1411)  # two generic angles: the union of their patterns is the generic one


@dataclass
class Step:
    """One step of the backward walk.

    ``new[:, dst[e]] += old[:, src[e]] · value(e)``: ``value`` is ``const[e]`` (a fixed map)
    or the ``entry[e]``-th number of the step's per-row ``4 × 4`` run matrix ``run``
    (flattened ``out·4 + in``; ``run`` indexes :attr:`Plan.runs`). ``drop_src``/``drop_val``:
    terms dropped by truncation (only after two-qubit gates), for the error bound.
    """

    src: np.ndarray
    dst: np.ndarray
    n_out: int
    const: np.ndarray | None = None
    run: int = -1
    entry: np.ndarray | None = None
    drop_src: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    drop_val: np.ndarray = field(default_factory=lambda: np.zeros(0))
    drop_obs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class Plan:
    """The compiled walk of all observables at once (terms tagged by observable)."""

    n_obs: int
    init_obs: np.ndarray  # (T0,) observable of each initial term
    init_coeff: np.ndarray  # (T0,) readout-functional weight
    steps: list
    runs: list  # per fused single-qubit run: [(slot, C (3, 4, 4))] in time order
    final_obs: np.ndarray  # (T,) observable of each final term
    final_live: np.ndarray  # (T,) bool: the string is I/Z only (⟨P⟩ = 1 on |0…0⟩)
    max_terms: int  # the largest term count on the way (memory plan)
    max_entries: int
    total_entries: int  # summed over steps: what autograd keeps per row
    tensors: object = None  # the run's torch form, built on first use (pauli_prop)


def _letters_to_bits(letters: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    w = 1 << (n - 1 - np.arange(n, dtype=np.int64))  # qubit 0 most significant
    return (_XBIT[letters] * w).sum(axis=-1), (_ZBIT[letters] * w).sum(axis=-1)


def _letter(x: np.ndarray, z: np.ndarray, q: int, n: int) -> np.ndarray:
    """Letter index (I X Y Z → 0 1 2 3) of every string on qubit q: ``x + 3z − 2xz``."""
    s = n - 1 - q
    xb, zb = (x >> s) & 1, (z >> s) & 1
    return xb + 3 * zb - 2 * xb * zb


def _set_letter(x, z, q, n, letters):
    s = n - 1 - q
    mask = ~(np.int64(1) << s)
    return (x & mask) | (_XBIT[letters] << s), (z & mask) | (_ZBIT[letters] << s)


_POPCOUNT = np.array([bin(i).count("1") for i in range(1 << 16)], dtype=np.int64)


def _weight(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Pauli weight of every string (popcount of x | z, 16 bits per table lookup; numpy >= 1.24
    has no bitwise_count)."""
    v = x | z
    w = np.zeros(len(v), dtype=np.int64)
    while v.any():
        w += _POPCOUNT[v & 0xFFFF]
        v = v >> 16
    return w


class _Terms:
    """Current term set: observable, x bits, z bits (kept unique by a merged key)."""

    def __init__(self, obs, x, z, n):
        self.obs, self.x, self.z, self.n = obs, x, z, n

    def key(self, obs, x, z):
        return (obs << (2 * self.n)) | (x << self.n) | z


def _initial_terms(labels: tuple[str, ...], noise: PTMNoise, n: int):
    obs, letters, coeff = [], [], []
    for o, lab in enumerate(labels):
        for idx, w in _readout_weights(lab, tuple(range(n)), noise):
            obs.append(o)
            letters.append([(idx // 4 ** (n - 1 - q)) % 4 for q in range(n)])
            coeff.append(w)
    x, z = _letters_to_bits(np.array(letters, dtype=np.int64).reshape(-1, n), n)
    return np.array(obs, dtype=np.int64), x, z, np.array(coeff)


def _branch(terms: _Terms, qubits: tuple, pattern: np.ndarray):
    """Every (term, input letters) pair the Heisenberg map ``Rᵀ`` creates on ``qubits``
    (``pattern[out, in]``: nonzero entries of ``R``): source index, new bits, entry index."""
    n = terms.n
    out = np.zeros(len(terms.x), dtype=np.int64)
    for q in qubits:
        out = out * 4 + _letter(terms.x, terms.z, q, n)
    d = pattern.shape[0]
    outs, ins = np.nonzero(pattern)
    # for each term: all entries whose out equals the term's letter index
    order = np.argsort(outs, kind="stable")
    outs, ins = outs[order], ins[order]
    start = np.searchsorted(outs, np.arange(d))
    count = np.searchsorted(outs, np.arange(d), side="right") - start
    c = count[out]
    src = np.repeat(np.arange(len(out)), c)
    offs = np.arange(len(src)) - np.repeat(np.cumsum(c) - c, c)
    e_in = ins[start[out][src] + offs]
    x, z = terms.x[src], terms.z[src]
    for i, q in enumerate(qubits):
        lt = (e_in // 4 ** (len(qubits) - 1 - i)) % 4
        x, z = _set_letter(x, z, q, n, lt)
    return src, x, z, out[src] * d + e_in


def _merge(terms: _Terms, src, x, z):
    obs = terms.obs[src]
    key = terms.key(obs, x, z)
    _, first, dst = np.unique(key, return_index=True, return_inverse=True)
    return _Terms(obs[first], x[first], z[first], terms.n), dst.reshape(-1)


def _run_matrix(run: list) -> np.ndarray:
    """Nonzero pattern of a fused single-qubit run at generic angles."""
    pat = np.zeros((4, 4), dtype=bool)
    for theta in _GENERIC:
        m = np.eye(4)
        for i, (_, c) in enumerate(run):
            t = theta * (1 + 0.37 * i)
            m = (c[0] + np.sin(t) * c[1] + (1 - np.cos(t)) * c[2]) @ m
        pat |= np.abs(m) > 1e-14
    return pat


@lru_cache(maxsize=8)  # an untruncated 8-qubit plan holds ~10^7 indices: keep few
def compile_plan(circuit: Circuit, noise: PTMNoise, labels: tuple[str, ...], max_weight: int) -> Plan:
    """The backward walk of ``labels`` through ``circuit`` with ``noise``, strings heavier than
    ``max_weight`` dropped after two-qubit gates (``max_weight ≥ n``: exact)."""
    n = circuit.n_qubits
    if 2 * n + max(len(labels), 1).bit_length() > 62:  # a string's merge key is one int64
        raise InvalidRequestError(f"Pauli propagation supports up to ~30 qubits, got {n}; use method=\"ptm\"")
    obs, x, z, coeff = _initial_terms(labels, noise, n)
    terms = _Terms(obs, x, z, n)
    init_obs, init_coeff = obs, coeff
    steps, runs = [], []
    pending: dict[int, list] = {}  # qubit → its single-qubit ops since the last flush (reverse time order)
    max_terms, max_entries, total = len(obs), 0, 0

    def flush(q):
        nonlocal terms, max_terms, max_entries, total
        ops = pending.pop(q, [])
        if not ops:
            return
        run = []
        for op in reversed(ops):  # time order
            c = np.stack([op.post @ op.pre, op.post @ K_TABLE[op.axis] @ op.pre, op.post @ K2_TABLE[op.axis] @ op.pre])
            run.append((op.slot, c))
        src, nx, nz, entry = _branch(terms, (q,), _run_matrix(run))
        terms, dst = _merge(terms, src, nx, nz)
        runs.append(run)
        steps.append(Step(src, dst, len(terms.x), run=len(runs) - 1, entry=entry))
        max_terms, max_entries, total = max(max_terms, len(terms.x)), max(max_entries, len(src)), total + len(src)

    for op in reversed(circuit_ops(circuit, noise)):
        if isinstance(op, Op1):
            pending.setdefault(op.q, []).append(op)
            continue
        assert isinstance(op, Op2)
        flush(op.a)
        flush(op.b)
        pattern = np.abs(op.ptm) > 1e-14
        src, nx, nz, entry = _branch(terms, (op.a, op.b), pattern)
        val = op.ptm.reshape(-1)[entry]
        heavy = _weight(nx, nz) > max_weight
        drop = dict(drop_src=src[heavy], drop_val=val[heavy], drop_obs=terms.obs[src[heavy]])
        keep = ~heavy
        terms, dst = _merge(terms, src[keep], nx[keep], nz[keep])
        steps.append(Step(src[keep], dst, len(terms.x), const=val[keep], **drop))
        max_terms, max_entries, total = max(max_terms, len(terms.x)), max(max_entries, len(src)), total + len(src)
    for q in sorted(pending):
        flush(q)
    return Plan(len(labels), init_obs, init_coeff, steps, runs, terms.obs, terms.x == 0, max_terms, max_entries, total)
