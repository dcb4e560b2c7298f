"""Recognising a parameter-shift request: rows that differ from a base row in one slot.

:func:`qmu_hw.autograd.shift.shift_plan` sends, per input row, ``2G'`` rows in one block,
each the row's angles with one slot moved by ±π/2. The exact engine finds that structure
from the angles alone (no field in the request; any backend gets the same rows) and then
simulates each base row's prefix once (:mod:`.sv_spawn`). The detection is a hypothesis
checked exactly: every row must equal its block's base row on every slot but at most one,
else the request takes the general path. Only the base row's values are inferred; a shifted
row's own angle is what the engine uses at its slot, so values are those of the rows sent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_BLOCK = 4  # the base is voted from a block's first four rows


@dataclass(frozen=True)
class ShiftRows:
    """Rows ``r`` equal ``base[block[r]]`` except at slot ``slot[r]`` (``-1``: nowhere)."""

    base: np.ndarray  # (Bb, G)
    block: np.ndarray  # (R,)
    slot: np.ndarray  # (R,)
    variant: np.ndarray  # (R,) rank among the rows of the same block and slot (the ± of a shift)
    n_variants: int
    values: np.ndarray  # (Bb, G, V): each variant's angle at each slot (the base's where none)


def _block_size(flat: np.ndarray) -> int | None:
    """Rows of one block: within a block consecutive rows differ in at most two slots (each
    differs from the base in one), so the first row differing from its predecessor in more
    starts the second block. Blocks are assumed equal-sized (checked by the caller)."""
    R, G = flat.shape
    head = flat[: min(R, 4 * G + 8)]
    jumps = np.flatnonzero(np.count_nonzero(head[1:] != head[:-1], axis=1) > 2)
    if len(jumps):
        return int(jumps[0]) + 1
    return R if len(head) == R else None


def shift_rows(flat: np.ndarray) -> ShiftRows | None:
    """The single-slot structure of ``flat (R, G)``, or ``None`` if the rows do not have it."""
    R, G = flat.shape
    if R < MIN_BLOCK or G == 0:
        return None
    size = _block_size(flat)
    if size is None or size < MIN_BLOCK or R % size:
        return None
    X = flat.reshape(R // size, size, G)
    r0, r1, r2, r3 = X[:, 0], X[:, 1], X[:, 2], X[:, 3]
    # Per slot, a value two of the first four rows share is the base's (a ± pair deviates in
    # two rows, so at most two of four differ); a wrong vote fails the check below.
    base = np.where((r0 == r1) | (r0 == r2) | (r0 == r3), r0, np.where((r1 == r2) | (r1 == r3), r1, r2))
    # flatnonzero, then divmod: 2-D np.nonzero took 10× longer on (5376, 126)
    rows, cols = np.divmod(np.flatnonzero(X != base[:, None, :]), G)  # row-major: rows sorted
    if len(rows) > 1 and not (rows[1:] != rows[:-1]).all():
        return None  # a row differs from its base in two slots
    slot = -np.ones(R, dtype=np.int64)
    slot[rows] = cols
    block = np.repeat(np.arange(R // size), size)
    key = block * (G + 1) + slot + 1
    order = np.argsort(key, kind="stable")
    sk = key[order]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, R]))
    variant = np.empty(R, dtype=np.int64)
    variant[order] = np.arange(R) - run_start
    variant[slot < 0] = 0  # unshifted rows are the base row itself
    V = int(variant.max()) + 1
    values = np.repeat(base[:, :, None], V, axis=2)
    values[block[rows], cols, variant[rows]] = flat[rows, cols]
    return ShiftRows(base, block, slot, variant, V, values)


def unshifted(flat: np.ndarray) -> ShiftRows:
    """Every row its own base (no shifts)."""
    R = flat.shape[0]
    return ShiftRows(flat, np.arange(R), -np.ones(R, dtype=np.int64), np.zeros(R, dtype=np.int64), 1,
                     flat[:, :, None])
