import numpy as np
import pytest

from qmu_hw import Circuit, Gate, InvalidRequestError, QmuHwError
from qmu_hw.circuits import ENTANGLERS, entangler_pairs, hqml


def test_hqml_parameter_order_and_shape():
    c = hqml(3, 2)
    assert c.n_params == 3 + 2 * 3 * 3 and c.n_inputs == 3 and c.weight_shape == (2, 3, 3)
    # Encoding: qubit w reads input w three times (RX, RY, RZ).
    enc = [g for g in c.gates[:9]]
    assert [g.name for g in enc[:3]] == ["RX", "RY", "RZ"]
    assert all(g.param == g.qubits[0] for g in enc)
    # θ[l, k, w] lives at n_inputs + (l*3 + k)*n + w.
    layer1 = [g for g in c.gates if g.is_rotation and g.param >= 3]
    for g in layer1:
        idx = g.param - 3
        lay, k, w = idx // 9, (idx // 3) % 3, idx % 3
        assert g.qubits == (w,) and g.name == ("RX", "RY", "RZ")[k]
        assert lay in (0, 1)


def test_ring_entangler_matches_paper():
    assert entangler_pairs(4, "ring") == [(0, 1), (1, 2), (2, 3), (3, 0)]
    assert entangler_pairs(4, "linear") == [(0, 1), (1, 2), (2, 3)]
    assert len(entangler_pairs(5, "all")) == 10
    assert entangler_pairs(4, "none") == []
    with pytest.raises(InvalidRequestError, match="expected one of"):
        hqml(4, 1, entangler="star")
    assert set(ENTANGLERS) == {"ring", "linear", "all", "none"}


def test_angle_map_sums_shared_parameters():
    c = hqml(2, 1)
    m = c.angle_map
    assert m.shape == (c.n_slots, c.n_params)
    # Each input feeds three slots; each weight exactly one.
    assert list(m.sum(axis=0)[:2]) == [3.0, 3.0]
    assert np.all(m.sum(axis=0)[2:] == 1.0)
    p = np.arange(c.n_params, dtype=float)[None]
    assert np.allclose(c.angles(p), p @ m.T)


def test_slot_circuit_has_identity_map():
    c = hqml(3, 2)
    s = c.slot_circuit
    assert s.n_params == c.n_slots and np.array_equal(s.angle_map, np.eye(c.n_slots))
    assert [g.name for g in s.gates] == [g.name for g in c.gates]


def test_fingerprint_and_equality_are_structural():
    assert hqml(3, 1) == hqml(3, 1) and hash(hqml(3, 1)) == hash(hqml(3, 1))
    assert hqml(3, 1) != hqml(3, 1, "linear")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="RQ", qubits=(0,), param=0), "unknown gate"),
        (dict(name="CZ", qubits=(0,)), "acts on 2"),
        (dict(name="CZ", qubits=(1, 1)), "distinct"),
        (dict(name="H", qubits=(0,), param=1), "fixed gates take no parameter"),
        (dict(name="H", qubits=(0,), offset=0.3), "fixed gates take no parameter"),
        (dict(name="RX", qubits=(0,), param=0, offset=float("nan")), "finite"),
    ],
)
def test_bad_gates(kwargs, match):
    with pytest.raises(InvalidRequestError, match=match):
        Gate(**kwargs)


def test_bad_circuits():
    with pytest.raises(QmuHwError, match="outside a 2-qubit"):
        Circuit(2, (Gate("RX", (2,), param=0),), n_params=1)
    with pytest.raises(ValueError, match="reads parameter 3"):
        Circuit(2, (Gate("RX", (0,), param=3),), n_params=1)
    with pytest.raises(InvalidRequestError, match="n_qubits must be a positive"):
        hqml(0, 1)
