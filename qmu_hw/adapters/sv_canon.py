"""A light cone's reduced circuit in a canonical form, so that equal cones batch together.

Cones run as one batch when their reduced circuits have the same structure
(:mod:`.sv_cones`). On a ring, ``⟨Z_0⟩``'s cone ``(0, 1, n-1)`` is the interior cones'
``(q-1, q, q+1)`` up to the order of its local qubits and of commuting gates (the wrap-around
CZ comes last in the layer), so with cones' qubits in sorted order it formed a group of its
own: one more Python pass per request. The canonical form tries every local qubit order
(small cones only) and puts commuting gates in a fixed order: in a run of single-qubit gates
by qubit (gates on one qubit keep their order), in a run of CZs by qubit pair (CZs commute
and are symmetric). The smallest form wins; values change only by rounding.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np

from ..core.circuit import Circuit

MAX_PERMUTED = 5  # 5! orders; wider cones keep their sorted order


def _normal_order(gates: list) -> list:
    """``gates`` ``(name, local qubits, global slot)`` with commuting runs sorted."""
    out, run, kind = [], [], None
    for g in gates + [None]:
        k = None if g is None else ("1" if len(g[1]) == 1 else ("CZ" if g[0] == "CZ" else g))
        if run and k != kind:
            if kind == "1":
                run.sort(key=lambda e: e[1][0])  # stable: a qubit's gates keep their order
            elif kind == "CZ":
                run = sorted(((n, tuple(sorted(q)), s) for n, q, s in run), key=lambda e: e[1])
            out += run
            run = []
        if g is not None:
            run.append(g)
            kind = k
    return out


def reduced(circuit: Circuit, cone: tuple[int, ...], active: np.ndarray,
            permute: bool = True) -> tuple[tuple, np.ndarray, tuple]:
    """The cone's gates that act on its observables (``active``, per gate) as ``(name, local
    qubits, local slot or None)`` in canonical form, their global slots (local slot order) and
    the cone's qubits in local order. ``permute=False``: the cone's own qubit order (a group
    of one, e.g. the full register, has nothing to match)."""
    slot_of = {gi: s for s, gi in enumerate(circuit.slots)}
    kept = [(g.name, g.qubits, slot_of.get(gi)) for gi, g in enumerate(circuit.gates)
            if active[gi] and all(q in cone for q in g.qubits)]  # a CZ/CNOT half outside acts as the identity
    orders = permutations(cone) if permute and len(cone) <= MAX_PERMUTED else [cone]
    best = None
    for order in orders:
        local = {q: i for i, q in enumerate(order)}
        gates = _normal_order([(n, tuple(local[q] for q in qs), s) for n, qs, s in kept])
        key = tuple((n, qs, s is not None) for n, qs, s in gates)
        if best is None or key < best[0]:
            best = (key, gates, order)
    _, gates, order = best
    slots = [s for _, _, s in gates if s is not None]
    local_slot = {s: j for j, s in enumerate(slots)}
    entries = tuple((n, qs, None if s is None else local_slot[s]) for n, qs, s in gates)
    return entries, np.array(slots, dtype=np.int64), tuple(order)
