"""Imported circuits (Qiskit, OpenQASM 3, PennyLane) equal their SDK's own simulators —
values and parameter-shift gradients — on random circuits, on every exact engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qmu_hw import EstimateRequest, InvalidRequestError, PauliTerm, QuantumLayer, get_backend
from qmu_hw.circuits import from_pennylane, from_qasm3, from_qiskit

qiskit = pytest.importorskip("qiskit")
from qiskit import QuantumCircuit  # noqa: E402
from qiskit.circuit import Parameter, ParameterVector  # noqa: E402
from qiskit.primitives import StatevectorEstimator  # noqa: E402
from qiskit.quantum_info import SparsePauliOp  # noqa: E402

N = 3
OBS = (PauliTerm("ZII"), PauliTerm("IZI"), PauliTerm("XYZ"), PauliTerm("IIX", 0.5))


def random_qiskit(seed: int, x, w) -> QuantumCircuit:
    """Gates outside the IR set, affine angles with offsets and sums of parameters."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(N)
    ps = list(x) + list(w)

    def angle():
        a, b = rng.choice(ps, 2, replace=False)
        kind = rng.integers(4)
        return [a, 2.0 * a + 0.3, -0.5 * a + b - 1.1, float(rng.uniform(-3, 3))][kind]

    for _ in range(14):
        q = [int(i) for i in rng.permutation(N)[:2]]
        g = rng.integers(14)
        if g == 0:
            qc.crx(angle(), *q)
        elif g == 1:
            qc.cry(angle(), *q)
        elif g == 2:
            qc.crz(angle(), *q)
        elif g == 3:
            qc.rxx(angle(), *q)
        elif g == 4:
            qc.ryy(angle(), *q)
        elif g == 5:
            qc.rzz(angle(), *q)
        elif g == 6:
            qc.u(angle(), angle(), angle(), q[0])
        elif g == 7:
            qc.sx(q[0])
        elif g == 8:
            qc.t(q[0])
        elif g == 9:
            qc.p(angle(), q[0])
        elif g == 10:
            qc.swap(*q)
        elif g == 11:
            qc.ch(*q)
        elif g == 12:
            qc.rx(angle(), q[0])
        else:
            qc.cz(*q)
    for p in ps:  # every parameter appears at least once
        qc.ry(p, int(rng.integers(N)))
    return qc


def qiskit_values(qc, order, params: np.ndarray) -> np.ndarray:
    """StatevectorEstimator ``(B, O)``; Qiskit labels are little-endian, so reversed."""
    cols = [order.index(p) for p in qc.parameters]
    obs = [SparsePauliOp(t.label[::-1], t.coeff) for t in OBS]
    res = StatevectorEstimator().run([(qc, o, params[:, cols]) for o in obs]).result()
    return np.stack([r.data.evs for r in res], axis=1)


def exact(circuit, params, backend="exact"):
    return get_backend(backend).estimate(EstimateRequest(circuit, params, OBS)).values


@pytest.mark.parametrize("seed", range(4))
def test_from_qiskit_values_equal_statevector_estimator(seed):
    x, w = ParameterVector("x", 2), ParameterVector("w", 3)
    qc = random_qiskit(seed, x, w)
    circuit = from_qiskit(qc, inputs=x, weights=w)
    assert (circuit.n_inputs, circuit.n_weights, circuit.n_qubits) == (2, 3, N)
    params = np.random.default_rng(seed).uniform(-np.pi, np.pi, (5, 5))
    ref = qiskit_values(qc, list(x) + list(w), params)
    np.testing.assert_allclose(exact(circuit, params), ref, atol=1e-10)
    np.testing.assert_allclose(exact(circuit, params, "dm-depol-0.001").shape, ref.shape)


@pytest.mark.aer
def test_from_qiskit_runs_on_aer_and_density_matrix_engines():
    x, w = ParameterVector("x", 2), ParameterVector("w", 3)
    qc = random_qiskit(7, x, w)
    circuit = from_qiskit(qc, inputs=x, weights=w)
    params = np.random.default_rng(7).uniform(-np.pi, np.pi, (3, 5))
    ref = qiskit_values(qc, list(x) + list(w), params)
    np.testing.assert_allclose(exact(circuit, params, "aer-ideal"), ref, atol=1e-8)
    # Noisy engines on the same IR: Aer and the density-matrix engine agree on the noise.
    np.testing.assert_allclose(exact(circuit, params, "dm-depol-0.01"),
                               exact(circuit, params, "aer-depol-0.01"), atol=1e-8)


def test_parameter_shift_gradient_equals_finite_differences_of_qiskit():
    x, w = ParameterVector("x", 2), ParameterVector("w", 3)
    qc = random_qiskit(11, x, w)
    order = list(x) + list(w)
    circuit = from_qiskit(qc, inputs=x, weights=w)
    layer = QuantumLayer(circuit, get_backend("exact"), gradient="parameter-shift", shots=None, observables=OBS)
    rng = np.random.default_rng(3)
    xs = torch.tensor(rng.uniform(-2, 2, (2, 2)), requires_grad=True)
    layer.weights.data = torch.tensor(rng.uniform(-2, 2, 3))
    out = layer(xs)
    out.sum().backward()
    params = np.concatenate([xs.detach().numpy(), np.broadcast_to(layer.weights.detach().numpy(), (2, 3))], 1)
    np.testing.assert_allclose(out.detach().numpy(), qiskit_values(qc, order, params), atol=1e-10)
    h = 1e-5
    fd = np.zeros_like(params)
    for k in range(5):
        e = np.zeros(5)
        e[k] = h
        fd[:, k] = (qiskit_values(qc, order, params + e).sum(1) - qiskit_values(qc, order, params - e).sum(1)) / (2 * h)
    np.testing.assert_allclose(xs.grad.numpy(), fd[:, :2], atol=1e-7)
    np.testing.assert_allclose(layer.weights.grad.numpy(), fd[:, 2:].sum(0), atol=1e-7)


def test_backprop_equals_parameter_shift_with_offsets_and_constants():
    x, w = ParameterVector("x", 2), ParameterVector("w", 3)
    circuit = from_qiskit(random_qiskit(5, x, w), inputs=x, weights=w)
    assert np.any(circuit.slot_offsets != 0) and np.any(circuit.slot_params < 0)
    grads = []
    for gradient in ("backprop", "parameter-shift"):
        torch.manual_seed(0)
        layer = QuantumLayer(circuit, get_backend("exact"), gradient=gradient, shots=None)
        xs = torch.tensor([[0.3, -1.2], [2.0, 0.1]], dtype=torch.float64, requires_grad=True)
        out = layer(xs)
        (out * torch.arange(1, 4)).sum().backward()
        grads.append((out.detach(), xs.grad, layer.weights.grad))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_weights_follow_the_order_of_the_weights_argument():
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(1)
    qc.rx(a, 0)
    qc.ry(3 * b, 0)
    ab, ba = from_qiskit(qc, weights=[a, b]), from_qiskit(qc, weights=["b", "a"])
    layer = QuantumLayer(ba, get_backend("exact"), shots=None)
    assert layer.weights.shape == (2,)
    layer.weights.data = torch.tensor([0.4, 1.3], dtype=torch.float64)  # b, a
    want = get_backend("exact").estimate(EstimateRequest(ab, np.array([[1.3, 0.4]]))).values
    got = layer(torch.zeros(1, 0, dtype=torch.float64)).detach().numpy()
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert not np.allclose(want, get_backend("exact").estimate(EstimateRequest(ab, np.array([[0.4, 1.3]]))).values)


def test_from_qiskit_refuses_what_the_ir_cannot_hold():
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(2)
    qc.rx(a * b, 0)
    with pytest.raises(InvalidRequestError, match="not affine"):
        from_qiskit(qc)
    qc = QuantumCircuit(1)
    qc.rx(a, 0)
    with pytest.raises(InvalidRequestError, match="not a parameter of the circuit.*'a'"):
        from_qiskit(qc, weights=["nope"])
    qc.ry(b, 0)
    with pytest.raises(InvalidRequestError, match=r"\['b'\] are neither inputs nor weights"):
        from_qiskit(qc, inputs=[a], weights=[])  # b listed nowhere
    mid = QuantumCircuit(1, 1)
    mid.measure(0, 0)
    mid.x(0)
    with pytest.raises(InvalidRequestError, match="measure"):
        from_qiskit(mid)
    with pytest.raises(InvalidRequestError, match="QuantumCircuit"):
        from_qiskit("rx(0.1) q[0];")


QASM = """
OPENQASM 3.0;
include "stdgates.inc";
input float[64] x0;
input float[64] x1;
input float[64] w0;
input float[64] w1;
qubit[3] q;
h q[0];
rx(2 * x0 + 0.25) q[0];
crz(w0) q[0], q[1];
ry(x1) q[2];
cx q[1], q[2];
U(w1, x0, 0.5) q[1];
crx(w0 - w1) q[0], q[2];
cp(0.3) q[2], q[1];
"""


def test_from_qasm3_equals_qiskit():
    pytest.importorskip("qiskit_qasm3_import")
    circuit = from_qasm3(QASM, inputs=["x0", "x1"], weights=["w0", "w1"])
    qc = qiskit.qasm3.loads(QASM)
    order = [next(p for p in qc.parameters if p.name == n) for n in ("x0", "x1", "w0", "w1")]
    params = np.random.default_rng(2).uniform(-3, 3, (4, 4))
    np.testing.assert_allclose(exact(circuit, params), qiskit_values(qc, order, params), atol=1e-10)
    with pytest.raises(InvalidRequestError, match="OpenQASM 3"):
        from_qasm3("OPENQASM 3.0; qubit q; foo q;", weights=[])


# -- PennyLane -------------------------------------------------------------------------------


@pytest.mark.pennylane
def test_from_pennylane_values_and_gradients_equal_default_qubit():
    qml = pytest.importorskip("pennylane")
    from pennylane import numpy as pnp

    dev = qml.device("default.qubit", wires=N)

    @qml.qnode(dev, diff_method="parameter-shift")
    def f(x, w):
        qml.AngleEmbedding(x, wires=range(N))
        qml.StronglyEntanglingLayers(w, wires=range(N))
        qml.CRX(2 * w[0, 0, 0] + 0.1, wires=[0, 2])
        qml.IsingXX(x[1] - w[1, 1, 1], wires=[1, 2])
        qml.SX(0)
        qml.T(1)
        return [qml.expval(qml.PauliZ(i)) for i in range(N)]

    circuit = from_pennylane(f, inputs=np.zeros(N), weights=(2, N, 3))
    assert (circuit.n_inputs, circuit.n_weights) == (N, 18)
    rng = np.random.default_rng(4)
    x, w = rng.uniform(-2, 2, (2, N)), rng.uniform(-2, 2, (2, N, 3))
    layer = QuantumLayer(circuit, get_backend("exact"), shots=None)
    layer.weights.data = torch.tensor(w.reshape(-1))
    xs = torch.tensor(x, requires_grad=True)
    out = layer(xs)
    out.sum().backward()
    ref = np.array([f(xi, w) for xi in x])
    np.testing.assert_allclose(out.detach().numpy(), ref, atol=1e-10)

    def total(xx, ww):
        return sum(qml.math.sum(qml.math.stack(f(xx[i], ww))) for i in range(2))

    gx, gw = qml.grad(total, argnums=[0, 1])(pnp.array(x, requires_grad=True), pnp.array(w, requires_grad=True))
    np.testing.assert_allclose(xs.grad.numpy(), gx, atol=1e-10)
    np.testing.assert_allclose(layer.weights.grad.numpy(), np.asarray(gw).reshape(-1), atol=1e-10)


@pytest.mark.pennylane
def test_from_pennylane_tape_and_refusals():
    qml = pytest.importorskip("pennylane")
    tape = qml.tape.QuantumScript(
        [qml.Hadamard(0), qml.RY(0.7, 1), qml.CRY(0.2, [0, 1]), qml.Rot(0.1, 0.2, 0.3, 1)],
        [qml.expval(qml.PauliZ(1))],
    )
    c = from_pennylane(tape, inputs=[0], weights=[2, 3, 4])  # RY(0.7)→input, Rot→weights, CRY const
    assert (c.n_inputs, c.n_weights) == (1, 3)
    params = np.array([[0.7, 0.1, 0.2, 0.3]])
    dev = qml.device("default.qubit", wires=2)
    ref = qml.execute([tape], dev)[0]
    z1 = get_backend("exact").estimate(EstimateRequest(c, params, (PauliTerm("IZ"),))).values
    np.testing.assert_allclose(z1[0, 0], ref, atol=1e-12)

    def nonlinear(x, w):
        qml.RX(qml.math.sin(w[0]), wires=0)

    with pytest.raises(InvalidRequestError, match="not affine"):
        from_pennylane(nonlinear, inputs=1, weights=1)

    def branching(x, w):
        # The importer traces at a seeded point in [-1, 1]^K and moves each argument by +1;
        # at that point this branch flips between the base trace and the probe of w[0]
        # (detection is by probing, so it can only catch branches the probes cross).
        if w[0] > x[0] + 0.5:
            qml.Hadamard(0)
        qml.RX(w[0], wires=0)

    with pytest.raises(InvalidRequestError, match="gate sequence changes"):
        from_pennylane(branching, inputs=1, weights=1)
    with pytest.raises(InvalidRequestError, match="outside the tape's 5 parameters"):
        from_pennylane(tape, weights=[7])
