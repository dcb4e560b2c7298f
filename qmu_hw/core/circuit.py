"""The project's own circuit IR (numpy only).

A :class:`Circuit` is a list of gates on ``n_qubits`` qubits. Every rotation gate owns one
angle *slot*; a slot reads one parameter times a coefficient plus a constant offset
(``angle = coeff * params[param] + offset``; a rotation without a parameter has the constant
angle ``offset``), so the parameter→angle map is a fixed affine map: the linear part of shape
``(G, P)`` and the offsets ``(G,)``. Imported circuits (``qmu_hw.circuits.from_qiskit``) need
the offsets: Qiskit angles such as ``θ/2 + π/4`` are affine in a parameter. A parameter used by several gates (the study's
encoding feeds each input feature into RX, RY and RZ) therefore has a derivative that is
the sum of the per-gate derivatives, which is exactly what ``angle_map.T @ dE/dangles``
computes.

Qubit order: qubit 0 is the *most* significant bit of a basis-state index (the textbook and
PennyLane convention). Adapters convert for Qiskit's little-endian order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .exceptions import InvalidRequestError

ROTATIONS = ("RX", "RY", "RZ")
FIXED_1Q = ("H", "X", "Y", "Z", "S", "SDG")
FIXED_2Q = ("CZ", "CNOT")
GATES = ROTATIONS + FIXED_1Q + FIXED_2Q


@dataclass(frozen=True)
class Gate:
    """One gate. Rotations have angle = coeff * params[param] + offset, or the constant
    ``offset`` when ``param`` is None; fixed gates have neither."""

    name: str
    qubits: tuple[int, ...]
    param: int | None = None
    coeff: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in GATES:
            raise InvalidRequestError(f"unknown gate {self.name!r}; expected one of {GATES}")
        want = 2 if self.name in FIXED_2Q else 1
        if len(self.qubits) != want:
            raise InvalidRequestError(
                f"gate {self.name} acts on {want} qubit(s), got qubits={self.qubits}"
            )
        if want == 2 and self.qubits[0] == self.qubits[1]:
            raise InvalidRequestError(f"gate {self.name} needs two distinct qubits, got {self.qubits}")
        if self.name not in ROTATIONS and (self.param is not None or self.offset != 0.0):
            raise InvalidRequestError(
                f"gate {self.name}: fixed gates take no parameter or angle, "
                f"got param={self.param}, offset={self.offset}"
            )
        if not (np.isfinite(self.coeff) and np.isfinite(self.offset)):
            raise InvalidRequestError(
                f"gate {self.name}: coeff and offset must be finite, got {self.coeff}, {self.offset}"
            )

    @property
    def is_rotation(self) -> bool:
        """True for every RX/RY/RZ, parametrised or constant: each owns an angle slot."""
        return self.name in ROTATIONS


@dataclass(frozen=True)
class Circuit:
    """An immutable parametrised circuit.

    Args:
        n_qubits: number of qubits.
        gates: the gates in time order.
        n_params: number of parameters P; gate ``param`` indices are in ``range(P)``.
        n_inputs: the first ``n_inputs`` parameters are per-sample inputs, the rest are
            trainable weights shared by every row of a batch.
        name: a human-readable label.
    """

    n_qubits: int
    gates: tuple[Gate, ...]
    n_params: int
    n_inputs: int = 0
    name: str = "circuit"
    weight_shape: tuple[int, ...] | None = field(default=None)
    # What an imported circuit measured (e.g. a QNode's expvals); None: the caller chooses
    # (QuantumLayer's default is Z on every qubit). Not part of the structure fingerprint.
    observables: tuple | None = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "gates", tuple(self.gates))
        if int(self.n_qubits) < 1:
            raise InvalidRequestError(f"n_qubits must be >= 1, got {self.n_qubits}")
        if not 0 <= self.n_inputs <= self.n_params:
            raise InvalidRequestError(
                f"n_inputs must be in [0, n_params={self.n_params}], got {self.n_inputs}"
            )
        for g in self.gates:
            if any(not 0 <= q < self.n_qubits for q in g.qubits):
                raise InvalidRequestError(
                    f"gate {g.name} on qubits {g.qubits} is outside a {self.n_qubits}-qubit circuit"
                )
            if g.param is not None and not 0 <= g.param < self.n_params:
                raise InvalidRequestError(
                    f"gate {g.name} reads parameter {g.param}, but the circuit has {self.n_params}"
                )
        if self.weight_shape is not None and int(np.prod(self.weight_shape)) != self.n_weights:
            raise InvalidRequestError(
                f"weight_shape {self.weight_shape} holds {int(np.prod(self.weight_shape))} values, "
                f"but the circuit has {self.n_weights} weights"
            )

    @property
    def n_weights(self) -> int:
        return self.n_params - self.n_inputs

    @cached_property
    def slots(self) -> tuple[int, ...]:
        """Indices (into ``gates``) of the rotation gates, i.e. the G angle slots in order."""
        return tuple(i for i, g in enumerate(self.gates) if g.is_rotation)

    @property
    def n_slots(self) -> int:
        return len(self.slots)

    @cached_property
    def angle_map(self) -> np.ndarray:
        """The fixed linear parameter→angle map, shape ``(G, P)``."""
        m = np.zeros((self.n_slots, self.n_params))
        for s, gi in enumerate(self.slots):
            g = self.gates[gi]
            if g.param is not None:
                m[s, g.param] += g.coeff
        m.setflags(write=False)
        return m

    @cached_property
    def slot_params(self) -> np.ndarray:
        """Parameter index read by each slot, shape ``(G,)``; -1 for a constant rotation."""
        return np.array(
            [-1 if self.gates[gi].param is None else self.gates[gi].param for gi in self.slots],
            dtype=np.int64,
        )

    @cached_property
    def slot_coeffs(self) -> np.ndarray:
        """Coefficient of each slot's parameter, ``(G,)``; 0 for a constant rotation."""
        return np.array(
            [0.0 if self.gates[gi].param is None else self.gates[gi].coeff for gi in self.slots],
            dtype=np.float64,
        )

    @cached_property
    def slot_offsets(self) -> np.ndarray:
        """Constant angle added to each slot, ``(G,)``."""
        return np.array([self.gates[gi].offset for gi in self.slots], dtype=np.float64)

    @cached_property
    def param_slots(self) -> np.ndarray:
        """Slots that read a parameter (constant rotations excluded)."""
        return np.flatnonzero(self.slot_params >= 0)

    @cached_property
    def input_slots(self) -> np.ndarray:
        """Slots that read an input parameter (shifted only when inputs need a gradient)."""
        return np.flatnonzero((self.slot_params >= 0) & (self.slot_params < self.n_inputs))

    @cached_property
    def weight_slots(self) -> np.ndarray:
        return np.flatnonzero(self.slot_params >= self.n_inputs)

    @cached_property
    def identity_angles(self) -> bool:
        """Whether slot ``g`` reads parameter ``g`` as is (a :attr:`slot_circuit`)."""
        return (self.n_params == self.n_slots and np.array_equal(self.slot_params, np.arange(self.n_slots))
                and bool(np.all(self.slot_coeffs == 1.0)) and not self.slot_offsets.any())

    def angles(self, params: np.ndarray) -> np.ndarray:
        """Angles of every slot: ``(B, P) -> (B, G)``."""
        params = np.asarray(params, dtype=np.float64)
        if self.identity_angles:  # parameter-shift rows (10^4 × 10^2 on wide circuits): one copy
            return params.copy()
        out = np.broadcast_to(self.slot_offsets, (params.shape[0], self.n_slots)).copy()
        ps = self.param_slots
        out[:, ps] += params[:, self.slot_params[ps]] * self.slot_coeffs[ps]
        return out

    @cached_property
    def slot_circuit(self) -> Circuit:
        """The same gates with one independent parameter per slot (identity angle map).

        Parameter shift evaluates gate-by-gate shifts, which a shared parameter cannot
        express; requests for shifted rows are made on this circuit with angles as params
        (offsets included in the angles, so the slot circuit has none).
        """
        gates, slot = [], 0
        for g in self.gates:
            if g.is_rotation:
                gates.append(Gate(g.name, g.qubits, param=slot))
                slot += 1
            else:
                gates.append(g)
        return Circuit(self.n_qubits, tuple(gates), self.n_slots, 0, name=f"{self.name}/slots")

    @cached_property
    def fingerprint(self) -> str:
        """A stable sha256 of the circuit's structure (cache keys, request hashes)."""
        h = hashlib.sha256()
        h.update(f"{self.n_qubits}|{self.n_params}|{self.n_inputs}|".encode())
        for g in self.gates:
            # offset 0 keeps the pre-offset fingerprints (journals, cell ids) unchanged.
            extra = f"+{g.offset!r}" if g.offset else ""
            h.update(f"{g.name}{g.qubits}{g.param}:{g.coeff!r}{extra};".encode())
        return h.hexdigest()

    def __hash__(self) -> int:  # structure-based, cached: circuits key transpile caches
        return hash(self.fingerprint)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Circuit) and other.fingerprint == self.fingerprint

    def __repr__(self) -> str:
        return (
            f"Circuit(name={self.name!r}, n_qubits={self.n_qubits}, gates={len(self.gates)}, "
            f"n_params={self.n_params}, n_inputs={self.n_inputs})"
        )


_S2 = 1 / np.sqrt(2)
FIXED_MATRICES = {
    "H": np.array([[_S2, _S2], [_S2, -_S2]], dtype=np.complex128),
    "X": np.array([[0, 1], [1, 0]], dtype=np.complex128),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=np.complex128),
    "Z": np.array([[1, 0], [0, -1]], dtype=np.complex128),
    "S": np.array([[1, 0], [0, 1j]], dtype=np.complex128),
    "SDG": np.array([[1, 0], [0, -1j]], dtype=np.complex128),
}
# Generators: a rotation R(θ) = cos(θ/2) I - i sin(θ/2) σ.
ROTATION_GENERATORS = {
    "RX": FIXED_MATRICES["X"],
    "RY": FIXED_MATRICES["Y"],
    "RZ": FIXED_MATRICES["Z"],
}


def two_qubit_phase_perm(gate: Gate, n_qubits: int) -> tuple[np.ndarray, np.ndarray]:
    """CZ / CNOT as ``(U ψ)[i] = phase[i] * ψ[perm[i]]``."""
    idx = np.arange(2**n_qubits)
    a, b = gate.qubits
    ba = (idx >> (n_qubits - 1 - a)) & 1
    bb = (idx >> (n_qubits - 1 - b)) & 1
    if gate.name == "CZ":
        return idx, np.where(ba & bb, -1.0, 1.0).astype(np.complex128)
    if gate.name == "CNOT":
        return np.where(ba == 1, idx ^ (1 << (n_qubits - 1 - b)), idx), np.ones(2**n_qubits, np.complex128)
    raise InvalidRequestError(f"{gate.name} is not a two-qubit gate")
