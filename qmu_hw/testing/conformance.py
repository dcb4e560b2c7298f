"""The conformance suite every backend adapter passes.

Use it from pytest by subclassing and providing a ``make_backend`` fixture that returns a
callable ``(**overrides) -> backend``::

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def make_backend(self):
            return lambda **kw: qmu_hw.get_backend("my-profile", **kw)

Checks: shapes and metadata keys; noiseless exact backends agree with the torch engine to
1e-8; sampled estimates agree with the backend's own exact values within k·stderr and the
stderr is calibrated; readout error is applied; seeds reproduce; bad requests are refused
before anything is submitted or charged.
"""

from __future__ import annotations

import numpy as np
import pytest

from ..core.ansatz import hqml
from ..core.circuit import Circuit, Gate
from ..core.contract import METADATA_KEYS, EstimateRequest
from ..core.exceptions import BudgetExceededError, InvalidRequestError
from ..core.ledger import ShotBudget


def _reference(circuit, params, observables=None):
    from ..adapters.registry import get_backend

    return get_backend("exact").estimate(EstimateRequest(circuit, params, observables)).values


class BackendConformance:
    """Subclass with a ``make_backend`` fixture; every method is a test."""

    n_qubits = 3
    observables = ("ZII", "IZZ", "XIY")
    calibration_seeds = 40

    @pytest.fixture
    def circuit(self):
        return hqml(self.n_qubits, 1)

    @pytest.fixture
    def params(self, circuit):
        return np.random.default_rng(2024).uniform(-np.pi, np.pi, (4, circuit.n_params))

    def test_shapes_and_metadata(self, make_backend, circuit, params):
        b = make_backend()
        modes = [None] if not b.capabilities.sampling else [None, 256]
        for shots in modes if b.capabilities.exact else [256]:
            res = b.estimate(EstimateRequest(circuit, params, self.observables, shots=shots, seed=1))
            assert res.values.shape == (4, 3) and res.stderr.shape == (4, 3)
            assert set(METADATA_KEYS) <= set(res.metadata)
            assert res.metadata["backend"] == b.name
            assert len(res.metadata["profile_sha256"]) == 64
            assert np.all(np.isfinite(res.values)) and np.all(np.abs(res.values) <= 1 + 1e-9)
            if shots is None:
                assert res.metadata["stderr_method"] == "exact" and np.all(res.stderr == 0)
            else:
                assert res.metadata["stderr_method"] in ("sampled", "provider")
                assert np.all(res.stderr > 0)

    def test_noiseless_exact_matches_torch_engine(self, make_backend, circuit, params):
        b = make_backend()
        if not b.capabilities.exact or b.profile.noise_kind != "none":
            pytest.skip("only noiseless exact backends are compared with the torch engine")
        got = b.estimate(EstimateRequest(circuit, params, self.observables)).values
        np.testing.assert_allclose(got, _reference(circuit, params, self.observables), atol=1e-8)

    def test_sampled_unbiased_and_calibrated(self, make_backend, circuit, params):
        b = make_backend()
        if not (b.capabilities.sampling and b.capabilities.exact):
            pytest.skip("needs both exact and sampled modes")
        exact = b.estimate(EstimateRequest(circuit, params, self.observables)).values
        z = []
        for seed in range(self.calibration_seeds):
            r = b.estimate(EstimateRequest(circuit, params, self.observables, shots=500, seed=seed))
            z.append((r.values - exact) / r.stderr)
        z = np.array(z)
        n = z.size
        # Pooled z-scores are ~N(0, 1): mean within 4/sqrt(n), std within a generous band.
        assert abs(z.mean()) < 4 / np.sqrt(n)
        assert abs(z.std() - 1) < 4 * np.sqrt(1 / (2 * n)) + 0.05
        assert np.all(np.abs(z.mean(axis=0)) < 4.5 / np.sqrt(self.calibration_seeds))

    def test_readout_error_is_applied(self, make_backend):
        b = make_backend()
        noise = b.profile.noise
        if not b.capabilities.exact or (noise.get("kind") != "fake-device" and not noise.get("readout")):
            pytest.skip("profile has no readout error")
        n = self.n_qubits
        # RZ on qubit 0 leaves |0…0⟩'s populations alone: qubits 1.. read ⟨Z⟩ = 1 − 2r.
        c = Circuit(n, (Gate("RZ", (0,), param=0),), n_params=1)
        vals = b.estimate(EstimateRequest(c, np.array([[0.3]]))).values[0]
        if noise.get("kind") == "depolarizing":
            np.testing.assert_allclose(vals[1:], 1 - 2 * noise["readout"], atol=1e-9)
        else:
            # Calibrated: an untouched qubit reads <Z> = 1 - 2 P(1|0) of the physical qubit it
            # was laid out on, so each value must be one of the device's own figures.
            from qiskit_aer.noise import NoiseModel

            from ..adapters.aer import fake_device, readout_confusions

            dev = fake_device(noise["device"])
            table = readout_confusions(NoiseModel.from_backend(dev), dev.num_qubits)
            expected = np.array([1 - 2 * m[1, 0] for m in table.values()])
            assert expected.max() < 1 - 1e-3, "the device has no readout error to check against"
            for v in vals[1:]:
                assert np.abs(expected - v).min() < 1e-6, (v, expected)

    def test_seeds_reproduce(self, make_backend, circuit, params):
        b = make_backend()
        if not b.capabilities.sampling or not b.capabilities.seedable:
            pytest.skip("exact-only backend, or its engine takes no sampling seed")
        r1 = b.estimate(EstimateRequest(circuit, params, shots=128, seed=5)).values
        r2 = make_backend().estimate(EstimateRequest(circuit, params, shots=128, seed=5)).values
        r3 = b.estimate(EstimateRequest(circuit, params, shots=128, seed=6)).values
        assert np.array_equal(r1, r2) and not np.array_equal(r1, r3)

    def test_bad_requests_refused_before_submission(self, make_backend, params, circuit):
        b = make_backend(budget=ShotBudget(total_shots=100))
        big = hqml(b.capabilities.max_qubits + 1, 0)
        with pytest.raises(InvalidRequestError, match="at most"):
            b.estimate(EstimateRequest(big, np.zeros((1, big.n_params))))
        if b.capabilities.sampling:
            with pytest.raises(BudgetExceededError, match="(?i)nothing was submitted"):
                b.estimate(EstimateRequest(circuit, params, shots=1000))
        assert len(b.ledger) == 0

    def test_ledger_records_one_submission(self, make_backend, circuit, params):
        b = make_backend()
        shots = 64 if b.capabilities.sampling else None
        b.estimate(EstimateRequest(circuit, params, shots=shots, phase="eval"))
        (entry,) = b.ledger.entries
        assert entry.phase == "eval" and entry.circuits == 4 and entry.submissions == 1
        assert entry.shots == (0 if shots is None else 4 * 64)
