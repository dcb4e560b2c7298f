"""Exact expectations on light cones: a statevector per observable's backward light cone.

The noiseless case of what the density-matrix engine does (:mod:`.light_cone`): ``⟨Z_q⟩``
after two ring layers depends on 3 qubits whatever the width, so each observable is computed
with a statevector on its cone's qubits. A two-qubit gate (CZ/CNOT) with one qubit outside
the cone is dropped: the cone analysis guarantees the observable is the identity on the
outside qubit there, and then its Pauli on the inside qubit commutes with the gate.

Cones whose reduced circuits have the same structure (gates, local qubits, order of their
angle slots) run as one batch: member ``m`` reads global slots ``slot_maps[m]``. Rows are
deduplicated per member on the slots it reads, so a parameter-shift row whose shifted gate
lies outside a cone costs that cone nothing (as the density-matrix engine's rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..core.circuit import Circuit
from . import sv_shift, sv_spawn
from . import torch_engine as te
from .light_cone import circuit_ops, distinct_rows, light_cone
from .ptm_noise import PTMNoise
from .sv_active import active_ops
from .sv_canon import reduced

_NOISELESS = PTMNoise()
# Up to this width the whole register in one pass beats several cone passes (python overhead
# per cone; measured in benchmarks/bench_engines.py).
FULL_REGISTER_QUBITS = 5
# Cones are used while their amplitudes together stay below this fraction of the register's.
CONES_MAX_COST = 1.0
# Without autograd, rows run in chunks of about this many bytes of state (a parameter-shift
# request on a wide, deep circuit is ~10^4 rows: 2.5 GiB of 14-qubit states at once).
CHUNK_BYTES = 32 * 2**20
# Requests up to this many rows without shift structure run as their own bases in sv_spawn;
# larger ones are deduplicated per member (rows equal on a cone's slots are simulated once).
SMALL_REQUEST_ROWS = 1024
_COPIES = 4  # state, gathered copy and einsum temporaries alive at once
# The shift path on the full register keeps a state per shifted slot of a base row at once.
# hqml(12, 6), B = 8: 217 states (57 MB with temporaries), step 2.9 s against 5.7 s
# deduplicated by prefix; hqml(14, 6): 253 states (265 MB), 30 s against 20 s and 680 MB
# peak, so it stays beyond this bound.
FULL_SPAWN_BYTES = 128 * 2**20


def _run_rows(plan: te.Plan, angles: torch.Tensor, labels: tuple[str, ...], shared=None,
              shared_slots: frozenset = frozenset()) -> torch.Tensor:
    """``(R, L)`` expectations of ``labels`` on ``plan`` for angles ``(R, ·)``, chunked when
    nothing needs a gradient."""
    n, R = plan.n_qubits, angles.shape[0]
    if angles.requires_grad or (shared is not None and shared.requires_grad):
        return te._expectations(te.simulate(plan, angles, shared, shared_slots), labels, n)
    chunk = max(1, CHUNK_BYTES // (16 * _COPIES * 2**n))
    run = te.simulate if shared is not None else _simulate_shared_prefix
    parts = [te._expectations(run(plan, angles[i : i + chunk]), labels, n) for i in range(0, R, chunk)]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _simulate_shared_prefix(plan: te.Plan, angles: torch.Tensor) -> torch.Tensor:
    """:func:`torch_engine.simulate` (no fusion, no autograd) where rows share their prefix:
    before each rotation block only the rows distinct on the slots read so far are kept, so a
    parameter-shift row is simulated from its shifted gate on (the unshifted prefix once)."""
    n, R = plan.n_qubits, angles.shape[0]
    flat = angles.numpy()
    half = torch.cat([angles, angles.new_zeros(R, 1)], dim=1) * 0.5
    cos, sin = torch.cos(half), torch.sin(half)
    cdtype = torch.complex128 if angles.dtype == torch.float64 else torch.complex64
    read: set = set()
    state, inv = None, np.zeros(R, dtype=np.int64)  # inv: each original row's current state row
    for bi, block in enumerate(plan.blocks):
        if isinstance(block, te.RotationBlock):
            read |= block.slot_set
            first, new_inv = distinct_rows(flat, np.array(sorted(read), dtype=np.int64))
            if state is not None:
                state = state[torch.as_tensor(inv[first])]  # each new row starts from its parent's state
            inv = new_inv
            idx = torch.as_tensor(first)
            mats = te._block_matrices(block, cos[idx], sin[idx]).to(cdtype)
            if state is None and bi == 0:  # product-state prefix
                vecs = mats[..., 0]
                st = vecs[:, 0]
                for q in range(1, n):
                    st = (st[:, :, None] * vecs[:, q, None, :]).reshape(st.shape[0], -1)
                state = st
            else:
                if state is None:
                    state = te._zero_state(len(first), n, cdtype, angles.device)
                state = te._apply_1q(state, mats, n)
        else:
            if state is None:
                state = te._zero_state(1, n, cdtype, angles.device)
            state = torch.as_tensor(block.phase).to(cdtype) * state[:, torch.as_tensor(block.perm)]
    if state is None:
        state = te._zero_state(1, n, cdtype, angles.device)
    return state[torch.as_tensor(inv)]


@dataclass(frozen=True)
class ConeGroup:
    """Reduced circuits of one structure on ``k`` qubits, run as one batch over members."""

    k: int
    plan: te.Plan  # local qubits; slot j is the member's j-th angle slot
    slot_maps: np.ndarray  # (M, S) global slot of each local slot, per member
    labels: tuple[str, ...]  # local labels measured on the group (union over members)
    readout: tuple[tuple[int, int, int], ...]  # (member, index into labels, observable)
    entries: tuple = ()  # the gates as (name, local qubits, local slot or None), in time order


@dataclass(frozen=True)
class ConePlan:
    groups: tuple[ConeGroup, ...]
    full: tuple[int, ...]  # observables computed on the whole register
    constant: tuple[int, ...]  # all-identity observables (value 1)
    full_group: ConeGroup | None = None  # the register's active gates, for parameter-shift requests


@lru_cache(maxsize=64)
def cone_plan(circuit: Circuit, labels: tuple[str, ...]) -> ConePlan:
    """Which observables run on which cone group (cached per circuit and labels)."""
    n = circuit.n_qubits
    ops = circuit_ops(circuit, _NOISELESS)
    by_cone: dict[tuple, list[int]] = {}
    full, constant = [], []
    for o, lab in enumerate(labels):
        cone = light_cone(ops, n, lab)
        if not cone:
            constant.append(o)
        elif n <= FULL_REGISTER_QUBITS or len(cone) == n:
            full.append(o)
        else:
            by_cone.setdefault(cone, []).append(o)
    if sum(2 ** len(cone) for cone in by_cone) >= CONES_MAX_COST * 2**n:
        # Cones near the register's width (deep circuits, dense entanglers) cost more together
        # than one full-register pass (12 qubits × 6 ring layers: 12 cones of 11 qubits).
        full = sorted(full + [o for obs in by_cone.values() for o in obs])
        by_cone = {}
    by_structure: dict[tuple, list] = {}
    for cone, obs in by_cone.items():
        active = np.logical_or.reduce([active_ops(ops, n, labels[o]) for o in obs])
        entries, slots, order = reduced(circuit, cone, active)
        by_structure.setdefault((len(cone), entries), []).append((order, slots, obs))
    groups = tuple(_group(k, entries, members, labels) for (k, entries), members in by_structure.items())
    full_group = None
    if full:  # the full register as one more group, for the shift path (sv_spawn)
        active = np.logical_or.reduce([active_ops(ops, n, labels[o]) for o in full])
        entries, slots, order = reduced(circuit, tuple(range(n)), active, permute=False)
        full_group = _group(n, entries, [(order, slots, full)], labels)
    return ConePlan(groups, tuple(full), tuple(constant), full_group)


def _group(k: int, entries: tuple, members: list, labels: tuple[str, ...]) -> ConeGroup:
    """Members ``(qubits in local order, global slots, observables)`` of one structure."""
    local_labels: list[str] = []
    readout = []
    for m, (cone, _, obs) in enumerate(members):
        for o in obs:
            lab = "".join(labels[o][q] for q in cone)
            if lab not in local_labels:
                local_labels.append(lab)
            readout.append((m, local_labels.index(lab), o))
    n_slots = len(members[0][1])
    return ConeGroup(k, te.plan_of(k, n_slots, entries), np.stack([s for _, s, _ in members]),
                     tuple(local_labels), tuple(readout), entries)


def _full_spawn_fits(group: ConeGroup, shift: sv_shift.ShiftRows) -> bool:
    """Whether one base row's states on the full register (itself and a spawn per shifted
    slot) fit in :data:`FULL_SPAWN_BYTES`; beyond, the rows run deduplicated by prefix."""
    shifted = np.zeros(shift.base.shape[1], dtype=bool)
    shifted[shift.slot[shift.slot >= 0]] = True
    n_states = 1 + int(np.count_nonzero(shifted[group.slot_maps[0]]))
    return n_states * 2**group.k * 16 * 4 <= FULL_SPAWN_BYTES


def expectations(
    circuit: Circuit,
    angles: torch.Tensor,
    labels: tuple[str, ...],
    shared: torch.Tensor | None = None,
    shared_slots: frozenset = frozenset(),
) -> torch.Tensor:
    """Exact ``(B, O)`` Pauli expectations (coefficients not applied) for angles ``(B, G)``;
    differentiable in ``angles`` and ``shared`` (the row-free angles the full-register pass
    may fuse, see :func:`torch_engine.simulate`)."""
    plan = cone_plan(circuit, labels)
    B = angles.shape[0]
    cols: list = [None] * len(labels)
    grad = angles.requires_grad or (shared is not None and shared.requires_grad)
    flat = angles.detach().cpu().numpy() if plan.groups or plan.full else None
    # A parameter-shift request (rows = base rows with one slot shifted): each base row's
    # prefix once per cone, the shifted rows from their gate on (sv_spawn). A small request
    # of other rows (a forward batch) runs there too, each row its own base: all members in
    # one pass beat deduplicating per member (hqml(14, 2), 32 rows: 1.5 ms against 3.3 ms).
    shift = None if grad else sv_shift.shift_rows(flat)
    if plan.full:
        if shift is not None and _full_spawn_fits(plan.full_group, shift):
            vals = sv_spawn.group_values(plan.full_group.entries, plan.full_group.k, plan.full_group.slot_maps,
                                         plan.full_group.labels, flat, shift, angles.dtype, CHUNK_BYTES)
            for _, li, o in plan.full_group.readout:
                cols[o] = vals[0, :, li]
        else:
            vals = _run_rows(te.compile_plan(circuit), angles, tuple(labels[o] for o in plan.full), shared,
                             shared_slots)
            for j, o in enumerate(plan.full):
                cols[o] = vals[:, j]
    if shift is None and not grad and plan.groups and flat.shape[0] <= SMALL_REQUEST_ROWS:
        shift = sv_shift.unshifted(flat)
    for g in plan.groups:
        if shift is not None:
            vals = sv_spawn.group_values(g.entries, g.k, g.slot_maps, g.labels, flat, shift, angles.dtype,
                                         CHUNK_BYTES)  # (M, R, L)
            for m, li, o in g.readout:
                cols[o] = vals[m, :, li]
            continue
        parts, inverses, offset = [], [], 0
        for m in range(g.slot_maps.shape[0]):
            first, inv = distinct_rows(flat, g.slot_maps[m], dedup=not grad)
            sel = torch.as_tensor(first)[:, None], torch.as_tensor(g.slot_maps[m])[None, :]
            parts.append(angles[sel])
            inverses.append(torch.as_tensor(inv) + offset)
            offset += len(first)
        vals = _run_rows(g.plan, torch.cat(parts), g.labels)  # (ΣR', L)
        for m, li, o in g.readout:
            cols[o] = vals[inverses[m], li]
    for o in plan.constant:
        cols[o] = angles.new_ones(B)
    return torch.stack(cols, dim=1)
