"""A run refused because another run holds the study folder writes nothing in it: the
folder's config.toml stays byte-identical (the API and the CLI alike)."""

import subprocess
import sys

import pytest

from qmu_hw.study import api
from qmu_hw.study.store import ResultsStore, StudyLockedError

DICT_B = {
    "study": {"name": "B", "seeds": [0]},
    "data": {"dataset": "iris", "per_class": 10},
    "training": {"epochs": 2, "patience": 2, "n_oracles": 2},
    "grid": {"scenarios": ["class:0"], "methods": ["identity"], "backends": ["exact"]},
}


@pytest.fixture
def held(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.toml").write_text('[study]\nname = "A"\n# study A, running\n')
    before = (out / "config.toml").read_bytes()
    with ResultsStore(out).lock():  # study A's run holds the folder
        yield out, before


def test_a_refused_api_run_leaves_config_toml_byte_identical(held):
    out, before = held
    with pytest.raises(StudyLockedError, match=f"another qmu-hw run is writing to {out}"):
        api.run(DICT_B, output=out, report=False)
    assert (out / "config.toml").read_bytes() == before
    assert not (out / "checkpoints").exists()


def test_a_refused_cli_run_leaves_config_toml_byte_identical(held, tmp_path):
    out, before = held
    cfg = tmp_path / "b.toml"
    cfg.write_text(api.config_to_toml(DICT_B))
    res = subprocess.run([sys.executable, "-m", "qmu_hw.cli", "run", str(cfg), "--output", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "another qmu-hw run is writing to" in res.stderr
    assert (out / "config.toml").read_bytes() == before
