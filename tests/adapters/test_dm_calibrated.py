"""Calibrated device noise (thermal relaxation, per-qubit/edge errors, readout) in the PTM
engine, validated against Aer on the same model and against NoiseModel.from_backend."""

import numpy as np
import pytest

from qmu_hw import EstimateRequest, get_backend
from qmu_hw.adapters import dm_engine as dm
from qmu_hw.adapters.ptm_noise import PTMNoise
from qmu_hw.circuits import hqml
from qmu_hw.core.observables import as_observables, measurement_groups, z_signs
from qmu_hw.testing import BackendConformance

pytestmark = pytest.mark.aer


def _aer_expectations(circuit, params, labels, noise):
    """Aer density matrix of the untranspiled circuit with ``aer_noise_model(noise)``, readout
    confusion applied to the outcome probabilities."""
    from qiskit_aer import AerSimulator

    from qmu_hw.adapters.device_calibration import aer_noise_model
    from qmu_hw.adapters.qiskit_convert import to_qiskit
    from qmu_hw.adapters.sampling import apply_readout

    n, B = circuit.n_qubits, len(params)
    sim = AerSimulator(method="density_matrix", noise_model=aer_noise_model(noise, n))
    terms = as_observables(labels, n)
    out = np.zeros((B, len(terms)))
    for basis, members in measurement_groups(terms):
        qc, pv = to_qiskit(circuit, basis, measure=False)
        qc.save_probabilities()
        res = sim.run([qc.assign_parameters(dict(zip(pv, p, strict=True))) for p in params]).result()
        probs = np.array([res.data(i)["probabilities"] for i in range(B)])
        # Aer's index has qubit 0 least significant; ours most significant.
        probs = probs.reshape((B,) + (2,) * n).transpose((0,) + tuple(range(n, 0, -1))).reshape(B, -1)
        probs = apply_readout(probs, n, noise.confusions(n))
        out[:, members] = probs @ z_signs([terms[i].label for i in members], n)
    return out * np.array([t.coeff for t in terms])


@pytest.mark.parametrize("profile", ["dm-cal-fake-manila", "dm-cal-fake-brisbane"])
@pytest.mark.parametrize("entangler", ["linear", "ring"])
def test_calibrated_engine_matches_aer_on_the_same_model(profile, entangler):
    b = get_backend(profile)
    c = hqml(5, 2, entangler)
    labels = ["ZIIII", "IIZII", "XYIIZ", "IZZXI", "YIIIY"]
    params = np.random.default_rng(3).uniform(-3, 3, (3, c.n_params))
    ours = b.estimate(EstimateRequest(c, params, labels)).values
    np.testing.assert_allclose(ours, _aer_expectations(c, params, labels, b.noise_for(5)), atol=1e-6)


def test_thermal_and_asymmetric_readout_match_aer_at_six_qubits():
    """Non-unital noise on a register past the dense-fusion limit (gate-by-gate path)."""
    n = 6
    noise = PTMNoise(
        p1=tuple(0.002 * (q + 1) for q in range(n)), p2=(((0, 1), 0.02), ((2, 3), 0.05)), p2_default=0.03,
        t1=tuple(20_000.0 + 3_000 * q for q in range(n)), t2=tuple(15_000.0 + 2_000 * q for q in range(n)),
        time_1q=(60.0,), time_2q=(((0, 1), 400.0),), time_2q_default=600.0,
        readout=tuple((0.01 * (q + 1), 0.03) for q in range(n)), virtual_z=True,
    )
    c = hqml(n, 2, "all")
    labels = ["Z" + "I" * 5, "IIXIIY", "ZZIIII", "IIIIIZ"]
    params = np.random.default_rng(8).uniform(-3, 3, (2, c.n_params))
    import torch

    ours = dm.noisy_expectations(c, torch.as_tensor(c.angles(params)), as_observables(labels, n), noise).numpy()
    np.testing.assert_allclose(ours, _aer_expectations(c, params, labels, noise), atol=1e-6)


@pytest.mark.parametrize("device", ["manila", "brisbane"])
def test_calibrated_engine_tracks_aer_from_backend_on_a_chain(device):
    """Aer transpiles to the device's gates (U = 2 sx per qubit layer, CZ via CX/ECR) with
    NoiseModel.from_backend; the PTM model charges one sx per RX/RY and one native 2-qubit
    gate per CZ. Measured residual: max 0.006 (manila) / 0.014 (brisbane) on 5-qubit chains."""
    c = hqml(5, 2, "linear")
    params = np.random.default_rng(3).uniform(-3, 3, (4, c.n_params))
    ours = get_backend(f"dm-cal-fake-{device}").estimate(EstimateRequest(c, params)).values
    aer = get_backend(f"aer-fake-{device}").estimate(EstimateRequest(c, params)).values
    ideal = get_backend("exact").estimate(EstimateRequest(c, params)).values
    assert np.abs(ours - aer).max() < 0.03
    assert np.abs(ours - aer).mean() < 0.25 * np.abs(ideal - aer).mean()


def test_calibrated_runs_at_ten_qubits_where_aer_cannot():
    b = get_backend("dm-cal-fake-brisbane")
    c = hqml(10, 2)
    params = np.random.default_rng(1).uniform(-3, 3, (2, c.n_params))
    vals = b.estimate(EstimateRequest(c, params)).values
    probs = b.probabilities(c, params)  # the full 10-qubit register, another path
    labels = ["I" * q + "Z" + "I" * (9 - q) for q in range(10)]
    np.testing.assert_allclose(vals, probs @ z_signs(labels, 10), atol=1e-10)
    assert len(b.layouts[10]) == 10 and b.capabilities.backprop


@pytest.fixture(params=["dm-cal-fake-manila", "dm-cal-fake-brisbane"])
def cal_profile(request):
    return request.param


class TestCalibratedConformance(BackendConformance):
    calibration_seeds = 20

    @pytest.fixture
    def make_backend(self, cal_profile):
        return lambda **kw: get_backend(cal_profile, **kw)
