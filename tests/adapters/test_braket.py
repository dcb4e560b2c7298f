import numpy as np
import pytest

from qmu_hw import EstimateRequest, InvalidRequestError, get_backend
from qmu_hw.circuits import hqml
from qmu_hw.testing import BackendConformance

pytestmark = pytest.mark.braket


class TestBraketLocalSV(BackendConformance):
    calibration_seeds = 8

    @pytest.fixture
    def make_backend(self):
        return lambda **kw: get_backend("braket-local-sv", **kw)


def test_braket_dm_matches_dm_engine_exactly():
    c = hqml(2, 1)
    p = np.random.default_rng(3).uniform(-3, 3, (3, c.n_params))
    obs = ["ZI", "IZ", "ZZ"]
    braket = get_backend("braket-local-dm-depol-0.01").estimate(EstimateRequest(c, p, obs)).values
    dm = get_backend("dm-depol-0.01").estimate(EstimateRequest(c, p, obs)).values
    np.testing.assert_allclose(braket, dm, atol=1e-6)


def test_rows_split_at_device_limit(tmp_path):
    prof = tmp_path / "limited.toml"
    prof.write_text('schema_version = 1\nname = "limited"\nadapter = "braket"\n[options]\ndevice = "braket_sv"\n'
                    "[limits]\nmax_circuits_per_job = 2\n")
    b = get_backend(str(prof))
    c = hqml(2, 1)
    p = np.random.default_rng(0).uniform(-3, 3, (5, c.n_params))
    r = b.estimate(EstimateRequest(c, p))
    assert b.ledger.entries[0].submissions == 3  # 2 + 2 + 1 rows, deterministic
    np.testing.assert_allclose(r.values, get_backend("exact").estimate(EstimateRequest(c, p)).values, atol=1e-10)


def test_noise_needs_density_matrix_device(tmp_path):
    prof = tmp_path / "bad.toml"
    prof.write_text('schema_version = 1\nname = "bad"\nadapter = "braket"\n[options]\ndevice = "braket_sv"\n'
                    '[noise]\nkind = "depolarizing"\np1 = 0.01\n')
    with pytest.raises(InvalidRequestError, match="braket_dm"):
        get_backend(str(prof))
