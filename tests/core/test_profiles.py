import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from qmu_hw import ProfileError, get_backend
from qmu_hw.core.profiles import builtin_profiles, load_profile_file

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"exact", "exact-shots", "aer-ideal", "aer-fake-manila", "aer-fake-brisbane"} | {
    f"{e}-depol-{p}" for e in ("aer", "dm") for p in ("0.001", "0.005", "0.01", "0.02", "0.05")
}


def test_required_profiles_ship_and_validate():
    found = builtin_profiles()
    assert REQUIRED <= set(found)
    for name, path in found.items():
        prof = load_profile_file(path)
        assert prof.name == name and len(prof.sha256) == 64


def test_get_backend_overrides():
    b = get_backend("aer-depol-0.01", shots=2048, seed=3)
    assert b.shots == 2048 and b.seed == 3 and "p1=0.01" in b.capabilities.noise
    assert get_backend("exact-shots", shots="exact").shots is None
    with pytest.raises(ValueError, match="shots must be a positive integer"):
        get_backend("exact-shots", shots=-1)


@pytest.mark.parametrize(
    "text, match",
    [
        ("schema_version = 2\nname='x'\nadapter='statevector'\n", r"'schema_version': expected 1"),
        ("schema_version = 1\nadapter='statevector'\n", r"key 'name'"),
        ("schema_version = 1\nname='x'\nadapter='statevector'\ncolour='red'\n", r"key 'colour': unknown"),
        ("schema_version = 1\nname='x'\nadapter='aer'\n[noise]\nkind='depolarizing'\np1=1.5\n", r"'noise.p1'"),
        ("schema_version = 1\nname='x'\nadapter='aer'\n[noise]\nkind='weird'\n", r"'noise.kind'"),
        ("schema_version = 1\nname='x'\nadapter='aer'\n[defaults]\nshots=0\n", r"'defaults.shots'"),
        ("schema_version = 1\nname='x'\nadapter='aer'\n[limits]\nmax_qubits=-3\n", r"'limits.max_qubits'"),
        ("schema_version = 1\nname='x'\nadapter='aer'\n[credentials]\nenv='TOKEN'\n", r"'credentials.env'"),
        ("schema_version = = 1\n", "not valid TOML"),
    ],
)
def test_bad_profiles_name_file_and_key(tmp_path, text, match):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ProfileError, match=match) as err:
        get_backend(str(p))
    assert str(p) in str(err.value)


def test_unknown_adapter(tmp_path):
    p = tmp_path / "a.toml"
    p.write_text("schema_version = 1\nname='x'\nadapter='quantum-toaster'\n")
    with pytest.raises(ValueError, match="unknown adapter 'quantum-toaster'"):
        get_backend(str(p))


@pytest.mark.slow
def test_wheel_ships_profiles(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), "."],
        check=True, capture_output=True, cwd=ROOT,
    )
    (wheel,) = tmp_path.glob("qmu_hw-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.split("/")[-1][:-5] for n in names if n.startswith("qmu_hw/_profiles/") and n.endswith(".toml")}
    assert REQUIRED <= shipped


def test_every_subpackage_is_packaged():
    # The same fallback as qmu_hw (requires-python >= 3.10; tomllib is 3.11+, tomli before).
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "qmu_hw").rglob("__init__.py")
    }
    assert on_disk <= listed
