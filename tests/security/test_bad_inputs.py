"""Every bad value is refused where it enters: one line naming the file, table and key,
exit 2 (4 for an unreachable service), no traceback and no study folder left behind."""

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from qmu_hw import cli

ROOT = Path(__file__).resolve().parents[2]
BASE = """
[study]
name = "bad"
output = "{out}"
seeds = {seeds}

[data]
dataset = "iris"
per_class = 10

[training]
epochs = 2
patience = 2
n_oracles = 2
{training}
[grid]
scenarios = {scenarios}
methods = ["identity", "ga"]
backends = ["exact"]
{model}{methods}{report}
"""


def config(tmp_path, *, seeds="[0]", training="", scenarios='["class:0"]', model="", methods="", report=""):
    path = tmp_path / "study.toml"
    path.write_text(BASE.format(out=tmp_path / "out", seeds=seeds, training=training, scenarios=scenarios,
                                model=model, methods=methods, report=report))
    return path


def run_cli(capsys, *args):
    code = cli.main(["run", *map(str, args), "--quiet"])
    err = capsys.readouterr().err
    return code, err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CSV_MISSING = "scenario,method,acc\nsubset2pct,GA,0.9\n"
CASES = {
    "ga lr string": (dict(methods='[methods.ga]\nlr = "fast"\n'), r"\[methods.ga\] lr \(line \d+\): expected a number"),
    "ga lr 1e300": (dict(methods="[methods.ga]\nlr = 1e300\n"), r"\[methods.ga\] lr .*positive learning rate \(at most 10\)"),
    "ga epochs -1": (dict(methods="[methods.ga]\nepochs = -1\n"), r"\[methods.ga\] epochs .*integer in \[1, "),
    "ga epochs float": (dict(methods="[methods.ga]\nepochs = 2.5\n"), r"\[methods.ga\] epochs .*expected an integer"),
    "seed 2**63-1": (dict(seeds="[9223372036854775807]"), r"\[study\] seeds .*uint32"),
    "training lr 1e300": (dict(training="lr = 1e300\n"), r"\[training\] lr .*learning rate of at most 10"),
    "subset 0.0001": (dict(scenarios='["subset:0.0001"]'), r"\[grid\] scenarios .*subset:0.0001.* forgets less than 1%"),
    "factory raising at import": (dict(model='[model]\nfactory = "tests.security.factory_raises_at_import:build"\n'),
                                  r"\[model\] factory .*raised RuntimeError: boom at import"),
    "factory exiting at import": (dict(model='[model]\nfactory = "tests.security.factory_exits_at_import:build"\n'),
                                  r"\[model\] factory .*raised SystemExit"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_value_is_one_line_exit_2_and_no_folder(tmp_path, capsys, case):
    kw, pattern = CASES[case]
    cfg = config(tmp_path, **kw)
    code, err = run_cli(capsys, cfg)
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert str(cfg) in err
    assert __import__("re").search(pattern, err), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, pattern", [
    (CSV_MISSING, r"lacks the columns \['acc_forget_unlearn', 'acc_test_unlearn', 'UQI'\]"),
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", r"is not a UTF-8 text CSV"),
    ("scenario,method,acc_forget_unlearn,acc_test_unlearn,UQI\nsubset2pct,GA,high,0.9,0.1\n",
     r"line 2: column acc_forget_unlearn is not a number"),
])
def test_compare_with_is_parsed_at_load(tmp_path, capsys, content, pattern):
    ref = tmp_path / "ref.csv"
    ref.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, err = run_cli(capsys, config(tmp_path, report=f'[report]\ncompare_with = "{ref}"\n'))
    assert code == 2 and err.count("\n") == 1, err
    assert "[report] compare_with" in err and __import__("re").search(pattern, err), err
    assert not (tmp_path / "out").exists()


def test_an_unreachable_ray_head_is_exit_4_within_seconds(tmp_path, capsys):
    pytest.importorskip("ray")
    code, err = run_cli(capsys, config(tmp_path), "--executor", "ray", "--address", f"127.0.0.1:{_closed_port()}")
    assert code == 4 and err.count("\n") == 1, err
    assert "is unreachable" in err and not (tmp_path / "out").exists()


def test_n_oracles_one_says_n_a_not_nan(tmp_path):
    cfg = config(tmp_path, training="").read_text().replace("n_oracles = 2", "n_oracles = 1")
    (tmp_path / "one.toml").write_text(cfg)
    res = subprocess.run([sys.executable, "-m", "qmu_hw.cli", "run", str(tmp_path / "one.toml")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "nan" not in res.stdout and "n/a (n_oracles < 2)" in res.stdout


def test_a_factory_with_a_logit_too_many_is_refused(tmp_path):
    cfg = config(tmp_path, model='[model]\nfactory = "tests.security.bad_factories:four_logits"\n')
    res = subprocess.run([sys.executable, "-m", "qmu_hw.cli", "run", str(cfg), "--quiet"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "emits outputs of shape (4,)" in res.stderr and "3 classes" in res.stderr
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM cells WHERE status = 'done'").fetchone()[0] == 0


def test_a_factory_calling_sys_exit_fails_its_cells_not_exit_0(tmp_path):
    cfg = config(tmp_path, model='[model]\nfactory = "tests.security.bad_factories:exits"\n')
    res = subprocess.run([sys.executable, "-m", "qmu_hw.cli", "run", str(cfg), "--quiet"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert "SystemExit(0) raised inside the cell" in res.stderr
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as db:
        statuses = [r[0] for r in db.execute("SELECT status FROM cells")]
    assert statuses and set(statuses) == {"failed"}  # none left 'running'


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QMU_HW_DEBUG", "1")
    code, err = run_cli(capsys, config(tmp_path, methods="[methods.ga]\nepochs = -1\n"))
    assert code == 2 and "Traceback" in err


def test_get_backend_arguments_are_checked():
    from qmu_hw import InvalidRequestError, get_backend

    for kw, pattern in [({"seed": "abc"}, "seed must be an integer"), ({"seed": -1}, "seed must be an integer"),
                        ({"budget": "lots"}, "budget must be a qmu_hw ShotBudget"),
                        ({"dtype": "float8"}, r"refused the options \{'dtype': 'float8'\}")]:
        with pytest.raises(InvalidRequestError, match=pattern):
            get_backend("exact", **kw)
    assert get_backend("exact", seed=2 ** 32 - 1).seed == 2 ** 32 - 1


def test_unlearn_refuses_bad_hyperparameters_in_the_api():
    from qmu_hw.unlearning import check_hyperparameters

    with pytest.raises(ValueError, match="method 'ga' hyperparameter 'lr': expected a number, got 'fast'"):
        check_hyperparameters("ga", {"lr": "fast"})
    check_hyperparameters("ga", {"lr": 0.05, "epochs": 3})


@pytest.mark.slow  # ~45 s: the billed-study estimate before the refusal
@pytest.mark.braket
def test_a_cloud_backend_without_network_is_exit_4_one_line_and_no_folder(tmp_path):
    pytest.importorskip("braket.aws")
    cfg = config(tmp_path).read_text().replace('backends = ["exact"]', 'backends = ["braket-sv1"]\nshots = [100]')
    (tmp_path / "sv1.toml").write_text(cfg)
    env = {**__import__("os").environ, "AMZN_BRAKET_OUT_S3_BUCKET": "amazon-braket-test", "AWS_ACCESS_KEY_ID": "AKIAFAKE",
           "AWS_SECRET_ACCESS_KEY": "fake", "AWS_DEFAULT_REGION": "us-east-1"}  # an account, but no network (netguard)
    res = subprocess.run([sys.executable, "-m", "qmu_hw.cli", "run", str(tmp_path / "sv1.toml"), "--yes", "--quiet"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
    assert res.returncode == 4, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("qmu-hw: error")]
    assert len(errors) == 1 and "cannot reach backend 'braket-sv1'" in errors[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_a_factory_calling_sys_exit_in_worker_processes_fails_its_cells(tmp_path):
    cfg = config(tmp_path, model='[model]\nfactory = "tests.security.bad_factories:exits"\n')
    res = subprocess.run([sys.executable, "-m", "qmu_hw.cli", "run", str(cfg), "--quiet", "--workers", "2"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert "SystemExit(0)" in res.stderr
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as db:
        statuses = [r[0] for r in db.execute("SELECT status FROM cells")]
    assert statuses and set(statuses) == {"failed"}
