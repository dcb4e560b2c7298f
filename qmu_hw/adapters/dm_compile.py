"""Compiling a circuit into batched PTM groups for :mod:`.dm_engine`.

Each observable gets its light cone (``observable_cones``); the reduced program of each cone
is compiled, and cones whose programs have the same structure become one :class:`Group`
run as a batch over its members. Compiling folds everything that does not depend on the
angles into tensors once (cached per circuit, noise and labels), so a run only evaluates
``C0 + sinθ C1 + (1 − cosθ) C2`` per rotation position:

* single-qubit runs: every fixed gate, its noise and the effective maps folded into the
  three matrices of each rotation position (``_qubit_positions``);
* two-qubit layers: a gather when every gate is Clifford with Pauli noise, one dense matrix
  up to ``FUSE_MAX_QUBITS``, else the gates one by one (``_compile_two``);
* readout: the measured parity after basis change and readout confusion, as weights on the
  reduced state (``_readout_weights``).

Running groups, the memory plan and the public entry points stay in :mod:`.dm_engine`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..core.circuit import Circuit
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

FUSE_MAX_QUBITS = 5  # a fused 4^k × 4^k float64 two-qubit layer is 8 MiB at 5 qubits
# Up to this width one full-register pass beats several cone passes (measured on the 32-row
# parameter-shift request of hqml n×2L: 4 qubits 21 ms full vs 37 ms in cones; 5 qubits a
# tie, 45 vs 47 ms; 6 qubits 183 vs 38 ms).
FULL_REGISTER_QUBITS = 4


@dataclass
class Group:
    """Programs with one structure, run as one batch over ``M`` members."""

    k: int
    # per layer: ("1", slots (M,P,k), C0, C1, C2 (M,P,k,4,4)) | ("2d", X (M,d,d))
    #            | ("2m", src (M,d), scale (M,d)) | ("2s", per-member gate lists)
    layers: list
    members: int
    readout: tuple  # (member index (E,), local index (E,), weight (E,), observable (E,))
    member_slots: list  # per member: the angle slots its program reads


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
