"""[model] factory / circuit: a user's model runs as a study, checked when the config loads."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from qmu_hw.study.config import ConfigError, load_config
from tests.models.test_custom_models import QASM

ROOT = Path(__file__).resolve().parents[2]

STUDY = """
[study]
name = "user-model"
output = "{out}"
seeds = [0]

[data]
dataset = "iris"
per_class = 12

[model]
{model}

[training]
epochs = 3
patience = 2
n_oracles = 2

[grid]
scenarios = ["class:0"]
methods = ["identity", "ga"]
backends = ["exact"]

[methods.ga]
epochs = 1
"""

CIRCUIT = 'circuit = "circuits/ring.qasm"\ninputs = ["x0", "x1", "x2", "x3"]'


def write(tmp_path: Path, model: str) -> Path:
    (tmp_path / "circuits").mkdir(exist_ok=True)
    (tmp_path / "circuits" / "ring.qasm").write_text(QASM)
    path = tmp_path / "study.toml"
    path.write_text(STUDY.replace("{out}", str(tmp_path / "out")).replace("{model}", model))
    return path


def test_circuit_model_loads_relative_to_the_config_and_keys_cells_by_content(tmp_path):
    pytest.importorskip("qiskit_qasm3_import")
    cfg = load_config(write(tmp_path, CIRCUIT))
    assert cfg.model == f"circuit:{tmp_path / 'circuits' / 'ring.qasm'}"
    assert cfg.model_extra == {"inputs": ["x0", "x1", "x2", "x3"]}
    before = cfg.digest()
    import shutil  # the same study in another folder is the same study: the path is not in the digest
    shutil.copytree(tmp_path / "circuits", tmp_path / "moved" / "circuits")
    (tmp_path / "moved" / "study.toml").write_text((tmp_path / "study.toml").read_text())
    assert load_config(tmp_path / "moved" / "study.toml").digest() == before
    (tmp_path / "circuits" / "ring.qasm").write_text(QASM.replace("crx(w3) q[3], q[0];", "cry(w3) q[3], q[0];"))
    assert load_config(tmp_path / "study.toml").digest() != before  # an edited circuit is a new study


@pytest.mark.parametrize("model, pattern", [
    ('name = "hqml-iris"\n' + CIRCUIT, r"expected one of \[model\] name, factory or circuit"),
    ('circuit = "circuits/ring.qasm"', r"\[model\] inputs.*name its per-sample parameters"),
    ('circuit = "circuits/none.qasm"\ninputs = ["x0"]', r"\[model\] circuit.*none.qasm not found"),
    ('circuit = "circuits/ring.qasm"\ninputs = ["x0", "x1"]', r"\[model\] (circuit|inputs)"),
    ('factory = "tests.models.no_such_module:build"', r"\[model\] factory.*cannot import"),
    ('factory = "not a target"', r"\[model\] factory.*pkg.module:callable"),
    ('inputs = ["x0"]', r"\[model\] inputs.*only used with"),
])
def test_bad_user_models_are_refused_at_load(tmp_path, model, pattern):
    pytest.importorskip("qiskit_qasm3_import")
    with pytest.raises(ConfigError, match=pattern):
        load_config(write(tmp_path, model))


def _run(cfg: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qmu_hw.cli", "run", str(cfg), "--quiet"], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)


@pytest.mark.parametrize("model", [CIRCUIT, 'factory = "tests.models.user_models:build"'])
def test_user_model_study_runs_end_to_end(tmp_path, model):
    pytest.importorskip("qiskit_qasm3_import")
    res = _run(write(tmp_path, model))
    assert res.returncode == 0, res.stderr
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as db:
        rows = db.execute("SELECT status FROM cells").fetchall()
    assert sorted(r[0] for r in rows) == ["done", "done"]
    assert (tmp_path / "out" / "report.md").exists()
