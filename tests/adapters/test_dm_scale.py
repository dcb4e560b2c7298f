"""The light-cone PTM engine at the paper's scale: exact against Aer, differentiable,
memory-plan refusals."""

import numpy as np
import pytest
import torch

import qmu_hw
from qmu_hw import Circuit, EstimateRequest, Gate, get_backend
from qmu_hw.adapters import dm_engine as dm
from qmu_hw.adapters.light_cone import circuit_ops, light_cone
from qmu_hw.adapters.ptm_noise import PTMNoise
from qmu_hw.circuits import hqml
from qmu_hw.core.exceptions import InvalidRequestError, ProfileError

NOISE = PTMNoise(p1=(0.01,), p2_default=0.1, readout=((0.02, 0.02),))


def _mixed(n):
    """H, S, CNOT, coefficients on n qubits; measured with X/Y/Z strings."""
    gates = []
    for q in range(n):
        gates += [Gate("H", (q,)), Gate("RY", (q,), param=q % 3, coeff=0.7 + 0.1 * q)]
    for q in range(n - 1):
        gates += [Gate("CNOT", (q, q + 1)), Gate("S", (q + 1,)), Gate("RX", (q,), param=(q + 1) % 3, coeff=-0.5)]
    gates += [Gate("CZ", (n - 1, 0)), Gate("SDG", (0,)), Gate("RZ", (n - 1,), param=2)]
    return Circuit(n, tuple(gates), n_params=3)


def _labels(n):
    return ["X" + "I" * (n - 2) + "Y", "I" * (n - 3) + "ZZX", "Y" + "Z" * (n - 1), "I" * n]


@pytest.mark.aer
@pytest.mark.parametrize("n", [4, 6, 8])
@pytest.mark.parametrize("entangler", ["ring", "linear", "all", "mixed"])
def test_exact_noisy_expectations_match_aer(n, entangler):
    if entangler == "all" and n == 8:
        pytest.skip("Aer's 8-qubit density matrix with 28 CZs per layer is minutes; 4 and 6 cover 'all'")
    c, obs = (_mixed(n), _labels(n)) if entangler == "mixed" else (hqml(n, 2, entangler), None)
    params = np.random.default_rng(n).uniform(-3, 3, (3, c.n_params))
    ours = get_backend("dm-depol-0.01").estimate(EstimateRequest(c, params, obs)).values
    aer = get_backend("aer-depol-0.01").estimate(EstimateRequest(c, params, obs)).values
    np.testing.assert_allclose(ours, aer, atol=1e-6)


@pytest.mark.aer
def test_deep_circuit_without_small_cones_matches_aer():
    c = hqml(6, 6)  # every cone is the whole register
    params = np.random.default_rng(1).uniform(-3, 3, (2, c.n_params))
    ours = get_backend("dm-depol-0.005").estimate(EstimateRequest(c, params)).values
    aer = get_backend("aer-depol-0.005").estimate(EstimateRequest(c, params)).values
    np.testing.assert_allclose(ours, aer, atol=1e-6)


def test_ring_cones_are_three_qubits_at_any_width():
    for n in (6, 10):
        c = hqml(n, 2)
        ops = circuit_ops(c, NOISE)
        for q in range(n):
            label = "I" * q + "Z" + "I" * (n - q - 1)
            assert light_cone(ops, n, label) == tuple(sorted({(q - 1) % n, q, (q + 1) % n}))
        groups, _ = dm.expectation_groups(c, NOISE, tuple("I" * q + "Z" + "I" * (n - q - 1) for q in range(n)))
        assert {g.k for g in groups} == {3} and sum(g.members for g in groups) == n
    # X on a qubit spreads through the last CZ layer; 'all' has no small cones.
    assert len(light_cone(circuit_ops(hqml(8, 2), NOISE), 8, "X" + "I" * 7)) == 5
    assert light_cone(circuit_ops(hqml(6, 1, "all"), NOISE), 6, "Z" + "I" * 5) == (0,)  # Z commutes with CZ
    assert len(light_cone(circuit_ops(hqml(6, 2, "all"), NOISE), 6, "Z" + "I" * 5)) == 6


def test_cone_engine_equals_full_register_probabilities():
    """Two independent paths of the same engine: per-cone expectations vs the full register's
    joint outcome distribution (with readout), on 8 qubits where Aer is slow."""
    c = hqml(8, 2)
    b = get_backend("dm-depol-0.02")
    params = np.random.default_rng(4).uniform(-3, 3, (4, c.n_params))
    vals = b.estimate(EstimateRequest(c, params)).values
    probs = b.probabilities(c, params)
    from qmu_hw.core.observables import z_signs

    np.testing.assert_allclose(vals, probs @ z_signs(["I" * q + "Z" + "I" * (7 - q) for q in range(8)], 8), atol=1e-12)


def test_repeated_rows_are_deduplicated_without_changing_values():
    c = hqml(6, 2)
    b = get_backend("dm-depol-0.01")
    base = np.random.default_rng(5).uniform(-3, 3, (1, c.n_params))
    rows = np.repeat(base, 7, axis=0)
    rows[3, c.n_inputs] += 0.4  # first weight (RX on qubit 0): only cones 5, 0, 1 see a new row
    vals = b.estimate(EstimateRequest(c, rows)).values
    single = np.concatenate([b.estimate(EstimateRequest(c, rows[i : i + 1])).values for i in range(7)])
    np.testing.assert_allclose(vals, single, atol=1e-14)
    changed = ~np.isclose(vals[3], vals[0], atol=1e-12)
    assert changed.tolist() == [True, True, False, False, False, True]


@pytest.mark.parametrize("profile,n", [("dm-depol-0.01", 4), ("dm-depol-0.01", 8), ("dm-cal-fake-brisbane", 8)])
def test_backprop_equals_parameter_shift(profile, n):
    b = get_backend(profile)
    assert b.capabilities.backprop
    x = torch.as_tensor(np.random.default_rng(0).uniform(-3, 3, (5, n)), dtype=torch.float64)
    results = []
    for gradient in ("backprop", "parameter-shift"):
        torch.manual_seed(0)
        layer = qmu_hw.QuantumLayer(hqml(n, 2), b, gradient=gradient, shots=None)
        xi = x.clone().requires_grad_(True)
        out = layer(xi)
        (out * torch.arange(1, n + 1)).sin().sum().backward()
        results.append((out.detach(), layer.weights.grad, xi.grad))
    for a, p in zip(*results, strict=True):
        np.testing.assert_allclose(a.numpy(), p.numpy(), atol=1e-8)
    assert results[0][1].abs().max() > 1e-3  # a gradient that can fail


def test_register_too_large_for_memory_plan_is_refused_before_running():
    b = get_backend("dm-depol-0.01", max_qubits=12, max_memory_gb=0.25)
    c = hqml(12, 2, "all")  # one 12-qubit cone: 4^12 numbers per row
    params = np.zeros((2, c.n_params))
    before = len(b.ledger)
    with pytest.raises(InvalidRequestError, match=r"would need \d+\.\d GiB.*4\^12"):
        b.estimate(EstimateRequest(c, params))
    with pytest.raises(InvalidRequestError, match="GiB"):
        b.estimate(EstimateRequest(c, params, shots=100))
    assert len(b.ledger) == before
    # Backprop keeps every row's layers for autograd: refused for the batch, not per row.
    small = get_backend("dm-depol-0.01", max_qubits=12, max_memory_gb=2)
    deep = hqml(9, 2, "all")  # 4^9 numbers per row: fine chunked, not 64 rows × 6 layers
    small.estimate(EstimateRequest(deep, np.zeros((1, deep.n_params))))
    layer = qmu_hw.QuantumLayer(deep, small, gradient="backprop", shots=None)
    with pytest.raises(InvalidRequestError, match="kept for autograd"):
        layer(torch.zeros(64, 9))
    # The same width with small cones fits easily.
    b.estimate(EstimateRequest(hqml(12, 2), np.zeros((1, hqml(12, 2).n_params))))


def test_unrepresentable_noise_is_refused_by_name(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('schema_version = 1\nname = "bad"\nadapter = "density-matrix"\n'
                 '[noise]\nkind = "fake-device"\ndevice = "FakeManilaV2"\n')
    with pytest.raises(ProfileError, match="noise.kind"):
        get_backend(str(p))
    p.write_text('schema_version = 1\nname = "bad"\nadapter = "density-matrix"\n'
                 '[noise]\nkind = "depolarizing"\np1 = 0.01\nt1_us = 10.0\nt2_us = 30.0\n')
    with pytest.raises(ProfileError, match="noise.t2_us"):
        get_backend(str(p))


@pytest.mark.aer
def test_idle_qubits_and_parameter_free_cones_match_aer():
    c = Circuit(6, (Gate("H", (0,)), Gate("CNOT", (0, 1)), Gate("RY", (5,), param=0), Gate("CZ", (4, 5)),
                    Gate("RX", (4,), param=0)), n_params=1)
    labels = ["ZZIIII", "XXIIII", "IIIIZI", "IIIIIZ", "IIZIII", "IIIIII"]
    params = np.array([[0.3], [0.5], [-1.0]])
    ours = get_backend("dm-depol-0.02").estimate(EstimateRequest(c, params, labels)).values
    aer = get_backend("aer-depol-0.02").estimate(EstimateRequest(c, params, labels)).values
    np.testing.assert_allclose(ours, aer, atol=1e-6)
