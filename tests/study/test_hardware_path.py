import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.ibm, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

STUDY = """
[study]
name = "hw"
output = "{out}"
seeds = [0]
[data]
dataset = "iris"
per_class = 10
[training]
epochs = 3
patience = 2
n_oracles = 1
[grid]
scenarios = ["class:0"]
methods = ["identity", "ga"]
backends = ["{backend}"]
shots = [128]
[methods.ga]
epochs = 1
"""


def qmu(*args, env=None):
    return subprocess.run([sys.executable, "-m", "qmu_hw.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)


def test_secrets_never_written(tmp_path):
    secret = "qmu-secret-9f3e1c-never-log-me"
    env = dict(os.environ, QISKIT_IBM_TOKEN=secret, AWS_SECRET_ACCESS_KEY=secret, AWS_ACCESS_KEY_ID="AKIA" + secret)
    cfg = tmp_path / "hw.toml"
    cfg.write_text(STUDY.format(out=tmp_path / "out", backend="ibm-local-fake-manila"))
    res = qmu("run", cfg, env=env)
    assert res.returncode == 0, res.stderr
    jobs = qmu("jobs", tmp_path / "out", env=env)
    assert jobs.returncode == 0 and "done" in jobs.stdout
    assert secret not in res.stdout + res.stderr + jobs.stdout + jobs.stderr
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    # A real device with the token set and no network: our own error, no token in it.
    cfg2 = tmp_path / "real.toml"
    cfg2.write_text(STUDY.format(out=tmp_path / "out2", backend="ibm-brisbane"))
    res2 = qmu("run", cfg2, "--yes", env=env)
    assert res2.returncode == 4 and "no usable IBM Quantum account" in res2.stderr
    assert not (tmp_path / "out2").exists()  # stopped before any work: no half-written folder
    assert secret not in res2.stdout + res2.stderr


def test_real_device_profiles_need_confirmation(tmp_path):
    prof = tmp_path / "confirm-me.toml"
    from pathlib import Path

    base = (Path(__file__).resolve().parents[2] / "backends" / "ibm-local-fake-manila.toml").read_text()
    prof.write_text(base.replace('name = "ibm-local-fake-manila"', 'name = "confirm-me"')
                    .replace('adapter = "ibm"', 'adapter = "ibm"\nrequires_confirmation = true'))
    cfg = tmp_path / "c.toml"
    cfg.write_text(STUDY.format(out=tmp_path / "out", backend=prof))
    res = qmu("run", cfg)
    assert res.returncode == 3 and "refusing without --yes" in res.stderr
    assert not (tmp_path / "out" / "results.sqlite").exists()
    ok = qmu("run", cfg, "--yes")
    assert ok.returncode == 0, ok.stderr
