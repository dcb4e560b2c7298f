"""A profile names an adapter; it never names a module. Adapters from other packages come
in through the ``qmu_hw.adapters`` entry-point group."""

import subprocess
import sys

import numpy as np
import pytest

from qmu_hw import EstimateRequest, get_backend
from qmu_hw.circuits import hqml
from qmu_hw.core.exceptions import InvalidRequestError, ProfileError


def install_entry_points(root, **points):
    """A distribution on ``root`` declaring ``points`` in the qmu_hw.adapters group, as
    ``pip install`` of a package with ``[project.entry-points."qmu_hw.adapters"]`` leaves it."""
    dist = root / "qmu_hw_test_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: qmu-hw-test-plugin\nVersion: 0.1\n")
    lines = "".join(f"{k.replace('_', '-')} = {v}\n" for k, v in points.items())
    (dist / "entry_points.txt").write_text(f"[qmu_hw.adapters]\n{lines}")
    return root


def test_a_module_path_in_a_profile_imports_nothing(tmp_path):
    """`adapter = "this:x"` used to print the Zen of Python before being refused."""
    prof = tmp_path / "evil.toml"
    prof.write_text('schema_version = 1\nname = "evil"\nadapter = "this:x"\n')
    code = ("import sys\nfrom qmu_hw import get_backend\n"
            "try:\n    get_backend(sys.argv[1])\nexcept Exception as e:\n    print('REFUSED', e)\n"
            "print('IMPORTED' if 'this' in sys.modules else 'CLEAN')\n")
    res = subprocess.run([sys.executable, "-c", code, str(prof)], capture_output=True, text=True, timeout=120)
    assert "Beautiful is better than ugly" not in res.stdout
    assert res.stdout.strip().endswith("CLEAN"), res.stdout
    assert f"REFUSED backend profile {prof}: key 'adapter': 'this:x' is not an adapter name" in res.stdout


def test_adapter_class_refuses_a_module_path_without_importing():
    from qmu_hw.core.backend import adapter_class

    sys.modules.pop("antigravity", None)
    with pytest.raises(InvalidRequestError, match="never a module path"):
        adapter_class("antigravity:x")
    assert "antigravity" not in sys.modules


def test_an_adapter_registered_by_entry_point_runs(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(install_entry_points(tmp_path / "site", toy_ep="tests.security.ep_adapter:EntryPointToy")))
    prof = tmp_path / "toy.toml"
    prof.write_text('schema_version = 1\nname = "toy"\nadapter = "toy-ep"\n[options]\nmax_qubits = 5\n')
    be = get_backend(prof)
    assert type(be).__name__ == "EntryPointToy"
    c = hqml(3, 1)
    p = np.random.default_rng(0).uniform(-2, 2, (4, c.n_params))
    np.testing.assert_allclose(be.estimate(EstimateRequest(c, p)).values,
                               get_backend("exact").estimate(EstimateRequest(c, p)).values, atol=1e-12)


def test_an_unknown_name_is_one_line_naming_the_group(tmp_path):
    prof = tmp_path / "x.toml"
    prof.write_text('schema_version = 1\nname = "x"\nadapter = "warp-drive"\n')
    with pytest.raises(InvalidRequestError, match="'qmu_hw.adapters' entry-point group") as err:
        get_backend(prof)
    assert "\n" not in str(err.value)
    prof.write_text('schema_version = 1\nname = "x"\nadapter = "../x"\n')
    with pytest.raises(ProfileError, match="key 'adapter'"):
        get_backend(prof)
