import numpy as np
import pytest

from qmu_hw import Circuit, EstimateRequest, Gate, get_backend
from qmu_hw.circuits import ENTANGLERS, hqml
from tests.reference import pennylane_values_and_jacobian

pytestmark = pytest.mark.pennylane

CASES = [(n, L, e) for n, L in [(2, 1), (3, 2), (4, 3), (5, 2), (6, 4)] for e in ENTANGLERS]


@pytest.mark.parametrize("n, layers, ent", CASES)
def test_exact_values_match_pennylane(n, layers, ent):
    c = hqml(n, layers, ent)
    rng = np.random.default_rng(n * 100 + layers)
    p = rng.uniform(-np.pi, np.pi, (3, c.n_params))
    ours = get_backend("exact").estimate(EstimateRequest(c, p)).values
    ref, _ = pennylane_values_and_jacobian(c, p)
    np.testing.assert_allclose(ours, ref, atol=1e-10)


def test_general_paulis_and_fixed_gates_match_pennylane():
    gates = (
        Gate("H", (0,)), Gate("RY", (1,), param=0, coeff=2.0), Gate("CNOT", (0, 2)),
        Gate("S", (2,)), Gate("RX", (2,), param=1), Gate("CZ", (1, 2)), Gate("SDG", (1,)),
        Gate("RZ", (0,), param=0), Gate("Y", (1,)), Gate("CNOT", (2, 1)), Gate("X", (0,)),
    )
    c = Circuit(3, gates, n_params=2)
    labels = ["XYZ", "ZZI", "IYX", "YII", "XIX"]
    p = np.random.default_rng(7).uniform(-3, 3, (4, 2))
    ours = get_backend("exact").estimate(EstimateRequest(c, p, observables=labels)).values
    ref, _ = pennylane_values_and_jacobian(c, p, labels)
    np.testing.assert_allclose(ours, ref, atol=1e-10)


def _sampled(c, p, shots, seed, labels=None):
    return get_backend("exact-shots").estimate(
        EstimateRequest(c, p, observables=labels, shots=shots, seed=seed)
    )


def test_sampling_is_unbiased_and_stderr_calibrated():
    c = hqml(3, 2)
    p = np.random.default_rng(3).uniform(-3, 3, (4, c.n_params))
    labels = ["ZII", "IZZ", "XIY"]
    exact = get_backend("exact").estimate(EstimateRequest(c, p, observables=labels)).values
    zs, errs = [], []
    for seed in range(200):
        r = _sampled(c, p, 400, seed, labels)
        zs.append((r.values - exact) / r.stderr)
        errs.append(r.stderr)
        assert r.metadata["stderr_method"] == "sampled"
    z = np.array(zs)  # (seeds, B, O), each ~ N(0, 1) if unbiased and calibrated
    # Unbiased: the mean over 200 seeds is within 4 standard errors of the mean (1/sqrt(200)).
    assert np.all(np.abs(z.mean(axis=0)) < 4 / np.sqrt(200))
    # Calibrated: the spread of z is 1 within sampling error of a std over 200 draws.
    assert np.all(np.abs(z.std(axis=0) - 1) < 0.25)
    # Pooled check is much tighter.
    assert abs(z.std() - 1) < 0.05


def test_same_seed_same_numbers_different_seed_different():
    c = hqml(3, 1)
    p = np.random.default_rng(0).uniform(-3, 3, (5, c.n_params))
    a, b, d = _sampled(c, p, 100, 11), _sampled(c, p, 100, 11), _sampled(c, p, 100, 12)
    assert np.array_equal(a.values, b.values) and np.array_equal(a.stderr, b.stderr)
    assert not np.array_equal(a.values, d.values)


def test_sampled_values_are_shot_fractions():
    c = hqml(2, 1)
    p = np.random.default_rng(1).uniform(-3, 3, (3, c.n_params))
    r = _sampled(c, p, 64, 5)
    assert np.allclose(r.values * 64, np.round(r.values * 64))
    assert r.shots == 64


def test_ledger_counts_groups_and_rows():
    c = hqml(3, 1)
    b = get_backend("exact-shots")
    p = np.zeros((4, c.n_params))
    b.estimate(EstimateRequest(c, p, observables=["ZII", "XII", "IIZ"], shots=100, phase="eval"))
    s = b.ledger.summary()
    # Two measurement settings (Z-basis group, X-basis group) × 4 rows × 100 shots.
    assert s["shots"] == 800 and s["submissions"] == 1 and s["circuits"] == 8


def test_float32_option_close_to_float64():
    c = hqml(4, 2)
    p = np.random.default_rng(2).uniform(-3, 3, (6, c.n_params))
    v64 = get_backend("exact").estimate(EstimateRequest(c, p)).values
    v32 = get_backend("exact", dtype="float32").estimate(EstimateRequest(c, p)).values
    np.testing.assert_allclose(v32, v64, atol=1e-5)
