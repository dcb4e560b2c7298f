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

Everything is torch, so with ``requires_grad`` angles the expectations are differentiable
(``DensityMatrixBackend.torch_expectation``). Sampled mode needs the joint outcome
distribution of a measured group, which no small cone holds: it runs on the full register.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..core.circuit import Circuit
from ..core.exceptions import InvalidRequestError
from ..core.observables import PauliTerm
from .light_cone import (
    OneQLayer,
    Program,
    TwoQLayer,
    basis_gates,
    circuit_ops,
    light_cone,
    reduced_program,
)
from .ptm import K2_TABLE, K_TABLE, fixed_1q_ptm, readout_functional
from .ptm_noise import PTMNoise

CHUNK_BYTES = 4 * 2**20  # rows per pass sized to stay in cache: 8x faster than 256 MiB on 4^8 registers
FUSE_MAX_QUBITS = 5  # a fused 4^k × 4^k float64 two-qubit layer is 8 MiB at 5 qubits
_WORK_COPIES = 6  # state, layer output and einsum temporaries alive at once, per row
# Up to this width one full-register pass beats several cone passes (measured on the 32-row
# parameter-shift request of hqml n×2L: 4 qubits 21 ms full vs 37 ms in cones; 5 qubits a
# tie, 45 vs 47 ms; 6 qubits 183 vs 38 ms).
FULL_REGISTER_QUBITS = 4
PAIR_MIN_QUBITS = 6  # from here single-qubit layers are applied two qubits per pass


@dataclass
class Group:
    """Programs with one structure, run as one batch over ``M`` members."""

    k: int
    # per layer: ("1", slots (M,P,k), C0, C1, C2 (M,P,k,4,4)) | ("2d", X (M,d,d))
    #            | ("2m", src (M,d), scale (M,d)) | ("2s", per-member gate lists)
    layers: list
    members: int
    readout: tuple
    member_slots: list  # per member: the angle slots its program reads  # (member index (E,), local index (E,), weight (E,), observable (E,))


def _compile_two(layers_per_member: list[TwoQLayer], k: int):
    """One two-qubit layer for all members: a gather when every gate is Clifford with Pauli
    noise (a signed, scaled permutation of Paulis: 4^k work instead of 16^k), else one dense
    matrix up to FUSE_MAX_QUBITS, else the gates one by one."""
    d = 4**k
    if all(layer.monomial for layer in layers_per_member):
        srcs, scales = [], []
        for layer in layers_per_member:
            src, scale = np.arange(d), np.ones(d)
            for a, b, r in layer.ops:
                src, scale = _monomial_step(src, scale, r, a, b, k)
            srcs.append(src)
            scales.append(scale)
        return ("2m", torch.as_tensor(np.stack(srcs)), torch.as_tensor(np.stack(scales)))
    if k <= FUSE_MAX_QUBITS:  # non-unital noise (thermal relaxation): one dense matrix
        mats = []
        for layer in layers_per_member:
            x = torch.eye(d, dtype=torch.float64)
            for a, b, r in layer.ops:
                x = _apply_2q(x, torch.as_tensor(r), a, b, k)
            mats.append(x)  # row i: image of basis vector i, so ``state @ x`` applies it
        return ("2d", torch.stack(mats))
    return ("2s", [[(a, b, torch.as_tensor(r)) for a, b, r in layer.ops] for layer in layers_per_member])


def _monomial_step(src: np.ndarray, scale: np.ndarray, r: np.ndarray, a: int, b: int, k: int):
    """Compose ``out[i] = scale[i] · in[src[i]]`` with a monomial gate PTM on (a, b)."""
    nz = np.abs(r) > 1e-14
    inv = nz.argmax(axis=1)  # for each output pair, its one input pair
    val = r[np.arange(16), inv]
    shape = (4,) * k
    s = np.moveaxis(src.reshape(shape), (a, b), (-2, -1)).reshape(-1, 16)
    c = np.moveaxis(scale.reshape(shape), (a, b), (-2, -1)).reshape(-1, 16)
    s, c = s[:, inv], c[:, inv] * val
    back = lambda t: np.moveaxis(t.reshape(shape), (-2, -1), (a, b)).reshape(-1)  # noqa: E731
    return back(s), back(c)


def _apply_2q(state: torch.Tensor, r: torch.Tensor, a: int, b: int, k: int) -> torch.Tensor:
    lead = state.shape[:-1]
    t = state.reshape(lead + (4,) * k)
    off = len(lead)
    t = torch.tensordot(t, r.reshape(4, 4, 4, 4), dims=([off + a, off + b], [2, 3]))
    t = torch.movedim(t, (-2, -1), (off + a, off + b))
    return t.reshape(lead + (-1,))


def _readout_weights(label: str, qubits: tuple, noise: PTMNoise) -> list[tuple[int, float]]:
    """(local index, weight) pairs: the measured ±1 parity of ``label`` after basis change
    (with its gate noise) and readout confusion, as a functional on the reduced state."""
    k = len(qubits)
    entries = [(0, 1.0)]
    for i, q in enumerate(qubits):
        c = label[q]
        if c == "I":
            w = np.array([1.0, 0, 0, 0])
        else:
            w = readout_functional(*noise.readout_of(q))
            for name, _ in reversed(basis_gates(c)):
                w = w @ (noise.after_1q(name, q) @ fixed_1q_ptm(name))
        entries = [(idx + j * 4 ** (k - 1 - i), v * w[j]) for idx, v in entries for j in range(4) if w[j] != 0]
    return entries


@lru_cache(maxsize=64)
def observable_cones(circuit: Circuit, noise: PTMNoise, labels: tuple[str, ...]) -> tuple[dict, list]:
    """``{cone: [observable indices]}`` and the constant (all-``I``) observables."""
    ops = circuit_ops(circuit, noise)
    by_cone: dict[tuple, list[int]] = {}
    constant = []
    small = circuit.n_qubits <= FULL_REGISTER_QUBITS
    for o, lab in enumerate(labels):
        cone = light_cone(ops, circuit.n_qubits, lab)
        if cone and small:
            by_cone.setdefault(tuple(range(circuit.n_qubits)), []).append(o)
        elif cone:
            by_cone.setdefault(cone, []).append(o)
        else:
            constant.append(o)
    return by_cone, constant


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


@lru_cache(maxsize=64)
def expectation_groups(circuit: Circuit, noise: PTMNoise, labels: tuple[str, ...]) -> tuple[list[Group], list]:
    """Groups for the exact noisy expectation of each label; constant terms (all ``I``)."""
    ops = circuit_ops(circuit, noise)
    by_cone, constant = observable_cones(circuit, noise, labels)
    by_sig: dict[tuple, list] = {}
    for cone, obs in by_cone.items():
        prog = reduced_program(ops, cone)
        by_sig.setdefault(prog.signature, []).append((prog, obs))
    groups = []
    for members in by_sig.values():
        ro = ([], [], [], [])
        for m, (prog, obs) in enumerate(members):
            for o in obs:
                for idx, w in _readout_weights(labels[o], prog.qubits, noise):
                    for lst, v in zip(ro, (m, idx, w, o), strict=True):
                        lst.append(v)
        groups.append(_build_group([p for p, _ in members], tuple(np.array(x) for x in ro)))
    return groups, constant


@lru_cache(maxsize=64)
def full_register_group(circuit: Circuit, noise: PTMNoise, basis: str) -> Group:
    """The whole register (with the basis change), for joint outcome probabilities."""
    ops = circuit_ops(circuit, noise, basis)
    prog = reduced_program(ops, tuple(range(circuit.n_qubits)))
    empty = (np.zeros(0, np.int64),) * 2 + (np.zeros(0),) + (np.zeros(0, np.int64),)
    return _build_group([prog], empty)


def _qubit_positions(layer: OneQLayer, q: int) -> list[tuple[np.ndarray, int]]:
    """One qubit's run as rotation positions ``(C (3, 4, 4), slot)`` with every fixed gate,
    noise and effective map folded in: ``M(θ) = C0 + sinθ C1 + (1 − cosθ) C2``."""
    out: list = []
    pending = np.eye(4)  # fixed maps since the last rotation
    for j in range(layer.axis.shape[0]):
        a, pre, post = layer.axis[j, q], layer.pre[j, q], layer.post[j, q]
        if a == 0:
            pending = post @ pre @ pending
            continue
        mats = np.stack([post @ pre, post @ K_TABLE[a] @ pre, post @ K2_TABLE[a] @ pre]) @ pending
        out.append((mats, int(layer.slots[j, q])))
        pending = np.eye(4)
    if out:
        last, slot = out[-1]
        out[-1] = (pending @ last, slot)
    elif not np.allclose(pending, np.eye(4)):
        out.append((np.stack([pending, np.zeros((4, 4)), np.zeros((4, 4))]), -1))
    return out


def _build_group(programs: list[Program], readout: tuple) -> Group:
    k = len(programs[0].qubits)
    layers = []
    used: list[set] = [set() for _ in programs]
    for li, first in enumerate(programs[0].layers):
        per = [p.layers[li] for p in programs]
        if isinstance(first, OneQLayer):
            runs = [[_qubit_positions(x, q) for q in range(k)] for x in per]
            P = max(1, max(len(r) for mem in runs for r in mem))
            C = np.zeros((len(per), P, k, 3, 4, 4))
            C[:, :, :, 0] = np.eye(4)
            slots = -np.ones((len(per), P, k), dtype=np.int64)
            for m, mem in enumerate(runs):
                for q, run in enumerate(mem):
                    for j, (mats, slot) in enumerate(run):
                        C[m, j, q], slots[m, j, q] = mats, slot
            Ct = torch.as_tensor(C)
            layers.append(("1", torch.as_tensor(slots), Ct[:, :, :, 0], Ct[:, :, :, 1], Ct[:, :, :, 2]))
            for m in range(len(per)):
                used[m] |= set(slots[m][slots[m] >= 0].tolist())
        else:
            assert isinstance(first, TwoQLayer)
            layers.append(_compile_two(per, k))
    return Group(k, layers, len(programs), readout, [np.array(sorted(u), dtype=np.int64) for u in used])


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


def _distinct_rows(flat: np.ndarray, member_slots: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose angles differ on a member's slots, per member: ``(R', M)`` row indices
    (padded by repetition) and ``(M, B)`` the distinct row serving each original row.

    A parameter-shift request shifts one slot per row, so for an observable whose light cone
    holds a quarter of the slots, three quarters of its rows repeat the unshifted one."""
    firsts, inverses = [], []
    for slots in member_slots:
        sub = flat[:, slots]
        # Rows are keyed by one generic projection (a 1-D sort, not a row-wise one), then
        # verified: equal keys must mean equal rows, else the exact row-wise unique decides.
        key = sub @ np.cos(np.arange(1, len(slots) + 1) * 0.7548776662) if len(slots) else np.zeros(len(sub))
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        if not np.array_equal(sub[first[inv.reshape(-1)]], sub):
            _, first, inv = np.unique(sub, axis=0, return_index=True, return_inverse=True)
        firsts.append(first)
        inverses.append(inv.reshape(-1))
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
        rows, inverse = _distinct_rows(flat, g.member_slots)
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
