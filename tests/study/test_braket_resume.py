"""Kill a study on the (stubbed) Braket AWS path, rerun it, count what the service saw."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.braket_service import SV1, FakeBraketService, profile_toml

pytestmark = [pytest.mark.braket, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
ROOT = Path(__file__).resolve().parents[2]
ACCURACY_KEYS = ("acc_retain", "acc_forget", "acc_test", "js_forget", "kl_forget", "uqi", "mia_conf_auc")

STUDY = """
[study]
name = "braket-resume"
output = "{out}"
seeds = [0]
[data]
dataset = "iris"
per_class = 8
[training]
epochs = 2
patience = 1
n_oracles = 1
[grid]
scenarios = ["class:0"]
methods = ["identity", "ga"]
backends = ["{profile}"]
shots = [200]
[methods.ga]
epochs = 1
"""


SECRET = "qmu-aws-secret-5d1e-never-written"
ENV = dict(os.environ, AWS_ACCESS_KEY_ID="AKIAQMUHWTESTKEY", AWS_SECRET_ACCESS_KEY=SECRET)


def run(tmp_path, name, script):
    """One CLI run against the service state ``<name>.json``; returns the process result.

    The AWS secret key sits in the environment, where boto3 picks it up, as in production.
    """
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(STUDY.format(out=tmp_path / name, profile=tmp_path / "sv1.toml"))
    return subprocess.run([sys.executable, "-m", "tests.braket_driver", str(tmp_path / f"{name}.json"),
                           json.dumps(script), "--", "run", str(cfg), "--yes"],
                          capture_output=True, text=True, cwd=ROOT, timeout=900, env=ENV)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A clean run of the study (the reference): its service state and folder."""
    tmp = tmp_path_factory.mktemp("clean")
    (tmp / "sv1.toml").write_text(profile_toml("sv1-test", SV1))
    res = run(tmp, "clean", {})
    assert res.returncode == 0, res.stderr
    return FakeBraketService(tmp / "clean.json").state(), tmp / "clean"


@pytest.mark.parametrize("kill", [{"kill_after_creates": 3}, {"kill_after_results": 4}])
def test_killed_study_resumes_without_paying_twice(tmp_path, clean, kill):
    reference, clean_dir = clean
    (tmp_path / "sv1.toml").write_text(profile_toml("sv1-test", SV1))

    killed = run(tmp_path, "resumed", kill)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    svc = FakeBraketService(tmp_path / "resumed.json")
    at_kill = svc.state()
    journal = subprocess.run([sys.executable, "-m", "qmu_hw.cli", "jobs", str(tmp_path / "resumed"), "--ids"],
                             capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert journal.returncode == 0 and "submitted" in journal.stdout
    journaled = {line.split()[-1] for line in journal.stdout.splitlines() if "quantum-task/" in line}
    # every task the service created before the kill is in the journal, except one created
    # in the instant the process died (the idempotency token covers that one)
    missing = set(at_kill["tasks"]) - journaled
    assert len(missing) == (1 if "kill_after_creates" in kill else 0)

    rerun = run(tmp_path, "resumed", {})
    assert rerun.returncode == 0, rerun.stderr
    final = svc.state()
    # Exactly the tasks of a clean run were created: nothing was paid for twice ...
    assert final["created"] == reference["created"] > at_kill["created"]
    assert [t["shots"] for t in sorted(final["tasks"].values(), key=lambda t: t["index"])] == \
        [t["shots"] for t in sorted(reference["tasks"].values(), key=lambda t: t["index"])]
    # ... every task finished before the kill was fetched again by its ARN, not resubmitted ...
    done_before = {arn for arn, t in at_kill["tasks"].items() if t["status"] == "COMPLETED"}
    assert done_before and done_before <= set(final["tasks"])
    if "kill_after_creates" in kill:
        # the task created as the process died came back through its idempotency token
        assert final["calls"].get("CreateQuantumTask:idempotent", 0) == 1
    # ... and the resumed study's numbers are the clean run's.
    import sqlite3

    def rows(folder):
        with sqlite3.connect(folder / "results.sqlite") as db:
            return sorted((m, json.loads(x)) for m, x in db.execute("SELECT method, metrics FROM cells"))

    resumed, ref = rows(tmp_path / "resumed"), rows(clean_dir)
    assert [m for m, _ in resumed] == [m for m, _ in ref] == ["ga", "identity"]
    for (_, a), (_, b) in zip(resumed, ref, strict=True):
        assert {k: a[k] for k in ACCURACY_KEYS} == {k: b[k] for k in ACCURACY_KEYS}
    # The ledger of record: the resumed study records the clean run's shots plus what the
    # killed run submitted (replays keep their original charge; nothing is counted 0).
    def record(folder):
        with sqlite3.connect(folder / "results.sqlite") as db:
            return db.execute("SELECT run_id, shots, replayed, request FROM ledger").fetchall()

    clean_total = sum(r[1] for r in record(clean_dir))
    # paid = every shot the service ran (a request met twice in one run is replayed, not paid)
    assert sum(r[1] for r in record(clean_dir) if not r[2]) == sum(t["shots"] for t in reference["tasks"].values())
    # (a task created as the process died is not in the journal: the rerun gets it back
    # through its idempotency token and records it then, once)
    killed_submitted = sum(t["shots"] for arn, t in at_kill["tasks"].items() if arn not in missing)
    rows_resumed = record(tmp_path / "resumed")
    assert sum(r[1] for r in rows_resumed) == clean_total + killed_submitted
    # and what was paid (replays excluded) is exactly what the service ran
    assert sum(r[1] for r in rows_resumed if not r[2]) == sum(t["shots"] for t in final["tasks"].values())
    # No secret in anything the runs wrote or printed.
    assert SECRET not in killed.stdout + killed.stderr + rerun.stdout + rerun.stderr + journal.stdout
    for path in (tmp_path / "resumed").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_missing_aws_account_stops_before_training(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text(STUDY.format(out=tmp_path / "out", profile="braket-sv1"))
    env = dict(os.environ, AMZN_BRAKET_OUT_S3_BUCKET="amazon-braket-test", AWS_SECRET_ACCESS_KEY=SECRET)
    res = subprocess.run([sys.executable, "-m", "qmu_hw.cli", "run", str(cfg), "--yes"], capture_output=True,
                         text=True, cwd=ROOT, env=env, timeout=300)
    assert res.returncode == 4 and "no AWS credentials found" in res.stderr
    assert "training teacher" not in res.stderr + res.stdout and SECRET not in res.stderr + res.stdout
    assert not list((tmp_path / "out").glob("checkpoints/*"))
    assert not (tmp_path / "out").exists()  # nothing half-written: the folder this run made is gone
