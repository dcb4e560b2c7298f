import pytest

from qmu_hw import get_backend
from qmu_hw.testing import BackendConformance

LADDER = ("0.001", "0.005", "0.01", "0.02", "0.05")
PROFILES = (
    ["exact", "exact-shots", "aer-ideal"]
    + [f"aer-depol-{p}" for p in LADDER]
    + [f"dm-depol-{p}" for p in LADDER]
    + ["aer-fake-manila", "pennylane-default-qubit", "pennylane-mixed-depol-0.01"]
)


@pytest.fixture(params=PROFILES)
def profile_name(request):
    if request.param.startswith("aer"):
        request.applymarker(pytest.mark.aer)
    if request.param.startswith("pennylane"):
        request.applymarker(pytest.mark.pennylane)
    return request.param


class TestConformance(BackendConformance):
    @pytest.fixture
    def make_backend(self, profile_name):
        return lambda **kw: get_backend(profile_name, **kw)


@pytest.mark.pennylane
class TestPennyLaneLightning(BackendConformance):
    """Any PennyLane device by name: lightning.qubit through the same adapter."""

    calibration_seeds = 12

    @pytest.fixture
    def make_backend(self):
        return lambda **kw: get_backend("pennylane-default-qubit", device="lightning.qubit", **kw)
