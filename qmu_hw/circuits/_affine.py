"""Shared by the importers: affine rotation angles → IR gates.

An angle ``Σ_k a_k θ_k + b`` over several parameters becomes one rotation per parameter on
the same axis (same-axis rotations commute and add), the first carrying the offset ``b``;
a constant angle becomes a constant rotation. The IR's slots stay one-parameter each, which
keeps parameter shift exact gate by gate.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.circuit import Gate

ZERO_TOL = 1e-12


def affine_rotation(name: str, qubit: int, terms: Sequence[tuple[int, float]], offset: float) -> list[Gate]:
    """IR gates for ``name(Σ coeff·params[index] + offset)`` on ``qubit``."""
    terms = [(i, float(a)) for i, a in terms if abs(a) > ZERO_TOL]
    if not terms:
        return [Gate(name, (qubit,), None, 1.0, float(offset))]
    gates = [Gate(name, (qubit,), terms[0][0], terms[0][1], float(offset))]
    gates += [Gate(name, (qubit,), i, a) for i, a in terms[1:]]
    return gates
