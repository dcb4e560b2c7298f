"""Shipped profiles are found through importlib.resources in every install layout: a wheel's
site-packages (qmu_hw._profiles is a namespace package there, so files() is a MultiplexedPath),
a zip on sys.path, and a checkout run through PYTHONPATH (backends/)."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "from qmu_hw.core.profiles import builtin_profile_dir, builtin_profiles, resolve_profile\n"
    "import qmu_hw\n"
    "print(qmu_hw.__file__)\n"
    "print(type(builtin_profile_dir()).__name__)\n"
    "print(len(builtin_profiles()))\n"
    "p = resolve_profile('exact'); print(p.name, p.adapter, len(p.sha256))\n"
)


def _probe(path_entry: Path, cwd: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(path_entry)}
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.splitlines()


def _package_files():
    for p in (ROOT / "qmu_hw").rglob("*"):
        if p.is_file() and "__pycache__" not in p.parts:
            yield p, Path("qmu_hw") / p.relative_to(ROOT / "qmu_hw")
    for p in sorted((ROOT / "backends").glob("*.toml")):
        yield p, Path("qmu_hw/_profiles") / p.name


N_PROFILES = len(list((ROOT / "backends").glob("*.toml")))


def test_site_packages_layout_namespace_profiles(tmp_path):
    # The wheel's layout: qmu_hw/_profiles/*.toml with no __init__.py, no backends/ beside it.
    site = tmp_path / "site"
    for src, rel in _package_files():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, site / rel)
    where, kind, n, line = _probe(site, tmp_path)
    assert where.startswith(str(site))
    assert kind in ("PosixPath", "MultiplexedPath")  # a Traversable, never a str
    assert int(n) == N_PROFILES
    assert line == "exact statevector 64"


def test_zip_layout(tmp_path):
    z = tmp_path / "qmu_hw.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for src, rel in _package_files():
            zf.write(src, rel.as_posix())
    where, kind, n, line = _probe(z, tmp_path)
    assert where.startswith(str(z)) and kind == "Path"  # zipfile.Path: no real folder exists
    assert int(n) == N_PROFILES
    assert line == "exact statevector 64"


def test_checkout_layout_uses_backends_folder(tmp_path):
    _, kind, n, line = _probe(ROOT, tmp_path)
    assert int(n) == N_PROFILES and line == "exact statevector 64"


@pytest.mark.slow
def test_wheel_in_fresh_venv_runs_a_study(tmp_path):
    """Build wheel + sdist, install the wheel with no extras into a fresh venv, run
    `qmu-hw backends` and a 2-cell study on exact there (scripts/check_wheel.py, as in CI)."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_wheel.py"), "--skip-aer",
                           "--workdir", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "a 2-cell study on exact ran in the wheel install" in proc.stdout
