"""scripts/check_floors.py: passes here, fails on a floor above what is installed or an API
that is not there, and writes the pins a floor-CI job installs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_floors.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_declared_floors_hold_in_this_environment(tmp_path):
    res = run("--constraints", tmp_path / "floors.txt")
    assert res.returncode == 0, res.stdout + res.stderr
    pins = (tmp_path / "floors.txt").read_text().split()
    assert "amazon-braket-sdk==1.100" in pins and "pennylane==0.40" in pins and "scipy==1.11" in pins


def test_a_floor_above_the_installed_version_fails(tmp_path):
    py = tmp_path / "pyproject.toml"
    py.write_text('[project]\nname = "x"\ndependencies = ["numpy>=99.0"]\n')
    res = run("--pyproject", py)
    assert res.returncode == 1
    assert "numpy" in res.stdout and "below the floor 99.0" in res.stdout


def test_core_has_no_sdk_and_no_scikit_learn():
    import tomllib

    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(">")[0].split(";")[0].strip() for d in core}
    assert names == {"numpy", "scipy", "torch", "tqdm", "matplotlib", "tomli"}
