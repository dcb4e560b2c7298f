"""Native device objects through get_backend: the matching adapter, the same numbers as the
equivalent profile, and a fingerprint that is stable for the same device and changes with
its calibration / noise model."""

from __future__ import annotations

import numpy as np
import pytest

from qmu_hw import EstimateRequest, InvalidRequestError, get_backend
from qmu_hw.circuits import hqml

C = hqml(3, 1)
P = np.random.default_rng(0).uniform(-1, 1, (3, C.n_params))


def values(backend, circuit=C, params=P):
    return backend.estimate(EstimateRequest(circuit, params)).values


@pytest.mark.aer
def test_fake_backend_equals_its_profile_and_has_a_calibration_fingerprint():
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    dev = FakeManilaV2()
    b = get_backend(dev)
    assert type(b).__name__ == "AerBackend" and b.device is dev
    assert b.profile.name == "aer:fake_manila" and b.profile.noise_kind == "fake-device"
    np.testing.assert_allclose(values(b), values(get_backend("aer-fake-manila")), atol=1e-12)
    assert get_backend(FakeManilaV2()).profile.sha256 == b.profile.sha256  # stable
    from qiskit_ibm_runtime.fake_provider import FakeLimaV2

    assert get_backend(FakeLimaV2()).profile.sha256 != b.profile.sha256


@pytest.mark.aer
def test_aer_simulator_with_noise_model_equals_the_same_noise_profile():
    from qiskit_aer import AerSimulator

    from qmu_hw.adapters.aer import parametric_noise_model
    from qmu_hw.core.profiles import resolve_profile

    noise = resolve_profile("dm-depol-0.01").noise
    b = get_backend(AerSimulator(noise_model=parametric_noise_model(noise)))
    np.testing.assert_allclose(values(b), values(get_backend("dm-depol-0.01")), atol=1e-10)
    # Equal models hash alike (Aer gives every error a random id); other models differ.
    assert get_backend(AerSimulator(noise_model=parametric_noise_model(noise))).profile.sha256 == b.profile.sha256
    other = get_backend(AerSimulator(noise_model=parametric_noise_model({**noise, "p2": 0.2})))
    assert other.profile.sha256 != b.profile.sha256
    ideal = get_backend(AerSimulator())
    assert ideal.profile.noise_kind == "none"
    np.testing.assert_allclose(values(ideal), values(get_backend("exact")), atol=1e-10)


@pytest.mark.aer
def test_noise_model_on_other_gates_is_applied_by_transpiling_to_its_basis():
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    nm = NoiseModel(basis_gates=["sx", "rz", "cx"])
    nm.add_all_qubit_quantum_error(depolarizing_error(0.05, 1), ["sx"])
    noisy = values(get_backend(AerSimulator(noise_model=nm)))
    exact = values(get_backend("exact"))
    assert np.all(np.abs(noisy) < np.abs(exact) + 1e-12) and np.abs(noisy - exact).max() > 0.05


@pytest.mark.aer
def test_aer_simulator_from_backend_uses_its_target():
    from qiskit_aer import AerSimulator
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    b = get_backend(AerSimulator.from_backend(FakeManilaV2()))
    assert b.device is not None
    np.testing.assert_allclose(values(b), values(get_backend("aer-fake-manila")), atol=1e-12)


@pytest.mark.pennylane
def test_pennylane_device_object_runs_the_requests():
    qml = pytest.importorskip("pennylane")
    dev = qml.device("default.qubit", wires=3)
    b = get_backend(dev)
    assert b.native is dev and b.profile.name == "pennylane:default.qubit"
    np.testing.assert_allclose(values(b), values(get_backend("exact")), atol=1e-12)
    with pytest.raises(InvalidRequestError, match="do not include the circuit's qubits"):
        values(get_backend(qml.device("default.qubit", wires=2)))


@pytest.mark.braket
def test_braket_local_simulator():
    from braket.devices import LocalSimulator

    b = get_backend(LocalSimulator(), shots=None)
    assert b.profile.options["device"] == "braket_sv"
    np.testing.assert_allclose(values(b), values(get_backend("exact")), atol=1e-12)
    assert get_backend(LocalSimulator("braket_dm")).profile.options["device"] == "braket_dm"


@pytest.mark.braket
def test_aws_device_inherits_the_shipped_profile_cost(tmp_path):
    from braket.aws import AwsDevice

    from qmu_hw.adapters import braket_aws
    from qmu_hw.core.profiles import resolve_profile
    from tests.braket_service import SV1, FakeBraketService

    svc = FakeBraketService(tmp_path / "aws.json")
    braket_aws.set_client_factory(svc.client)
    try:
        session = braket_aws.make_session(resolve_profile("braket-sv1"), None, "us-east-1", "bucket")
        dev = AwsDevice(SV1, aws_session=session)
        b = get_backend(dev, s3_bucket="amzn-braket-test")
        assert b.profile.options["device"] == SV1 and b.profile.requires_confirmation
        assert b.profile.cost == resolve_profile("braket-sv1").cost
        got = b.estimate(EstimateRequest(C, P, shots=None)).values
        np.testing.assert_allclose(got, values(get_backend("exact")), atol=1e-10)
    finally:
        braket_aws.set_client_factory(None)


def test_unknown_objects_are_refused_by_name():
    with pytest.raises(InvalidRequestError, match="cannot use a builtins.object; expected a profile name"):
        get_backend(object())
