"""Qiskit ``QuantumCircuit`` / OpenQASM 3 text → the project IR.

Qiskit qubit ``q`` becomes IR qubit ``q`` (the IR's qubit 0 is the most significant bit of
a basis index; the adapters handle Qiskit's little-endian order, so a Qiskit Pauli label
``"IIZ"`` — Z on qubit 0 — is the IR label ``"ZII"``). Gates outside the IR set are
transpiled once into it (no layout, no optimisation), which keeps every angle an affine
expression of the circuit's Parameters; anything that is not affine is refused by name.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterable
from typing import Any

from ..core.circuit import Circuit, Gate
from ..core.deps import require
from ..core.exceptions import InvalidRequestError
from ._affine import affine_rotation

# IR gate of each Qiskit instruction that maps one-to-one.
DIRECT = {"rx": "RX", "ry": "RY", "rz": "RZ", "h": "H", "x": "X", "y": "Y", "z": "Z", "s": "S",
          "sdg": "SDG", "cz": "CZ", "cx": "CNOT"}
IGNORED = {"barrier", "id", "delay"}
BASIS = sorted(DIRECT)


def _param_list(spec: Any, by_name: dict[str, Any], vectors: dict[str, list], what: str) -> list:
    """Parameters named or given in ``spec`` (names, Parameters, a ParameterVector), in order."""
    if spec is None:
        return []
    if isinstance(spec, str) or not isinstance(spec, Iterable):
        spec = [spec]
    out = []
    for item in spec:
        name = item if isinstance(item, str) else getattr(item, "name", None)
        if name in by_name:
            out.append(by_name[name])
        elif name in vectors:  # a ParameterVector given by name or object: all its elements
            out.extend(vectors[name])
        else:
            raise InvalidRequestError(
                f"{what}: {name or item!r} is not a parameter of the circuit; its parameters are "
                f"{sorted(by_name)}"
            )
    return out


def from_qiskit(qc, inputs=None, weights=None, name: str | None = None) -> Circuit:
    """A Qiskit ``QuantumCircuit`` as an IR :class:`Circuit`.

    Args:
        qc: the circuit; every gate angle must be affine in its Parameters (``a·θ + b``,
            sums of such terms allowed). Final measurements and barriers are dropped.
        inputs: the per-sample input Parameters, in order (Parameter objects, their names, or
            a ParameterVector / its name). They become the circuit's first ``n_inputs``
            parameters.
        weights: the trainable Parameters, in order; the flat ``QuantumLayer.weights`` ``(W,)``
            follows this order. Default: every Parameter not in ``inputs``, in Qiskit's order.
        name: label of the IR circuit (default the Qiskit circuit's name).

    Raises:
        InvalidRequestError: an unknown or unassigned Parameter, a non-affine angle, a
            mid-circuit measurement, reset or classical control.
    """
    require("qiskit", "aer", "from_qiskit")
    from qiskit import QuantumCircuit, transpile

    if not isinstance(qc, QuantumCircuit):
        raise InvalidRequestError(f"from_qiskit expects a qiskit QuantumCircuit, got {type(qc).__name__}")
    params = list(qc.parameters)
    by_name = {p.name: p for p in params}
    vectors: dict[str, list] = {}
    for p in params:
        vec = getattr(p, "vector", None)
        if vec is not None:
            vectors.setdefault(vec.name, []).append(p)
    ins = _param_list(inputs, by_name, vectors, "inputs")
    ws = _param_list(weights, by_name, vectors, "weights") if weights is not None else [
        p for p in params if p not in set(ins)]
    order = ins + ws
    dup = {p.name for p in order if order.count(p) > 1}
    if dup:
        raise InvalidRequestError(f"parameters {sorted(dup)} are listed twice in inputs/weights")
    missing = [p.name for p in params if p not in set(order)]
    if missing:
        raise InvalidRequestError(
            f"circuit parameters {missing} are neither inputs nor weights; list each in one of them"
        )
    index = {p: i for i, p in enumerate(order)}

    body = _strip_final_measurements(qc)
    if any(inst.operation.name not in DIRECT and inst.operation.name not in IGNORED for inst in body.data):
        # One transpile into the IR's gate set; without a target there is no layout/routing,
        # so qubit q stays qubit q.
        body = transpile(body, basis_gates=BASIS, optimization_level=0)
    gates: list[Gate] = []
    for k, inst in enumerate(body.data):
        op = inst.operation
        if op.name in IGNORED:
            continue
        qubits = tuple(body.find_bit(q).index for q in inst.qubits)
        if getattr(op, "condition", None) is not None or op.name not in DIRECT:
            raise InvalidRequestError(
                f"from_qiskit: instruction {k} ({op.name!r} on qubits {list(qubits)}) has no IR equivalent "
                f"(measurements only at the end; no reset or classical control)"
            )
        ir = DIRECT[op.name]
        if op.params:
            terms, offset = _affine(op.params[0], index, op.name)
            gates += affine_rotation(ir, qubits[0], terms, offset)
        else:
            gates.append(Gate(ir, qubits))
    return Circuit(qc.num_qubits, tuple(gates), len(order), len(ins), name=name or qc.name or "qiskit")


def _strip_final_measurements(qc):
    """The circuit without its final measurements; a measurement followed by a gate on
    the same qubit is refused later (it stays in the body)."""
    body = qc.copy_empty_like()
    data = list(qc.data)
    done: set = set()
    keep = [True] * len(data)
    for k in range(len(data) - 1, -1, -1):
        inst = data[k]
        if inst.operation.name == "measure" and not (set(inst.qubits) & done):
            keep[k] = False
        elif inst.operation.name != "barrier":
            done |= set(inst.qubits)
    for k, inst in enumerate(data):
        if keep[k]:
            body.append(inst)
    return body


def _affine(angle, index: dict, gate: str) -> tuple[list[tuple[int, float]], float]:
    """``(terms [(param index, coeff)], offset)`` of an angle, or a clear refusal."""
    from qiskit.circuit import ParameterExpression

    if not isinstance(angle, ParameterExpression):
        return [], float(angle)
    ps = list(angle.parameters)
    if not ps:
        return [], float(angle.numeric())
    offset = angle.bind({p: 0.0 for p in ps})
    terms = []
    for p in ps:
        d = angle.gradient(p)
        if isinstance(d, ParameterExpression) and d.parameters:
            raise InvalidRequestError(
                f"from_qiskit: the angle {angle} of a {gate} gate is not affine in {p.name} "
                f"(expected a·{p.name} + b)"
            )
        terms.append((index[p], float(d.numeric() if isinstance(d, ParameterExpression) else d)))
    return terms, float(offset.numeric())


def from_qasm3(text: str, inputs=None, weights=None, name: str = "qasm3") -> Circuit:
    """An OpenQASM 3 program as an IR :class:`Circuit`.

    ``input float[64] θ;`` declarations (and other free angle identifiers) are the
    parameters; ``inputs`` / ``weights`` list their names in order (see :func:`from_qiskit`).
    """
    require("qiskit_qasm3_import", "aer", "from_qasm3")
    from qiskit import qasm3

    if not isinstance(text, str):
        raise InvalidRequestError(f"from_qasm3 expects the program text, got {type(text).__name__}")
    said = io.StringIO()  # the ANTLR parser prints syntax errors ("line 4:8 ...") to stderr
    try:
        with contextlib.redirect_stderr(said):
            qc = qasm3.loads(text)
    except Exception as exc:  # the importer raises several types; all mean "bad program"
        raise InvalidRequestError(f"from_qasm3: not a valid OpenQASM 3 program: {_qasm_error(exc, said.getvalue(), text)}"
                                  ) from None
    return from_qiskit(qc, inputs=inputs, weights=weights, name=name)


def _qasm_error(exc: Exception, stderr: str, text: str) -> str:
    """One line naming where the program is wrong: the parser's ``line L:C`` message, the
    importer's ``L,C:`` prefix, or the line of the statement being converted when the
    importer failed without saying where (an IndexError, a TypeError, ...)."""
    lines = text.splitlines()

    def source(n: int) -> str:
        return f" ({lines[n - 1].strip()[:80]!r})" if 0 < n <= len(lines) else ""

    said = re.search(r"line (\d+):(\d+) (.*)", stderr)
    if said:
        return f"line {said[1]}:{said[2]}: {said[3].strip()}{source(int(said[1]))}"
    msg = " ".join(str(exc).split()).strip("\"'")
    at = re.match(r"^(\d+),(\d+): (.*)", msg)
    if at:
        return f"line {at[1]}:{at[2]}: {at[3]}{source(int(at[1]))}"
    line = None
    tb = exc.__traceback__
    while tb is not None:  # innermost statement with a source position
        node = tb.tb_frame.f_locals.get("node")
        span = getattr(node, "span", None)
        if getattr(span, "start_line", None) is not None:
            line = span.start_line
        tb = tb.tb_next
    detail = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return f"line {line}: {detail}{source(line)}" if line is not None else detail
