"""from_pennylane is exact or refuses: the QNode's measured observables are honoured
(values equal PennyLane's default.qubit), and what cannot be imported exactly is refused by
name (the cases of issue 20)."""

import numpy as np
import pytest
import torch

from qmu_hw import get_backend
from qmu_hw.autograd import QuantumLayer
from qmu_hw.circuits import from_pennylane
from qmu_hw.core.exceptions import InvalidRequestError

qml = pytest.importorskip("pennylane")
pytestmark = pytest.mark.pennylane
N = 3
X = np.random.default_rng(7).uniform(-2, 2, (5, N))


def _qnode(measure):
    dev = qml.device("default.qubit", wires=N)

    @qml.qnode(dev)
    def f(x, w):
        qml.AngleEmbedding(x, wires=range(N))
        qml.BasicEntanglerLayers(w, wires=range(N))
        return measure()

    return f


def _compare(measure):
    f = _qnode(measure)
    w = np.random.default_rng(3).uniform(-2, 2, (1, N))
    circuit = from_pennylane(f, inputs=np.zeros(N), weights=w.shape)
    layer = QuantumLayer(circuit, get_backend("exact"), shots=None)
    layer.weights.data = torch.tensor(w.reshape(-1))
    got = layer(torch.tensor(X)).detach().numpy()
    ref = np.array([np.atleast_1d(np.asarray(f(x, w), dtype=float)) for x in X])
    return got, ref


def test_expval_pauli_x_equals_pennylane():
    got, ref = _compare(lambda: qml.expval(qml.PauliX(0)))
    assert got.shape == (5, 1)  # one output, not Z on every qubit
    np.testing.assert_allclose(got, ref, atol=1e-10)


def test_a_product_of_paulis_is_one_output_equal_to_pennylane():
    got, ref = _compare(lambda: qml.expval(qml.PauliZ(0) @ qml.PauliZ(1)))
    assert got.shape == (5, 1)
    np.testing.assert_allclose(got, ref, atol=1e-10)


def test_several_outputs_in_order_with_a_coefficient():
    got, ref = _compare(lambda: [qml.expval(qml.PauliY(1) @ qml.PauliX(2)), qml.expval(qml.PauliZ(0)),
                                 qml.expval(0.5 * qml.PauliX(1))])
    assert got.shape == (5, 3)
    np.testing.assert_allclose(got, ref, atol=1e-10)


@pytest.mark.parametrize("measure, named", [
    (lambda: qml.probs(wires=[0]), "not qml.probs"),
    (lambda: qml.var(qml.PauliZ(0)), "not qml.var"),
    (lambda: qml.expval(qml.PauliZ(0) + qml.PauliX(1)), "a sum of Pauli words"),
    (lambda: qml.expval(qml.Hermitian(np.eye(2), wires=0)), "not a Pauli observable"),
])
def test_other_measurements_are_refused_by_name(measure, named):
    with pytest.raises(InvalidRequestError, match=f"output 0 is .*{named}") as err:
        from_pennylane(_qnode(measure), inputs=np.zeros(N), weights=(1, N))
    assert "\n" not in str(err.value)


def test_control_flow_on_the_inputs_is_refused():
    dev = qml.device("default.qubit", wires=1)

    @qml.qnode(dev)
    def f(x, w):
        if x[0] > 0.5:
            qml.PauliX(0)
        qml.RX(w[0], wires=0)
        return qml.expval(qml.PauliZ(0))

    with pytest.raises(InvalidRequestError, match="gate sequence changes with the input"):
        from_pennylane(f, inputs=np.zeros(1), weights=(1,))
