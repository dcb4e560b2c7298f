"""PennyLane QNode / quantum function / tape → the project IR.

PennyLane records numbers, not symbols, so the map from the user's inputs and weights to
gate angles is *measured*: the function is traced at a random point and at that point plus
each unit vector (one trace per input/weight element), decomposed into the IR's gate set,
and every rotation angle is fitted as ``Σ a_k v_k + b``. Further traces at spread-out points
(zero and a few random points over several periods) must reproduce every angle, the same gate
sequence and the same measurements — otherwise the circuit is not affine in its arguments or
its structure depends on their values (Python control flow on them), and it is refused.
Control flow is detected by these traces only, so a branch no trace crosses goes unseen.

What the QNode measures is kept: each ``qml.expval`` of a Pauli word (``PauliX(0)``,
``PauliZ(0) @ PauliZ(1)``, a real multiple of one) becomes one output, in order, as the
circuit's ``observables`` (which :class:`~qmu_hw.autograd.QuantumLayer` measures by
default); any other measurement (``probs``, ``var``, ``sample``, a sum of Pauli words, a
non-Pauli observable) is refused by name. PennyLane's wire order matches the IR's (wire 0
is the most significant bit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.circuit import Circuit, Gate
from ..core.deps import require
from ..core.exceptions import InvalidRequestError
from ._affine import affine_rotation

ROTATIONS = {"RX": "RX", "RY": "RY", "RZ": "RZ"}
FIXED = {"Hadamard": "H", "PauliX": "X", "PauliY": "Y", "PauliZ": "Z", "S": "S", "Adjoint(S)": "SDG",
         "CZ": "CZ", "CNOT": "CNOT"}
IGNORED = {"GlobalPhase", "Identity", "Barrier"}
FIT_TOL = 1e-8
MEASUREMENT_NAMES = {"ProbabilityMP": "qml.probs", "VarianceMP": "qml.var", "SampleMP": "qml.sample",
                     "CountsMP": "qml.counts", "StateMP": "qml.state", "DensityMatrixMP": "qml.density_matrix",
                     "MutualInfoMP": "qml.mutual_info", "VnEntropyMP": "qml.vn_entropy", "PurityMP": "qml.purity",
                     "ClassicalShadowMP": "qml.classical_shadow"}


def _shape(spec: Any, what: str) -> tuple[int, ...]:
    if spec is None:
        return (0,)
    if isinstance(spec, (int, np.integer)):
        return (int(spec),)
    if isinstance(spec, tuple) and all(isinstance(s, (int, np.integer)) for s in spec):
        return tuple(int(s) for s in spec)
    try:
        return tuple(np.shape(np.asarray(spec, dtype=np.float64)))
    except (TypeError, ValueError):
        raise InvalidRequestError(
            f"from_pennylane: {what} must be an example array, a shape tuple or a size, got {spec!r}"
        ) from None


def from_pennylane(qnode_or_tape, inputs=None, weights=None, name: str = "pennylane") -> Circuit:
    """A PennyLane circuit as an IR :class:`Circuit`.

    Args:
        qnode_or_tape: a QNode or quantum function called as ``f(inputs, weights)`` (or
            ``f(weights)`` when ``inputs`` is None), or a tape / QuantumScript.
        inputs: for a QNode/function, an example input array or its shape (one row's
            features; flattened into the circuit's first ``n_inputs`` parameters). For a
            tape, the indices (into ``tape.get_parameters(trainable_only=False)``) of the
            parameters that are inputs; array parameters are flattened; every other tape
            parameter stays a constant.
        weights: likewise for the trainable weights; ``QuantumLayer.weights`` is the flat
            ``(W,)`` in C order of this array (or in the order of the tape indices).
        name: label of the IR circuit.

    Raises:
        InvalidRequestError: an angle that is not affine in the arguments, a structure or
            measurement that depends on their values, an operation with no IR decomposition,
            or a measurement other than ``qml.expval`` of a Pauli word (named).
    """
    qml = require("pennylane", "pennylane", "from_pennylane")
    tape_types = (qml.tape.QuantumScript,)
    if isinstance(qnode_or_tape, tape_types):
        trace, n_in, n_w, wires = _tape_tracer(qml, qnode_or_tape, inputs, weights)
    elif callable(qnode_or_tape):
        trace, n_in, n_w, wires = _function_tracer(qml, qnode_or_tape, inputs, weights)
    else:
        raise InvalidRequestError(
            f"from_pennylane expects a QNode, a quantum function or a tape, got {type(qnode_or_tape).__name__}"
        )
    K = n_in + n_w
    rng = np.random.default_rng(20240611)
    base = rng.uniform(-1.0, 1.0, K)
    structure, ang0, measured = trace(base)
    rot = [j for j, (op, _) in enumerate(structure) if op in ROTATIONS]
    coeffs = np.zeros((len(rot), K))
    for k in range(K):
        probe = base.copy()
        probe[k] += 1.0
        s_k, ang_k, m_k = trace(probe)
        _same(structure, s_k, measured, m_k)
        coeffs[:, k] = ang_k - ang0
    coeffs = np.round(coeffs, 12)
    offsets = ang0 - coeffs @ base
    # Checks at points the fit never saw: zero, and random points spread over several periods,
    # so that a branch on an argument (``if x[0] > 0.5``) is crossed by some trace.
    checks = [np.zeros(K), rng.uniform(-1.0, 1.0, K)] + [rng.uniform(-2 * np.pi, 2 * np.pi, K) for _ in range(4)]
    for check in checks:
        s_c, ang_c, m_c = trace(check)
        _same(structure, s_c, measured, m_c)
        err = np.abs(ang_c - (coeffs @ check + offsets))
        if err.size and err.max() > FIT_TOL * max(1.0, float(np.abs(check).max())):
            j = int(err.argmax())
            raise InvalidRequestError(
                f"from_pennylane: the angle of gate {j} ({structure[rot[j]][0]} on wires "
                f"{structure[rot[j]][1]}) is not affine in the inputs/weights (off by {err.max():.3g})"
            )
    qubit = {w: i for i, w in enumerate(wires)}
    gates: list[Gate] = []
    r = 0
    for op, ws in structure:
        qs = tuple(qubit[w] for w in ws)
        if op in ROTATIONS:
            terms = [(k, coeffs[r, k]) for k in np.flatnonzero(coeffs[r])]
            gates += affine_rotation(ROTATIONS[op], qs[0], terms, float(offsets[r]))
            r += 1
        else:
            gates.append(Gate(FIXED[op], qs))
    return Circuit(len(wires), tuple(gates), K, n_in, name=name,
                   observables=_observables(measured, qubit, len(wires)))


def _observables(measured, qubit: dict, n_qubits: int):
    """The measured Pauli words as IR terms (None when the source measures nothing, e.g. a
    quantum function without a return: the caller chooses)."""
    from ..core.observables import PauliTerm

    if not measured:
        return None
    terms = []
    for word, coeff in measured:
        missing = [w for w, _ in word if w not in qubit]
        if missing:
            raise InvalidRequestError(f"from_pennylane: a measurement acts on wires {missing} that no gate "
                                      f"or device wire of the circuit has ({list(qubit)})")
        terms.append(PauliTerm.from_sparse({qubit[w]: p for w, p in word}, n_qubits, coeff))
    return tuple(terms)


def _measurements(qml, tape) -> tuple:
    """``((pauli word as ((wire, 'X'|'Y'|'Z'), ...), coeff), ...)`` for each measurement, or a
    refusal naming what cannot be imported exactly."""
    out = []
    for i, m in enumerate(tape.measurements):
        kind = type(m).__name__
        shown = " ".join(repr(m).split())  # one line, even for a matrix observable
        what = f"from_pennylane: output {i} is {shown[:120]}"
        if kind != "ExpectationMP":
            raise InvalidRequestError(f"{what}; only qml.expval of Pauli words (and their products) is imported, "
                                      f"not {MEASUREMENT_NAMES.get(kind, kind)}")
        obs = getattr(m, "obs", None)
        rep = None if obs is None else obs.pauli_rep
        if rep is None or len(rep) != 1:
            raise InvalidRequestError(
                f"{what}; only a single Pauli word or a product of Pauli operators is imported "
                f"({'a sum of Pauli words: return each word as its own qml.expval' if rep else 'not a Pauli observable'})"
            )
        ((word, coeff),) = rep.items()
        if abs(complex(coeff).imag) > 1e-12:
            raise InvalidRequestError(f"{what}; its Pauli coefficient {coeff} is not real (not an observable)")
        out.append((tuple(sorted(word.items(), key=lambda kv: str(kv[0]))), float(complex(coeff).real)))
    return tuple(out)


def _same(a, b, ma=None, mb=None) -> None:
    if a != b:
        raise InvalidRequestError(
            "from_pennylane: the gate sequence changes with the input/weight values (control flow "
            "on the arguments); the IR needs one fixed circuit"
        )
    if ma != mb:
        raise InvalidRequestError(
            "from_pennylane: the measured observables change with the input/weight values (control flow "
            "on the arguments); the IR needs one fixed measurement"
        )


def _decomposed(qml, tape) -> tuple[list, np.ndarray]:
    """``([(op name, wires)], rotation angles)`` of a tape in the IR gate set."""
    gate_set = set(ROTATIONS) | set(FIXED) | IGNORED
    [flat], _ = qml.transforms.decompose(tape, gate_set=gate_set)
    structure, angles = [], []
    for op in flat.operations:
        if op.name in IGNORED:
            continue
        if op.name not in ROTATIONS and op.name not in FIXED:
            raise InvalidRequestError(
                f"from_pennylane: operation {op.name!r} has no decomposition into the IR gate set "
                f"{sorted(set(ROTATIONS) | set(FIXED))}"
            )
        structure.append((op.name, tuple(op.wires.tolist())))
        if op.name in ROTATIONS:
            angles.append(float(np.asarray(op.parameters[0], dtype=np.float64)))
    return structure, np.array(angles)


def _ordered_wires(wires) -> list:
    ws = list(wires)
    if all(isinstance(w, (int, np.integer)) for w in ws):
        return list(range(max(ws) + 1)) if ws else []
    return ws


def _function_tracer(qml, fn: Callable, inputs, weights):
    in_shape, w_shape = _shape(inputs, "inputs"), _shape(weights, "weights")
    n_in, n_w = int(np.prod(in_shape)), int(np.prod(w_shape))
    is_qnode = isinstance(fn, qml.QNode)
    build = qml.workflow.construct_tape(fn) if is_qnode else qml.tape.make_qscript(fn)

    def trace(v: np.ndarray):
        x, w = v[:n_in].reshape(in_shape), v[n_in:].reshape(w_shape)
        tape = build(x, w) if inputs is not None else build(w)
        return (*_decomposed(qml, tape), _measurements(qml, tape))

    wires = None
    if is_qnode and getattr(fn.device, "wires", None) is not None:
        wires = list(fn.device.wires)
    if wires is None:
        x0 = np.zeros(in_shape)
        w0 = np.zeros(w_shape)
        tape = build(x0, w0) if inputs is not None else build(w0)
        wires = _ordered_wires(tape.wires)
    return trace, n_in, n_w, wires


def _tape_tracer(qml, tape, inputs, weights):
    values = [np.asarray(p, dtype=np.float64) for p in tape.get_parameters(trainable_only=False)]
    n_par = len(values)

    def indices(spec, what):
        idx = [] if spec is None else [int(i) for i in np.atleast_1d(spec)]
        bad = [i for i in idx if not 0 <= i < n_par]
        if bad:
            raise InvalidRequestError(
                f"from_pennylane: {what} indices {bad} are outside the tape's {n_par} parameters"
            )
        return idx

    ins, ws = indices(inputs, "inputs"), indices(weights, "weights")
    if len(set(ins + ws)) != len(ins + ws):
        raise InvalidRequestError("from_pennylane: a tape parameter is listed twice in inputs/weights")
    order = ins + ws
    sizes = [values[i].size for i in order]
    bounds = np.cumsum([0] + sizes)

    def trace(v: np.ndarray):
        new = list(values)
        for k, i in enumerate(order):  # an array parameter (template data) takes a flat slice
            new[i] = v[bounds[k] : bounds[k + 1]].reshape(values[i].shape)
        bound = tape.bind_new_parameters(new, list(range(n_par)))
        return (*_decomposed(qml, bound), _measurements(qml, bound))

    n_in = int(sum(sizes[: len(ins)]))
    return trace, n_in, int(bounds[-1]) - n_in, _ordered_wires(tape.wires)
