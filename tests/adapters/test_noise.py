import numpy as np
import pytest
from scipy import stats

from qmu_hw import Circuit, EstimateRequest, Gate, get_backend
from qmu_hw.circuits import hqml

pytestmark = pytest.mark.aer
LADDER = ("0.001", "0.005", "0.01", "0.02", "0.05")


def _mixed_circuit():
    gates = (
        Gate("H", (0,)), Gate("RY", (1,), param=0), Gate("CNOT", (0, 1)), Gate("RX", (2,), param=1),
        Gate("CZ", (1, 2)), Gate("S", (2,)), Gate("RZ", (0,), param=0, coeff=-0.5),
        Gate("CNOT", (2, 0)), Gate("RY", (2,), param=2),
    )
    return Circuit(3, gates, n_params=3)


@pytest.mark.parametrize("p", LADDER)
@pytest.mark.parametrize("make", [lambda: (hqml(4, 2), None), lambda: (hqml(3, 2, "all"), None),
                                  lambda: (_mixed_circuit(), ["XYZ", "ZZI", "IYX"])])
def test_dm_engine_matches_aer_exactly(p, make):
    c, obs = make()
    params = np.random.default_rng(9).uniform(-3, 3, (5, c.n_params))
    dm = get_backend(f"dm-depol-{p}").estimate(EstimateRequest(c, params, obs)).values
    aer = get_backend(f"aer-depol-{p}").estimate(EstimateRequest(c, params, obs)).values
    np.testing.assert_allclose(dm, aer, atol=1e-6)


def test_dm_sampled_counts_match_aer_distribution():
    c = hqml(3, 1)
    params = np.random.default_rng(3).uniform(-3, 3, (3, c.n_params))
    dm = get_backend("dm-depol-0.02")
    aer = get_backend("aer-depol-0.02")
    probs = dm.probabilities(c, params)
    counts = aer.counts(c, params, shots=20000, seed=11)
    for row in range(3):
        expected = probs[row] * counts[row].sum()
        chi2 = stats.chisquare(counts[row], expected)
        assert chi2.pvalue > 1e-3, (row, chi2)
    # And the other way round: the DM engine's own sampler against the same probabilities.
    from qmu_hw.adapters.sampling import sample_counts

    own = sample_counts(probs, 20000, np.random.default_rng(5))
    for row in range(3):
        assert stats.chisquare(own[row], probs[row] * 20000).pvalue > 1e-3


@pytest.mark.parametrize("engine", ["aer-depol", "dm-depol"])
def test_depolarizing_shrinks_expectations_monotonically(engine):
    c = hqml(4, 2)
    params = np.random.default_rng(0).uniform(-3, 3, (16, c.n_params))
    ideal = np.abs(get_backend("exact").estimate(EstimateRequest(c, params)).values).mean()
    sizes = [ideal] + [
        np.abs(get_backend(f"{engine}-{p}").estimate(EstimateRequest(c, params)).values).mean()
        for p in LADDER
    ]
    assert all(a > b for a, b in zip(sizes, sizes[1:], strict=False)), sizes


def test_fake_brisbane_simulates_only_active_qubits():
    b = get_backend("aer-fake-brisbane")
    c = hqml(3, 1, "linear")
    params = np.random.default_rng(1).uniform(-3, 3, (2, c.n_params))
    r = b.estimate(EstimateRequest(c, params, shots=4096, seed=1))
    assert r.values.shape == (2, 3)
    # The values, not only the shape: the calibrated noise (restricted to the 3 active qubits)
    # visibly changes the ideal values but stays in the ballpark, and the sampled estimates
    # agree with the exact noisy ones within their standard errors.
    ideal = get_backend("exact").estimate(EstimateRequest(c, params)).values
    noisy = b.estimate(EstimateRequest(c, params)).values
    assert 0.005 < np.abs(noisy - ideal).max() < 0.25, (noisy, ideal)
    assert np.abs(noisy).sum() < np.abs(ideal).sum()  # noise contracts towards 0
    assert np.all(np.abs(r.values - noisy) < 5 * r.stderr + 1e-9), (r.values, noisy, r.stderr)
    # Transpiled once, then cached: a second request transpiles nothing.
    b.estimate(EstimateRequest(c, params, shots=256, seed=2))
    assert b.n_transpilations == 1


def test_fake_device_layout_is_a_chain():
    from qmu_hw.adapters.aer import chain_layout

    path = chain_layout([(0, 1), (1, 2), (1, 3), (3, 4)], 4)
    assert len(path) == 4 and len(set(path)) == 4
    edges = {(0, 1), (1, 2), (1, 3), (3, 4)}
    assert all((a, b) in edges or (b, a) in edges for a, b in zip(path, path[1:], strict=False))


def test_thermal_relaxation_profile(tmp_path):
    prof = tmp_path / "t1.toml"
    prof.write_text(
        'schema_version = 1\nname = "t1"\nadapter = "aer"\n[noise]\nkind = "depolarizing"\n'
        "p1 = 0.001\np2 = 0.01\nt1_us = 50.0\nt2_us = 40.0\ngate_time_ns = 100.0\n"
    )
    c = hqml(2, 1)
    params = np.random.default_rng(2).uniform(-3, 3, (2, c.n_params))
    with_t1 = get_backend(str(prof)).estimate(EstimateRequest(c, params)).values
    prof2 = tmp_path / "no_t1.toml"
    prof2.write_text(prof.read_text().replace("t1_us = 50.0\nt2_us = 40.0\n", ""))
    without = get_backend(str(prof2)).estimate(EstimateRequest(c, params)).values
    assert not np.allclose(with_t1, without, atol=1e-4)
    dm = tmp_path / "dm.toml"
    dm.write_text(prof.read_text().replace('adapter = "aer"', 'adapter = "density-matrix"'))
    # The PTM engine represents thermal relaxation exactly (non-unital transfer matrix).
    np.testing.assert_allclose(get_backend(str(dm)).estimate(EstimateRequest(c, params)).values, with_t1, atol=1e-8)


@pytest.mark.pennylane
def test_pennylane_mixed_matches_dm_engine():
    c = hqml(3, 2)
    params = np.random.default_rng(4).uniform(-3, 3, (5, c.n_params))
    obs = ["ZII", "IZZ", "ZIZ"]
    pl = get_backend("pennylane-mixed-depol-0.01").estimate(EstimateRequest(c, params, obs)).values
    dm = get_backend("dm-depol-0.01").estimate(EstimateRequest(c, params, obs)).values
    np.testing.assert_allclose(pl, dm, atol=1e-6)
