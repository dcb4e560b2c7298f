"""Which gates of a light cone act on the observable (the exact engine's gate pruning).

:func:`.light_cone.light_cone` keeps a qubit when the backward-evolved observable is ever
not the identity on it, and the cone's reduced circuit then kept every gate on cone qubits.
Many of those act as the identity on the observable *at their time*: ``⟨Z_q⟩`` after ring
layers ``RX RY RZ · CZ`` commutes with the last CZ layer and the last ``RZ_q``, and the
last layer's rotations on ``q ± 1`` meet an observable that is the identity there. A gate
whose Pauli transfer matrix fixes every Pauli the evolved observable can contain there
(``Rᵀ`` is the identity on those rows) drops out exactly. Dropping it removes its angle slot
from the cone, so a parameter-shift row shifting it repeats the unshifted row (deduplicated,
or never simulated on the shift path of :mod:`.sv_spawn`).
"""

from __future__ import annotations

import numpy as np

from .light_cone import _I, _LETTER, Op1, _letters, _mask_of, _op1_matrix, _reach

_EYE4, _EYE16 = np.eye(4), np.eye(16)


def _fixes(mat: np.ndarray, rows: np.ndarray, eye: np.ndarray) -> bool:
    """Whether ``mat`` maps each Pauli in ``rows`` to itself (Heisenberg: its rows are unit)."""
    return bool(np.abs(mat[rows] - eye[rows]).max() <= 1e-15)


def active_ops(ops: tuple, n: int, label: str) -> np.ndarray:
    """``(len(ops),)`` bool: whether each op changes the backward-evolved ``label``.

    Noiseless ops only (the exact engine's): a noisy channel never fixes a non-identity
    Pauli, so on noisy ops this marks every op the cone touches.
    """
    mask = [_mask_of([0, _LETTER[c]]) for c in label]
    active = np.zeros(len(ops), dtype=bool)
    for i in range(len(ops) - 1, -1, -1):
        op = ops[i]
        if isinstance(op, Op1):
            if mask[op.q] == _I:
                continue
            mat, rows = _op1_matrix(op), _letters(mask[op.q])
            if not _fixes(mat, rows, _EYE4):
                active[i] = True
                mask[op.q] = _mask_of(_reach(mat, rows))
        else:
            ma, mb = mask[op.a], mask[op.b]
            if ma == _I and mb == _I:
                continue
            rows = (_letters(ma)[:, None] * 4 + _letters(mb)[None, :]).ravel()
            if not _fixes(op.ptm, rows, _EYE16):
                active[i] = True
                ins = _reach(op.ptm, rows)
                mask[op.a], mask[op.b] = _mask_of(ins // 4), _mask_of(ins % 4)
    return active
