"""Parameter-shift requests on the density-matrix engine: exact, from one sweep per base row.

:func:`qmu_hw.autograd.shift.shift_plan` sends, per input row, ``2G'`` rows that equal the
row's angles except at one slot. :func:`.sv_shift.shift_rows` recognises that structure from
the angles alone (verified exactly; any other request returns ``None`` and takes the general
path). Each compiled group then runs one forward and one adjoint sweep per base row
(:mod:`.dm_sweep`), which gives, for every slot of every cone, the value as an exact
function of that slot's angle; each shifted row's value is that function at the row's own
angle (so values are those of the rows sent, to rounding: ~1e-15). Cones that do not read a
row's shifted slot give the base row's value. Where an observable's adjoint is the identity
on much of its cone near the readout, it runs on its support (:mod:`.dm_sweep_outputs`).

Memory: the forward sweep keeps the state before every single-qubit layer of each row and
cone, the adjoint sweep one vector per observable of the cone (plus a few temporaries).
Rows (then members) are chunked to stay within the backend's memory limit; when a single
row of a single cone does not fit, :func:`shift_expectations` returns ``None`` and the
request takes the general path (whose plan ``check_plan`` has checked).
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.circuit import Circuit
from ..core.observables import PauliTerm
from .dm_compile import Group, expectation_groups
from .dm_support import output_plans
from .dm_support import work as support_work
from .dm_sweep import adjoint_layers, sweep
from .dm_sweep_outputs import sweep_outputs
from .ptm_noise import PTMNoise
from .sv_shift import ShiftRows, shift_rows

MIN_CONE = 5  # below, the general path is as fast (everything is milliseconds)
# Working set per pass: the passes are memory-bound, so a row's vectors should stay in cache
# (8 qubits × 6 layers, 8 rows: 1.0 s with 4 MiB passes, 1.4 s with 64 MiB, 2.1 s with 256 MiB).
CHUNK_BYTES = 8 * 2**20
# Sweep each observable on its support (:mod:`.dm_sweep_outputs`) when that touches at most
# this fraction of the batched sweep's numbers; near 1 the batched sweep saves the stacking
# (hqml ring, 6 layers: 8 qubits, fraction 0.38, 0.75 s against 0.97 s batched for 8 base
# rows; 10 qubits, fraction 0.21, 1.1 s against 4.6 s per base row).
SUPPORT_MAX_WORK = 0.8
_TEMP_VECTORS = 6  # per row and member: unit partials, einsum temporaries (measured: 587 MiB peak at 10 qubits for 600 planned)
_OUTPUT_VECTORS = 6  # per output: the adjoint vector, its next value, the environment's copies


def sweep_row_bytes(group: Group, members: int | None = None) -> int:
    """Working memory of one row of the sweep over ``members`` (default all) of ``group``."""
    M = group.members if members is None else members
    outputs = _outputs_per_member(group)
    n1 = sum(layer[0] == "1" for layer in group.layers)
    units = (group.k + 1) // 2
    return 8 * 4**group.k * M * (n1 + units + _TEMP_VECTORS + _OUTPUT_VECTORS * outputs)


def _outputs_per_member(group: Group) -> int:
    mem, _, _, obs = group.readout
    if len(obs) == 0:
        return 1
    return max(len(np.unique(obs[mem == m])) for m in range(group.members))


def fits(groups: list[Group], memory_limit: int) -> bool:
    """Whether one row of one member of every group fits the limit (the sweep's smallest chunk)."""
    return all(sweep_row_bytes(g, 1) <= memory_limit for g in groups)


def worthwhile(groups: list[Group], sr: ShiftRows) -> bool:
    """Whether the sweep beats running the rows: in passes over a cone's ``4^k`` numbers, the
    general path runs, per member, the base row and each row shifting a slot it reads (the
    rest deduplicate); the sweep costs about ``2 + 3J`` per base row and member (forward,
    its recomputation per layer, and per output one adjoint and one environment pass;
    measured 26 at 8 qubits with J = 8). Small cones are cheap either way, and there the
    sweep's per-qubit torch calls dominate (4 qubits: 21 ms against 10 ms)."""
    if max((g.k for g in groups), default=0) < MIN_CONE:
        return False
    Bb = sr.base.shape[0]
    counts = np.bincount(sr.slot[sr.slot >= 0], minlength=sr.base.shape[1])
    general = fast = 0
    for g in groups:
        J = _outputs_per_member(g)
        for slots in g.member_slots:
            general += 4**g.k * (Bb + int(counts[slots].sum()))
            fast += 4**g.k * Bb * (2 + 3 * J)
    return fast < general


def _readin(group: Group, M_sel: np.ndarray, dtype) -> tuple[torch.Tensor, np.ndarray]:
    """Readout functionals ``(M', J, 4^k)`` of the selected members' observables and their
    observable indices ``(M', J)`` (-1: padding)."""
    mem, idx, w, obs = group.readout
    J = _outputs_per_member(group)
    out = torch.zeros(len(M_sel), J, 4**group.k, dtype=dtype)
    out_obs = -np.ones((len(M_sel), J), dtype=np.int64)
    for i, m in enumerate(M_sel):
        here = mem == m
        for j, o in enumerate(np.unique(obs[here])):
            out_obs[i, j] = o
            sel = here & (obs == o)
            out[i, j].index_add_(0, torch.as_tensor(idx[sel]), torch.as_tensor(w[sel], dtype=dtype))
    return out, out_obs


def _sub_group(group: Group, sel: np.ndarray) -> Group:
    """The members ``sel`` of a group (when all of them at once exceed the memory limit)."""
    t = torch.as_tensor(sel)
    layers = []
    for layer in group.layers:
        kind = layer[0]
        if kind == "1":
            layers.append((kind,) + tuple(x[t] for x in layer[1:]))
        elif kind == "2d":
            layers.append((kind, layer[1][t]))
        elif kind == "2m":
            layers.append((kind, layer[1][t], layer[2][t]))
        else:
            layers.append((kind, [layer[1][i] for i in sel]))
    mem, idx, w, obs = group.readout
    keep = np.isin(mem, sel)
    renum = -np.ones(group.members, dtype=np.int64)
    renum[sel] = np.arange(len(sel))
    readout = (renum[mem[keep]], idx[keep], w[keep], obs[keep])
    return Group(group.k, layers, len(sel), readout, [group.member_slots[i] for i in sel])


def shift_expectations(circuit: Circuit, angles: np.ndarray, terms: tuple[PauliTerm, ...], noise: PTMNoise,
                       memory_limit: int, always: bool = False) -> tuple[np.ndarray, int] | None:
    """``(B, O)`` exact noisy expectations of a parameter-shift request and its number of base
    rows, or ``None`` when the rows have no single-slot structure, a sweep row does not fit,
    or (unless ``always``) running the rows is cheaper (:func:`worthwhile`)."""
    flat = np.asarray(angles, dtype=np.float64)
    sr = shift_rows(flat)
    if sr is None:
        return None
    labels = tuple(t.label for t in terms)
    groups, constant = expectation_groups(circuit, noise, labels)
    if not fits(groups, memory_limit) or not (always or worthwhile(groups, sr)):
        return None
    R, G = flat.shape
    Bb = sr.base.shape[0]
    base_ang = torch.as_tensor(np.concatenate([sr.base, np.zeros((Bb, 1))], axis=1))
    # each row's own angle at its slot (the base's where it has none: slot -1 reads column G)
    slot = np.where(sr.slot >= 0, sr.slot, G)
    theta = torch.as_tensor(np.concatenate([flat, np.zeros((R, 1))], axis=1)[np.arange(R), slot])
    s, c = torch.sin(theta), 1 - torch.cos(theta)
    block = torch.as_tensor(sr.block)
    vals = torch.zeros(R, len(terms), dtype=torch.float64)
    with torch.no_grad():
        for g in groups:
            for members, rows in _chunks(g, Bb, memory_limit):
                sub = g if len(members) == g.members else _sub_group(g, members)
                for r0 in range(0, Bb, rows):
                    ang = base_ang[r0 : r0 + rows, None, :].expand(-1, len(members), -1)
                    r_idx = torch.as_tensor(np.flatnonzero((sr.block >= r0) & (sr.block < r0 + rows)))
                    b, sl = block[r_idx] - r0, torch.as_tensor(slot)[r_idx]
                    for m, o, base, coef in _sweep_outputs(sub, ang):
                        cf = coef[b, sl]  # (r, 3)
                        shifted = cf[:, 0] + s[r_idx] * cf[:, 1] + c[r_idx] * cf[:, 2]
                        reads = torch.zeros(G + 1, dtype=torch.bool)
                        reads[torch.as_tensor(sub.member_slots[m])] = True
                        vals[r_idx, o] += torch.where(reads[sl], shifted, base[b])
    if constant:
        vals[:, constant] = 1.0
    coeffs = torch.tensor([t.coeff for t in terms], dtype=torch.float64)
    return (vals * coeffs).numpy(), Bb


def _sweep_outputs(group: Group, ang: torch.Tensor):
    """``(member, observable, base (R,), coef (R, G+1, 3))`` per observable of the group: on each
    observable's support where that saves at least half the adjoint work, else batched."""
    plans = output_plans(group, adjoint_layers(group))
    if plans is not None:
        reduced, full = support_work(group, plans)
        if reduced <= SUPPORT_MAX_WORK * full:
            for p, (base, coef) in zip(plans, sweep_outputs(group, ang, plans), strict=True):
                yield p.member, p.obs, base, coef
            return
    readin, out_obs = _readin(group, np.arange(group.members), ang.dtype)
    base, coef = sweep(group, ang, readin)
    for m, j in zip(*np.nonzero(out_obs >= 0), strict=True):
        yield int(m), int(out_obs[m, j]), base[:, m, j], coef[:, m, :, j]


def _chunks(group: Group, rows: int, memory_limit: int):
    """``(member indices, rows per pass)``: all members at once when a row of them fits the
    working-set size, else fewer members (one at least), rows sized to the working set."""
    budget = min(CHUNK_BYTES, memory_limit)
    per_member = sweep_row_bytes(group, 1)
    M = max(1, min(group.members, budget // per_member))
    for m0 in range(0, group.members, M):
        members = np.arange(m0, min(m0 + M, group.members))
        yield members, max(1, min(rows, budget // sweep_row_bytes(group, len(members))))
