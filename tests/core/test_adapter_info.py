"""Self-describing adapters: what each declares, and that core/study use the declarations."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from qmu_hw import EstimateRequest, InvalidRequestError, MissingDependencyError, get_backend
from qmu_hw.circuits import hqml
from qmu_hw.core.backend import Differentiable, adapter_info
from qmu_hw.core.profiles import resolve_profile

EXPECTED = {  # profile: (remote, billed, extra of the first requirement)
    "exact": (False, False, None),
    "dm-depol-0.01": (False, False, None),
    "aer-ideal": (False, False, "aer"),
    "aer-fake-manila": (False, False, "aer"),
    "ibm-local-fake-manila": (False, False, "ibm"),
    "ibm-brisbane": (True, True, "ibm"),
    "braket-local-sv": (False, False, "braket"),
    "braket-sv1": (True, True, "braket"),
    "pennylane-default-qubit": (False, False, "pennylane"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_declarations(name):
    info = adapter_info(resolve_profile(name))
    remote, billed, extra = EXPECTED[name]
    assert (info.remote, info.billed) == (remote, billed)
    assert (info.requirements[0][1] if info.requirements else None) == extra
    assert resolve_profile(name).is_cloud == remote


def test_fake_devices_also_need_the_ibm_extra():
    assert ("qiskit_ibm_runtime", "ibm") in adapter_info(resolve_profile("aer-fake-manila")).requirements
    assert ("qiskit_ibm_runtime", "ibm") not in adapter_info(resolve_profile("aer-ideal")).requirements


def test_option_schema_is_what_the_adapter_accepts():
    schema = adapter_info(resolve_profile("aer-ideal")).option_schema
    assert {"threads", "initial_layout"} <= set(schema)
    with pytest.raises(InvalidRequestError, match=r"unknown option\(s\) \['nope'\]"):
        get_backend("aer-ideal", nope=1)


def test_differentiable_protocol():
    assert isinstance(get_backend("exact"), Differentiable)
    assert adapter_info(resolve_profile("exact")).differentiable
    assert not adapter_info(resolve_profile("aer-ideal")).differentiable


def test_braket_tasks_per_circuit_for_exact_requests():
    sv1 = adapter_info(resolve_profile("braket-sv1"))
    assert sv1.tasks_for(100, 2, None) == 100  # exact: one task per circuit
    assert sv1.tasks_for(100, 2, 1000) == 100  # no program-set limit stated: one per circuit
    ibm = adapter_info(resolve_profile("ibm-brisbane"))
    assert ibm.tasks_for(100, 2, 1000) == 2  # one job per request


def test_missing_sdk_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "qiskit_aer", None)  # as if qiskit-aer were not installed
    with pytest.raises(MissingDependencyError, match=r"needs qiskit_aer.*pip install 'qmu-hw\[aer\]'"):
        get_backend("aer-ideal")


def test_base_hooks_are_no_ops():
    be = get_backend("exact")
    be.attach_journal(None)
    with be.execution_context() as ctx:
        assert ctx is be


def test_an_adapter_outside_qmu_hw_needs_only_its_module_and_a_profile(tmp_path, monkeypatch):
    from tests.security.test_adapter_entry_points import install_entry_points

    monkeypatch.syspath_prepend(str(install_entry_points(
        tmp_path / "site", toy="tests.core.toy_adapter:ToyBackend", toy_cloud="tests.core.toy_adapter:ToyCloud")))
    path = tmp_path / "toy.toml"
    path.write_text('schema_version = 1\nname = "toy"\nadapter = "toy"\n[options]\nmax_qubits = 5\n')
    be = get_backend(path)
    c = hqml(3, 1)
    p = np.random.default_rng(0).uniform(-2, 2, (4, c.n_params))
    np.testing.assert_allclose(be.estimate(EstimateRequest(c, p)).values,
                               get_backend("exact").estimate(EstimateRequest(c, p)).values, atol=1e-12)
    info = adapter_info(resolve_profile(path))
    assert not info.remote and info.option_schema == {"max_qubits": "largest circuit accepted"}
    cloud = tmp_path / "cloud.toml"
    cloud.write_text('schema_version = 1\nname = "tc"\nadapter = "toy-cloud"\n')
    assert resolve_profile(cloud).is_cloud and adapter_info(resolve_profile(cloud)).billed
    with pytest.raises(MissingDependencyError, match=r"pip install 'qmu-hw\[toy-cloud\]'"):
        get_backend(cloud)


def test_unknown_adapter_lists_the_shipped_ones(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('schema_version = 1\nname = "x"\nadapter = "warp-drive"\n')
    with pytest.raises(InvalidRequestError, match=r"unknown adapter 'warp-drive'; expected one of \['aer', 'braket'"):
        get_backend(path)


def test_a_missing_parent_package_is_missing_not_a_crash(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name, *a, **k):  # what find_spec does for "braket.aws" without braket installed
        if name.split(".")[0] == "braket":
            raise ModuleNotFoundError(f"No module named {name.split('.')[0]!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert adapter_info(resolve_profile("braket-sv1")).missing  # listed as missing, no exception


def test_calibrated_dm_profiles_need_the_ibm_extra_and_parametric_ones_do_not():
    assert ("qiskit_ibm_runtime", "ibm") in adapter_info(resolve_profile("dm-cal-fake-brisbane")).requirements
    assert not adapter_info(resolve_profile("dm-depol-0.01")).requirements
    assert adapter_info(resolve_profile("dm-depol-0.01")).differentiable
