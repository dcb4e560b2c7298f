"""Heisenberg-picture Pauli propagation (pauli_compile / pauli_prop / pauli_mode): exact when
nothing is dropped, its reported truncation bound holds, differentiable, wired into the
density-matrix backend with an exact fallback."""

import zlib

import numpy as np
import pytest
import torch

import qmu_hw
from qmu_hw import Circuit, EstimateRequest, Gate, get_backend
from qmu_hw.adapters import dm_engine as dm
from qmu_hw.adapters.pauli_prop import pauli_expectations
from qmu_hw.adapters.ptm_noise import PTMNoise, parametric_noise
from qmu_hw.circuits import hqml
from qmu_hw.core.exceptions import InvalidRequestError, ProfileError
from qmu_hw.core.observables import PauliTerm

LADDER = ("0.001", "0.003", "0.01", "0.02")
NOISES = {
    "depol": PTMNoise(p1=(0.01,), p2_default=0.1, readout=((0.02, 0.02),)),
    "asymmetric-readout": PTMNoise(p1=(0.003,), p2_default=0.03, readout=((0.01, 0.05), (0.0, 0.02), (0.03, 0.0)) * 2),
    "thermal": parametric_noise({"kind": "depolarizing", "p1": 0.002, "p2": 0.02, "readout": 0.01, "t1_us": 20.0,
                                 "t2_us": 15.0, "gate_time_ns": 60.0}, "test"),
    "per-qubit": PTMNoise(p1=(0.01, 0.0, 0.02, 0.005, 0.0, 0.01), p2=(((0, 1), 0.05), ((2, 3), 0.0)),
                          p2_default=0.08, readout=((0.01, 0.02),)),
}


def _random_circuit(n, n_gates, rng, n_params=4):
    gates = []
    for _ in range(n_gates):
        kind = rng.choice(["rot", "rot", "fixed", "2q"])
        if kind == "rot":
            gates.append(Gate(str(rng.choice(["RX", "RY", "RZ"])), (int(rng.integers(n)),), param=int(rng.integers(n_params)),
                              coeff=float(rng.uniform(0.5, 1.5)), offset=float(rng.uniform(-1, 1))))
        elif kind == "fixed":
            gates.append(Gate(str(rng.choice(["H", "X", "Y", "Z", "S", "SDG"])), (int(rng.integers(n)),)))
        else:
            a, b = rng.choice(n, 2, replace=False)
            gates.append(Gate(str(rng.choice(["CZ", "CNOT"])), (int(a), int(b))))
    return Circuit(n, tuple(gates), n_params=n_params, name=f"random-{n}-{n_gates}")


def _random_labels(n, rng, count=4):
    return tuple(PauliTerm("".join(rng.choice(list("IXYZ"), n)), float(rng.uniform(-2, 2))) for _ in range(count)) + (
        PauliTerm("Z" + "I" * (n - 1)), PauliTerm("I" * n, 0.5))


def _z_terms(n):
    return tuple(PauliTerm("I" * q + "Z" + "I" * (n - q - 1)) for q in range(n))


@pytest.mark.parametrize("noise", list(NOISES))
@pytest.mark.parametrize("case", ["ring-1", "ring-4", "linear-6", "all-2", "random-a", "random-b"])
def test_untruncated_propagation_equals_density_matrix(noise, case):
    rng = np.random.default_rng(zlib.crc32(f"{noise}/{case}".encode()))
    kind, arg = case.split("-")
    if kind == "random":
        n = 5 if arg == "a" else 6
        c, terms = _random_circuit(n, 40, rng), _random_labels(n, rng)
    else:
        n = 6 if kind != "all" else 5
        c = hqml(n, int(arg), kind)
        terms = _z_terms(n) + _random_labels(n, rng, 2)
    ang = torch.as_tensor(c.angles(rng.uniform(-3, 3, (5, c.n_params))))
    vals, bound = pauli_expectations(c, ang, terms, NOISES[noise], max_weight=n)
    exact = dm.noisy_expectations(c, ang, terms, NOISES[noise])
    assert float(bound.abs().max()) == 0.0
    np.testing.assert_allclose(vals.numpy(), exact.numpy(), atol=1e-10)


@pytest.mark.parametrize("p", LADDER)
def test_reported_bound_holds_against_the_density_matrix_at_8_qubits(p):
    """|pauli − exact| ≤ bound on every row and observable, truncated hard enough that the
    bound is nonzero (a check that can fail)."""
    rng = np.random.default_rng(int(float(p) * 1e4))
    noise = get_backend(f"dm-depol-{p}").noise_for(8)
    cases = [(hqml(8, 6), _z_terms(8)), (hqml(8, 3, "all"), _z_terms(8)),
             (_random_circuit(8, 70, rng), _random_labels(8, rng))]
    for c, terms in cases:
        ang = torch.as_tensor(c.angles(rng.uniform(-3, 3, (6, c.n_params))))
        exact = dm.noisy_expectations(c, ang, terms, noise)
        for w in (2, 3, 4):
            vals, bound = pauli_expectations(c, ang, terms, noise, max_weight=w)
            err = (vals - exact).abs()
            assert (err <= bound + 1e-12).all(), (c.name, w, float((err - bound).max()))
            assert float(bound.max()) > 0


def test_gradients_match_and_truncated_gradient_error_is_bounded():
    # Untruncated: autograd through the walk equals autograd through the density matrix.
    c = hqml(5, 3, "ring")
    noise = NOISES["depol"]
    ang = torch.as_tensor(c.angles(np.random.default_rng(2).uniform(-3, 3, (3, c.n_params))))
    grads = []
    for f in (lambda a: pauli_expectations(c, a, _z_terms(5), noise, 5)[0],
              lambda a: dm.noisy_expectations(c, a, _z_terms(5), noise)):
        a = ang.clone().requires_grad_(True)
        (f(a) * torch.arange(1.0, 6.0)).sum().backward()
        grads.append(a.grad)
    np.testing.assert_allclose(grads[0].numpy(), grads[1].numpy(), atol=1e-10)
    assert grads[0].abs().max() > 1e-3
    # Truncated: the error e(θ) is a degree-1 trigonometric polynomial in each angle (the
    # dropped strings do not depend on θ), so ∂e/∂θ_s = (e(θ_s + π/2) − e(θ_s − π/2)) / 2 is
    # bounded by the mean of the two shifted rows' bounds.
    c = hqml(8, 5)
    noise = get_backend("dm-depol-0.02").noise_for(8)
    ang = torch.as_tensor(c.angles(np.random.default_rng(3).uniform(-3, 3, (1, c.n_params))))
    a = ang.clone().requires_grad_(True)
    pauli_expectations(c, a, _z_terms(8), noise, 3)[0][:, 0].sum().backward()
    b = ang.clone().requires_grad_(True)
    dm.noisy_expectations(c, b, _z_terms(8), noise)[:, 0].sum().backward()
    slots = np.arange(0, c.n_slots, 7)
    shifted = ang.repeat(2 * len(slots), 1)
    shifted[np.arange(len(slots)) * 2, slots] += np.pi / 2
    shifted[np.arange(len(slots)) * 2 + 1, slots] -= np.pi / 2
    _, bounds = pauli_expectations(c, shifted, _z_terms(8), noise, 3)
    allowed = 0.5 * (bounds[0::2, 0] + bounds[1::2, 0])
    err = (a.grad[0, slots] - b.grad[0, slots]).abs()
    assert (err <= allowed + 1e-12).all(), (err, allowed)


def test_backend_methods_metadata_and_fallback():
    c = hqml(8, 6)  # every cone is the register: auto considers Pauli propagation
    params = np.random.default_rng(0).uniform(-3, 3, (3, c.n_params))
    exact = get_backend("dm-depol-0.01", method="ptm").estimate(EstimateRequest(c, params))
    assert exact.metadata["raw"] == {"method": "ptm"}
    loose = get_backend("dm-depol-0.01", method="pauli", pauli_max_weight=3, pauli_tolerance=10.0)
    r = loose.estimate(EstimateRequest(c, params))
    raw = r.metadata["raw"]
    assert raw["method"] == "pauli" and len(raw["truncation_error_bound_per_observable"]) == 8
    assert 0 < raw["truncation_error_bound"] == max(raw["truncation_error_bound_per_observable"])
    assert np.abs(r.values - exact.values).max() <= raw["truncation_error_bound"]
    # The default tolerance (1e-3) is not met at weight 3: auto recomputes exactly and says so,
    # pauli refuses by naming the options.
    auto = get_backend("dm-depol-0.01", pauli_max_weight=3)
    r = auto.estimate(EstimateRequest(c, params))
    assert r.metadata["raw"]["method"] == "ptm" and "pauli_tolerance" in r.metadata["raw"]["pauli_fallback"]
    np.testing.assert_array_equal(r.values, exact.values)
    with pytest.raises(InvalidRequestError, match="pauli_tolerance.*pauli_max_weight"):
        get_backend("dm-depol-0.01", method="pauli", pauli_max_weight=3).estimate(EstimateRequest(c, params))
    # Shallow circuits keep the exact engine under auto, metadata unchanged.
    s = hqml(8, 2)
    sp = np.random.default_rng(1).uniform(-3, 3, (2, s.n_params))
    assert get_backend("dm-depol-0.01").estimate(EstimateRequest(s, sp)).metadata["raw"] == {"method": "ptm"}
    # Untruncated Pauli propagation through the backend is the exact value.
    full = get_backend("dm-depol-0.01", method="pauli", pauli_max_weight=8).estimate(EstimateRequest(s, sp))
    ref = get_backend("dm-depol-0.01").estimate(EstimateRequest(s, sp))
    np.testing.assert_allclose(full.values, ref.values, atol=1e-10)


def test_sampled_marginal_mode_and_backprop_run_on_pauli_propagation():
    c = hqml(8, 6)
    b = get_backend("dm-depol-0.02", method="pauli", pauli_max_weight=3, pauli_tolerance=10.0)
    params = np.random.default_rng(2).uniform(-3, 3, (2, c.n_params))
    exact = get_backend("dm-depol-0.02", method="ptm").estimate(EstimateRequest(c, params)).values
    r = b.estimate(EstimateRequest(c, params, shots=4000, seed=3))
    assert r.metadata["raw"]["method"] == "pauli" and r.metadata["raw"]["truncation_error_bound"] > 0
    assert np.all(np.abs(r.values - exact) <= 5 * r.stderr + r.metadata["raw"]["truncation_error_bound"])
    layer = qmu_hw.QuantumLayer(c, b, gradient="backprop", shots=None).double()
    x = torch.as_tensor(params[:, : c.n_inputs])
    layer(x).sum().backward()
    assert layer.weights.grad.abs().max() > 0
    assert b.last_backprop_metadata["method"] == "pauli"


@pytest.mark.parametrize("options,match", [
    ({"method": "fast"}, "option 'method'"), ({"pauli_max_weight": 0}, "pauli_max_weight"),
    ({"pauli_max_weight": "4"}, "pauli_max_weight"), ({"pauli_max_weight": True}, "pauli_max_weight"),
    ({"pauli_tolerance": 0}, "pauli_tolerance"), ({"pauli_tolerance": "small"}, "pauli_tolerance"),
])
def test_bad_option_values_are_refused_by_name(options, match):
    with pytest.raises(ProfileError, match=match):
        get_backend("dm-depol-0.01", **options)


def test_pauli_memory_plan_is_refused_before_compiling():
    b = get_backend("dm-depol-0.01", method="pauli", pauli_max_weight=10, max_memory_gb=0.01)
    c = hqml(10, 6)
    with pytest.raises(InvalidRequestError, match="pauli_max_weight"):
        b.estimate(EstimateRequest(c, np.zeros((1, c.n_params))))


@pytest.mark.aer
@pytest.mark.parametrize("p", ["0.01", "0.02"])
def test_pauli_propagation_agrees_with_aer_at_8_qubits(p):
    c = hqml(8, 4)
    params = np.random.default_rng(5).uniform(-3, 3, (2, c.n_params))
    aer = get_backend(f"aer-depol-{p}").estimate(EstimateRequest(c, params)).values
    full = get_backend(f"dm-depol-{p}", method="pauli", pauli_max_weight=8).estimate(EstimateRequest(c, params))
    np.testing.assert_allclose(full.values, aer, atol=1e-6)
    cut = get_backend(f"dm-depol-{p}", method="pauli", pauli_max_weight=4, pauli_tolerance=10.0)
    r = cut.estimate(EstimateRequest(c, params))
    assert np.all(np.abs(r.values - aer) <= r.metadata["raw"]["truncation_error_bound"] + 1e-6)


@pytest.mark.aer
@pytest.mark.ibm
def test_calibrated_device_noise_untruncated_equals_exact_engine():
    """Per-qubit thermal relaxation, per-edge errors and readout of a calibrated profile (with
    virtual RZ) go through the same walk."""
    c = hqml(5, 4, "linear")
    params = np.random.default_rng(6).uniform(-3, 3, (3, c.n_params))
    obs = ["ZIIII", "IIZZI", "XIYIZ", "IIIII"]
    ref = get_backend("dm-cal-fake-manila", method="ptm").estimate(EstimateRequest(c, params, obs))
    got = get_backend("dm-cal-fake-manila", method="pauli", pauli_max_weight=5).estimate(EstimateRequest(c, params, obs))
    assert got.metadata["raw"]["method"] == "pauli" and got.metadata["raw"]["truncation_error_bound"] == 0.0
    np.testing.assert_allclose(got.values, ref.values, atol=1e-10)


def test_auto_recomputes_only_the_rows_over_the_tolerance():
    c = hqml(8, 6)
    params = np.random.default_rng(8).uniform(-3, 3, (6, c.n_params))
    noise = get_backend("dm-depol-0.05").noise_for(8)
    _, bound = pauli_expectations(c, torch.as_tensor(c.angles(params)), _z_terms(8), noise, 5)
    rows = bound.max(dim=1).values.numpy()
    tol = float(np.median(rows))  # about half the rows over it
    assert (rows > tol).any() and (rows <= tol).any()
    r = get_backend("dm-depol-0.05", pauli_max_weight=5, pauli_tolerance=tol).estimate(EstimateRequest(c, params))
    raw = r.metadata["raw"]
    assert raw["method"] == "pauli" and raw["pauli_fallback_rows"] == int((rows > tol).sum())
    assert raw["truncation_error_bound"] <= tol
    exact = get_backend("dm-depol-0.05", method="ptm").estimate(EstimateRequest(c, params)).values
    np.testing.assert_allclose(r.values[rows > tol], exact[rows > tol], atol=1e-12)
    assert np.all(np.abs(r.values - exact).max(axis=1) <= np.where(rows > tol, 1e-12, rows + 1e-12))
