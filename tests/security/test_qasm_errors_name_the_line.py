"""Malformed OpenQASM 3 and unsupported Qiskit instructions are refused in one line that
names the line (QASM) or the instruction (Qiskit)."""

import pytest

from qmu_hw.core.exceptions import InvalidRequestError

pytest.importorskip("qiskit_qasm3_import")
from qmu_hw.circuits import from_qasm3, from_qiskit  # noqa: E402

HEAD = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\n'


@pytest.mark.parametrize("program, where", [
    ("OPENQASM 3.0;\nqubit[2] q;\nh q[0];\nrx( q[1];\n", r"line 4:8: no viable alternative .*'rx\( q\[1\];'"),
    (HEAD + "h q[0];\nfoo q[1];\n", r"line 5:0: gate 'foo' is not defined"),
    (HEAD + "h q[5];\n", r"line 4: IndexError: .*'h q\[5\];'"),
    (HEAD + "U(0.1, 0.2) q[0];\n", r"line 4: TypeError: .*'U\(0.1, 0.2\) q\[0\];'"),
    ("garbage", r"line 1:7"),
])
def test_a_malformed_program_names_its_line(program, where):
    with pytest.raises(InvalidRequestError, match=where) as err:
        from_qasm3(program)
    assert "\n" not in str(err.value) and "NoneType" not in str(err.value)


def test_an_unsupported_qiskit_instruction_is_named_with_its_position():
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2, 1)
    qc.h(0)
    qc.measure(0, 0)
    qc.x(0)
    with pytest.raises(InvalidRequestError, match=r"instruction 1 \('measure' on qubits \[0\]\)"):
        from_qiskit(qc)
