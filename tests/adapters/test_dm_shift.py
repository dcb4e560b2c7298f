"""Parameter-shift requests on the density-matrix engine: one sweep per base row gives every
shifted row's value exactly (the row-by-row engine's, to rounding)."""

import numpy as np
import pytest
import torch

from qmu_hw import Circuit, EstimateRequest, Gate, QuantumLayer, get_backend
from qmu_hw.adapters import dm_engine as dm
from qmu_hw.adapters import dm_shift
from qmu_hw.adapters.ptm_noise import PTMNoise
from qmu_hw.autograd.shift import shift_plan
from qmu_hw.circuits import hqml
from qmu_hw.core.observables import PauliTerm, as_observables

DEPOL = PTMNoise(p1=(0.01,), p2_default=0.05, readout=((0.02, 0.03),))
# thermal relaxation is not unital: two-qubit layers become dense matrices ("2d", ≤ 5 qubits)
# or gate sequences ("2s"), each with its own adjoint
THERMAL = PTMNoise(p1=(0.002,), p2_default=0.01, t1=(50_000.0,), t2=(40_000.0,), time_1q=(100.0,),
                   time_2q_default=300.0, readout=((0.01, 0.02),))
PER_QUBIT = PTMNoise(p1=(0.01, 0.02, 0.0, 0.005, 0.01, 0.03, 0.02), p2_default=0.08,
                     readout=((0.02, 0.01), (0.0, 0.0), (0.05, 0.02), (0.01, 0.01), (0.0, 0.03), (0.02, 0.02),
                              (0.01, 0.0)))


@pytest.fixture(params=["batched", "supports"])
def sweep_mode(request, monkeypatch):
    """Both sweeps: batched over observables on full registers, and each observable on its
    support (every group whose two-qubit layers are gathers)."""
    monkeypatch.setattr(dm_shift, "SUPPORT_MAX_WORK", 0.0 if request.param == "batched" else 1.0)
    return request.param


def _affine(n, layers, rng):
    """Rotations with coefficients and offsets, constant rotations, fixed gates and CNOTs."""
    gates, p = [], 0
    for _ in range(layers):
        for q in range(n):
            gates.append(Gate("RY", (q,), param=p % 5, coeff=float(rng.uniform(0.5, 1.5)),
                              offset=float(rng.uniform(-1, 1))))
            gates.append(Gate("RZ", (q,), offset=float(rng.uniform(-2, 2))))  # a constant rotation
            if q % 2:
                gates.append(Gate("H", (q,)))
            p += 1
        for q in range(n - 1):
            gates.append(Gate("CNOT", (q, q + 1)) if q % 2 else Gate("CZ", (q, q + 1)))
        gates.append(Gate("RX", (n - 1,), param=(p + 1) % 5, coeff=-0.7))
    return Circuit(n, tuple(gates), n_params=5)


def _labels(n, rng):
    out = ["I" * q + "Z" + "I" * (n - q - 1) for q in range(n)]
    out.append("".join(rng.choice(list("IXYZ"), n)))
    out.append("X" + "I" * (n - 2) + "Y")
    return out


def _check(circuit, noise, labels, B=2, seed=0, slots=None):
    rng = np.random.default_rng(seed)
    params = rng.uniform(-3, 3, (B, circuit.n_params))
    plan = shift_plan(circuit, params, slots)
    sc = circuit.slot_circuit
    terms = tuple(as_observables(labels, circuit.n_qubits))
    got = dm_shift.shift_expectations(sc, plan.rows, terms, noise, 4 * 2**30, always=True)
    assert got is not None
    with torch.no_grad():
        ref = dm.noisy_expectations(sc, torch.as_tensor(plan.rows), terms, noise).numpy()
    assert got[1] == B
    np.testing.assert_allclose(got[0], ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("entangler", ["ring", "linear", "all"])
@pytest.mark.parametrize("layers", [1, 2, 4, 6])
def test_hqml_shift_rows_equal_row_by_row(entangler, layers, sweep_mode):
    n = 5 if entangler == "all" or layers == 6 else 6
    _check(hqml(n, layers, entangler), DEPOL, _labels(n, np.random.default_rng(layers)), seed=layers)


@pytest.mark.parametrize("noise", [DEPOL, THERMAL, PER_QUBIT], ids=["depol", "thermal", "per-qubit"])
@pytest.mark.parametrize("n", [4, 7])
def test_affine_constant_angles_and_noise_kinds(noise, n, sweep_mode):
    rng = np.random.default_rng(n)
    _check(_affine(n, 2, rng), noise, _labels(n, rng), seed=n)


def test_calibrated_device_noise(sweep_mode):
    pytest.importorskip("qiskit_ibm_runtime")
    from qmu_hw.adapters.aer import fake_device
    from qmu_hw.adapters.device_calibration import calibrated_noise

    noise, _ = calibrated_noise(fake_device("FakeBrisbane"), 6)  # thermal relaxation, virtual Z, per-edge errors
    _check(hqml(6, 2, "linear"), noise, _labels(6, np.random.default_rng(2)))


def test_subset_of_slots_and_several_blocks():
    c = hqml(6, 3, "ring")
    _check(c, THERMAL, _labels(6, np.random.default_rng(3)), B=5, slots=c.weight_slots[::3])


def test_member_chunks_when_a_row_of_all_members_exceeds_the_working_set(monkeypatch, sweep_mode):
    monkeypatch.setattr(dm_shift, "CHUNK_BYTES", 1)  # one member and one row per pass
    _check(hqml(7, 2, "ring"), DEPOL, _labels(7, np.random.default_rng(0)), B=3)


def test_rows_without_shift_structure_take_the_general_path():
    c = hqml(6, 3, "ring").slot_circuit
    rng = np.random.default_rng(0)
    rows = rng.uniform(-3, 3, (40, c.n_params))
    terms = tuple(as_observables(_labels(6, rng), 6))
    assert dm_shift.shift_expectations(c, rows, terms, DEPOL, 4 * 2**30, always=True) is None
    b = get_backend("dm-depol-0.01", method="ptm")
    res = b.estimate(EstimateRequest(c, rows, [t.label for t in terms]))
    assert "shift_base_rows" not in res.metadata["raw"]
    with torch.no_grad():
        ref = dm.noisy_expectations(c, torch.as_tensor(rows), terms, b.noise_for(6)).numpy()
    np.testing.assert_allclose(res.values, ref, atol=1e-12)


def test_backend_takes_the_fast_path_exact_and_sampled():
    c = hqml(6, 4, "ring")
    params = np.random.default_rng(1).uniform(-3, 3, (3, c.n_params))
    plan = shift_plan(c, params)
    b = get_backend("dm-depol-0.01", method="ptm")
    res = b.estimate(EstimateRequest(c.slot_circuit, plan.rows))
    assert res.metadata["raw"]["shift_base_rows"] == 3
    terms = tuple(PauliTerm("I" * q + "Z" + "I" * (5 - q)) for q in range(6))
    with torch.no_grad():
        ref = dm.noisy_expectations(c.slot_circuit, torch.as_tensor(plan.rows), terms, b.noise_for(6)).numpy()
    np.testing.assert_allclose(res.values, ref, atol=1e-10)
    sampled = b.estimate(EstimateRequest(c.slot_circuit, plan.rows, shots=1000, seed=0))
    assert sampled.metadata["raw"]["shift_base_rows"] == 3
    assert np.abs(sampled.values - ref).max() < 6 * sampled.stderr.max() + 1e-12


def test_small_cones_stay_on_the_general_path():
    c = hqml(4, 2, "ring")  # 4-qubit registers: running the rows is as fast
    plan = shift_plan(c, np.zeros((2, c.n_params)))
    res = get_backend("dm-depol-0.01", method="ptm").estimate(EstimateRequest(c.slot_circuit, plan.rows))
    assert "shift_base_rows" not in res.metadata["raw"]


def test_a_sweep_row_over_the_memory_limit_falls_back():
    c = hqml(6, 3, "ring")
    plan = shift_plan(c, np.zeros((1, c.n_params)))
    terms = tuple(as_observables(None, 6))
    assert dm_shift.shift_expectations(c.slot_circuit, plan.rows, terms, DEPOL, 2**12, always=True) is None


def test_parameter_shift_gradient_equals_backprop(monkeypatch):
    taken = []
    real = dm_shift.shift_expectations
    monkeypatch.setattr(dm_shift, "shift_expectations", lambda *a, **k: taken.append(real(*a, **k)) or taken[-1])
    torch.manual_seed(0)
    c = hqml(6, 3, "ring")
    b = get_backend("dm-depol-0.01", method="ptm")
    ps = QuantumLayer(c, b, gradient="parameter-shift", shots=None)
    bp = QuantumLayer(c, b, gradient="backprop", shots=None)
    with torch.no_grad():
        bp.weights.copy_(ps.weights)
    x = torch.rand(3, c.n_inputs, dtype=torch.float64) * 3
    w_out = torch.randn(c.n_qubits, dtype=torch.float64)
    grads = []
    for layer in (ps, bp):
        xi = x.clone().requires_grad_(True)
        (layer(xi) @ w_out).sum().backward()
        grads.append((xi.grad.clone(), layer.weights.grad.clone()))
    for a, b_ in zip(*grads, strict=True):
        np.testing.assert_allclose(a.numpy(), b_.numpy(), atol=1e-8)
    assert [t is not None for t in taken] == [False, True]  # the forward request, then the shifted rows


def test_supports_shrink_toward_the_readout_and_are_used(monkeypatch):
    from qmu_hw.adapters.dm_compile import expectation_groups
    from qmu_hw.adapters.dm_support import output_plans
    from qmu_hw.adapters.dm_sweep import adjoint_layers

    c = hqml(7, 3, "ring").slot_circuit
    labels = tuple("I" * q + "Z" + "I" * (6 - q) for q in range(7))
    groups, _ = expectation_groups(c, DEPOL, labels)
    g = max(groups, key=lambda x: x.k)
    plans = output_plans(g, adjoint_layers(g))
    sizes = [len(S) for S in plans[0].after]
    assert sizes[-1] == 1 and sizes[0] == g.k and sizes == sorted(sizes, reverse=True)
    calls = []
    real = dm_shift.sweep_outputs
    monkeypatch.setattr(dm_shift, "sweep_outputs", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(dm_shift, "SUPPORT_MAX_WORK", 1.0)
    _check(hqml(7, 3, "ring"), DEPOL, list(labels))
    assert calls


def test_auto_falls_back_to_the_sweep_when_pauli_propagation_is_over_tolerance():
    c = hqml(7, 4, "ring")  # cones of 7 qubits: auto tries Pauli propagation first
    plan = shift_plan(c, np.random.default_rng(2).uniform(-3, 3, (1, c.n_params)))
    b = get_backend("dm-depol-0.01", pauli_max_weight=2, pauli_tolerance=1e-6)
    res = b.estimate(EstimateRequest(c.slot_circuit, plan.rows))
    raw = res.metadata["raw"]
    assert raw["method"] == "ptm" and "pauli_fallback" in raw and raw["shift_base_rows"] == 1
    terms = tuple(as_observables(None, 7))
    with torch.no_grad():
        ref = dm.noisy_expectations(c.slot_circuit, torch.as_tensor(plan.rows), terms, b.noise_for(7)).numpy()
    np.testing.assert_allclose(res.values, ref, atol=1e-10)
