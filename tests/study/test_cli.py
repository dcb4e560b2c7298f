import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY = """
[study]
name = "tiny"
output = "{out}"
seeds = [0, 1]

[data]
dataset = "iris"
per_class = 20

[training]
epochs = 6
patience = 3
n_oracles = 2

[grid]
scenarios = ["subset:0.1", "class:0"]
methods = ["identity", "ga", "finetune"]
backends = ["exact", "exact-shots"]
shots = [64]

[methods.ga]
epochs = 2
[methods.finetune]
epochs = 2
"""


def qmu(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "qmu_hw.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def write(tmp_path, text, name="study.toml", out=None):
    path = tmp_path / name
    path.write_text(text.replace("{out}", str(out or tmp_path / "out")))
    return path


def cells(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT cell_id, status, metrics, finished FROM cells").fetchall()


def test_tiny_study_end_to_end(tmp_path):
    cfg = write(tmp_path, TINY)
    res = qmu("run", cfg)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out"
    rows = cells(out / "results.sqlite")
    assert len(rows) == 24 and all(r[1] == "done" for r in rows)
    report = (out / "report.md").read_text()
    assert "Scenario class:0" in report and "ranked by JS divergence" in report
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "noise_class_0.png" in pngs and "cost_subset_0.1.png" in pngs
    assert (out / "results.csv").read_text().count("\n") == 25
    assert "forget acc" in res.stdout  # the summary table
    # Rerun: everything is skipped, nothing changes.
    before = cells(out / "results.sqlite")
    again = qmu("run", cfg)
    assert again.returncode == 0 and "24 skipped" in again.stdout
    assert cells(out / "results.sqlite") == before
    # The report rebuilds from the store alone.
    (out / "report.md").unlink()
    rep = qmu("report", out)
    assert rep.returncode == 0 and (out / "report.md").exists()
    # A changed config makes new cells instead of mixing with the old ones.
    changed = write(tmp_path, TINY.replace("epochs = 6", "epochs = 7"), "changed.toml")
    dry = qmu("run", changed, "--dry-run")
    assert dry.returncode == 0 and "24 cells, 0 already done" in dry.stdout


def test_sigkill_then_resume(tmp_path):
    cfg = write(tmp_path, TINY)
    db = tmp_path / "out" / "results.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "qmu_hw.cli", "run", str(cfg), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    done_before = []
    while time.time() < deadline:
        if db.exists():
            try:
                done_before = [r for r in cells(db) if r[1] == "done"]
            except sqlite3.OperationalError:
                done_before = []
            if len(done_before) >= 5:
                break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 5 <= len(done_before) < 24, "the run finished before it could be killed"
    snapshot = {r[0]: r for r in cells(db) if r[1] == "done"}
    res = qmu("run", cfg)
    assert res.returncode == 0, res.stderr
    final = cells(db)
    ids = [r[0] for r in final]
    assert len(ids) == len(set(ids)) == 24 and all(r[1] == "done" for r in final)
    for cid, row in snapshot.items():  # finished cells were skipped, not redone
        assert dict((r[0], r) for r in final)[cid] == row


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t.replace("[grid]", "[grid\n"), "not valid TOML"),
        (lambda t: t.replace("[training]", "[training]\ncolour = 1"), r"\[training\] colour \(line \d+\): unknown key"),
        (lambda t: t.replace('"finetune"]', '"finetune", "forgetti"]'), "unknown method 'forgetti'"),
        (lambda t: t.replace('"exact-shots"]', '"exact-shots", "ibm-nowhere"]'), "unknown backend 'ibm-nowhere'"),
        (lambda t: t.replace('dataset = "iris"', 'dataset = "cifar"'), "unknown dataset 'cifar'"),
        (lambda t: t.replace("shots = [64]", "shots = [-64]"), "positive integer"),
        (lambda t: t.replace('methods = ["identity", "ga", "finetune"]', "methods = []"), "method list is empty"),
        (lambda t: t.replace("[methods.ga]\nepochs = 2", "[methods.ga]\ntemperature = 2"), "unknown hyperparameter"),
        # caught when the config is read, before any teacher or oracle trains
        (lambda t: t.replace("seeds = [0, 1]", "seeds = [0, 0]"), r"\[study\] seeds .*0 appears more than once"),
        (lambda t: t.replace("n_oracles = 2", "n_oracles = 2\nlr = 0.0"), r"\[training\] lr .*positive number"),
        (lambda t: t.replace("[training]", "[model]\nn_qubits = 5\n\n[training]"), "expected n_qubits = 4, got 5"),
        (lambda t: t.replace("per_class = 20", "per_class = 2"), "per_class = 2 is too small"),
        (lambda t: t.replace('"exact-shots"]', '"exact-shots", "aer-fake-manila"]').replace(
            "[training]", '[model]\nname = "hqml-iris"\nn_qubits = 4\n\n[training]').replace(
            'dataset = "iris"', 'dataset = "iris"'), None),
    ],
)
def test_bad_configs_exit_2_and_write_nothing(tmp_path, mutate, message):
    import re

    if message is None:  # a valid variant (control): the checks do not refuse good configs
        assert qmu("run", write(tmp_path, mutate(TINY)), "--dry-run").returncode == 0
        return
    cfg = write(tmp_path, mutate(TINY))
    res = qmu("run", cfg)
    assert res.returncode == 2, res.stderr
    assert re.search(message, res.stderr), res.stderr
    assert str(cfg) in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_unwritable_output_exits_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cfg = write(tmp_path, TINY, out=blocker / "out")
    res = qmu("run", cfg)
    assert res.returncode == 2 and "not writable" in res.stderr


def test_budget_refused_before_training(tmp_path):
    cfg = write(tmp_path, TINY + "\n[budget]\nmax_total_shots = 1000\n")
    res = qmu("run", cfg)
    assert res.returncode == 3 and "refused before training" in res.stderr and "max_total_shots" in res.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()
    est = qmu("estimate", cfg, "--no-timing")
    assert est.returncode == 3 and "needs up to" in est.stderr


def test_estimate_lists_cells_and_totals(tmp_path):
    cfg = write(tmp_path, TINY)
    res = qmu("estimate", cfg, "--per-cell")
    assert res.returncode == 0, res.stderr
    assert "24 cells" in res.stdout and "provider tasks/jobs" in res.stdout and "exact-shots@64 ga" in res.stdout


def test_lock_stops_a_second_writer(tmp_path):
    from qmu_hw.study.store import ResultsStore, StudyLockedError

    store = ResultsStore(tmp_path / "out")
    with store.lock():
        with pytest.raises(StudyLockedError, match="another qmu-hw run"):
            with ResultsStore(tmp_path / "out").lock():
                pass
        res = qmu("run", write(tmp_path, TINY))
        assert res.returncode == 2 and "another qmu-hw run is writing" in res.stderr


def test_backends_lists_profiles():
    res = qmu("backends")
    assert res.returncode == 0
    for name in ("exact", "aer-fake-manila", "dm-depol-0.01"):
        assert name in res.stdout


def test_report_on_empty_folder(tmp_path):
    res = qmu("report", tmp_path)
    assert res.returncode == 2 and "no results.sqlite" in res.stderr


def test_console_script_installed():
    import shutil

    exe = shutil.which("qmu-hw")
    if exe is None:
        pytest.skip("console script not on PATH (package not installed)")
    assert subprocess.run([exe, "--help"], capture_output=True).returncode == 0


def test_metrics_json_in_store(tmp_path):
    cfg = write(tmp_path, TINY.replace("seeds = [0, 1]", "seeds = [0]"))
    assert qmu("run", cfg).returncode == 0
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as c:
        row = c.execute("SELECT metrics, cost, versions, config_hash, profile_sha256 FROM cells LIMIT 1").fetchone()
    metrics, cost, versions = (json.loads(x) for x in row[:3])
    assert "acc_forget" in metrics and "mia_pop_auc" in metrics and "shots" in cost and "torch" in versions
    assert len(row[3]) == 64 and len(row[4]) == 64
    assert Path(tmp_path / "out" / "config.toml").exists()


def test_max_cells_then_resume(tmp_path):
    cfg = write(tmp_path, TINY.replace("seeds = [0, 1]", "seeds = [0]"))
    first = qmu("run", cfg, "--max-cells", "3")
    assert first.returncode == 0, first.stderr
    db = tmp_path / "out" / "results.sqlite"
    assert sum(r[1] == "done" for r in cells(db)) == 3
    rest = qmu("run", cfg)
    assert rest.returncode == 0 and "9 cells run, 3 skipped" in rest.stdout
    assert sum(r[1] == "done" for r in cells(db)) == 12


@pytest.mark.slow  # test_ray's process-pool test checks the same (metrics, ledger) in the default run
def test_workers_give_the_same_cells_as_one_process(tmp_path):
    text = TINY.replace("seeds = [0, 1]", "seeds = [0]")
    one = write(tmp_path, text, "one.toml", out=tmp_path / "one")
    two = write(tmp_path, text, "two.toml", out=tmp_path / "two")
    assert qmu("run", one).returncode == 0
    res = qmu("run", two, "--workers", "2")
    assert res.returncode == 0, res.stderr

    def metrics(folder):
        with sqlite3.connect(folder / "results.sqlite") as c:
            return {r[0]: json.loads(r[1]) for r in c.execute("SELECT cell_id, metrics FROM cells WHERE status='done'")}

    a, b = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert len(a) == 12 and a == b  # every cell is seeded from itself, not from run order


def test_zero_workers_is_a_config_error(tmp_path):
    one = write(tmp_path, TINY, "one.toml", out=tmp_path / "one")
    bad = qmu("run", one, "--workers", "0")
    assert bad.returncode == 2 and "workers must be >= 1" in bad.stderr
    assert not (tmp_path / "one" / "results.sqlite").exists()


def test_help_lists_every_exit_code_and_version_exists():
    res = qmu("--help")
    assert res.returncode == 0
    for code, meaning in (("0", "ok"), ("1", "some cells failed"), ("2", "bad config"), ("3", "budget"),
                          ("4", "backend unavailable"), ("130", "interrupted")):
        assert re.search(rf"^\s+{code}\s+{meaning}", res.stdout, re.M), (code, res.stdout)
    assert "some cells failed" in qmu("run", "--help").stdout
    ver = qmu("--version")
    assert ver.returncode == 0 and re.match(r"qmu-hw \S+", ver.stdout)


@pytest.mark.parametrize("n", ["-1", "0", "two"])
def test_max_cells_below_one_is_refused(tmp_path, n):
    cfg = write(tmp_path, TINY)
    res = qmu("run", cfg, "--max-cells", n)
    assert res.returncode == 2 and "--max-cells: expected a whole number >= 1" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()


def test_max_cells_below_one_is_refused_by_the_python_api(tmp_path):
    from qmu_hw.core.exceptions import InvalidRequestError
    from qmu_hw.study.config import load_config
    from qmu_hw.study.runner import StudyRunner

    runner = StudyRunner(load_config(write(tmp_path, TINY)))
    with pytest.raises(InvalidRequestError, match="max_cells must be an integer >= 1"):
        runner.run(max_cells=-1)


def test_corrupted_results_store_is_a_clear_error(tmp_path):
    cfg = write(tmp_path, TINY)
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"this is not a database, it was overwritten" * 100)
    for args in (("run", cfg), ("report", out)):
        res = qmu(*args)
        assert res.returncode == 2, res.stderr
        assert f"results database {out / 'results.sqlite'} is corrupted" in res.stderr, res.stderr
        assert "move it aside" in res.stderr and "Traceback" not in res.stderr
    assert not (out / "checkpoints").exists()


def test_corrupted_journal_is_a_clear_error(tmp_path):
    from qmu_hw.study.store import ResultsStore

    out = tmp_path / "out"
    ResultsStore(out)
    (out / "journal.sqlite").write_bytes(b"\x00garbage" * 500)
    res = qmu("jobs", out)
    assert res.returncode == 2 and f"journal database {out / 'journal.sqlite'} is corrupted" in res.stderr
    assert "provider's job list" in res.stderr and "Traceback" not in res.stderr
    run = qmu("run", write(tmp_path, TINY))
    assert run.returncode == 2 and "journal database" in run.stderr and "Traceback" not in run.stderr


def test_jobs_on_a_local_study_says_there_are_none(tmp_path):
    from qmu_hw.core.journal import JobJournal
    from qmu_hw.study.store import ResultsStore

    out = tmp_path / "out"
    ResultsStore(out)
    JobJournal(out / "journal.sqlite")  # every run opens one, cloud or not
    res = qmu("jobs", out)
    assert res.returncode == 0 and "no cloud jobs" in res.stdout and "request" not in res.stdout
    assert qmu("jobs", tmp_path / "nothing").returncode == 2


def test_backends_reports_accounts_and_device_noise():
    # qiskit-ibm-runtime leaves an empty account file behind once used: still no account
    saved = Path(os.environ["HOME"]) / ".qiskit" / "qiskit-ibm.json"
    saved.parent.mkdir(exist_ok=True)
    if not saved.exists():
        saved.write_text("{}")
    res = qmu("backends")
    rows = {line.split()[0]: line for line in res.stdout.splitlines()[2:]}
    assert "needs account" in rows["ibm-brisbane"] and "device (calibrated)" in rows["ibm-brisbane"]
    assert "needs account" in rows["braket-iqm-garnet"] and "device (calibrated)" in rows["braket-iqm-garnet"]
    assert "calibrated from FakeManilaV2" in rows["ibm-local-fake-manila"]
    assert " yes " in rows["exact"] and "none" in rows["exact"]


def test_report_from_another_folder_reads_relative_paths_against_the_config(tmp_path):
    """The output's config copy says compare_with = "ref/..." relative to the ORIGINAL config."""
    import shutil

    study = tmp_path / "study"
    (study / "ref").mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parents[2] / "examples/reference/hqml_results_iris.csv", study / "ref")
    text = (TINY.replace("seeds = [0, 1]", "seeds = [0]").replace('methods = ["identity", "ga", "finetune"]',
                                                                 'methods = ["identity"]')
            + '\n[report]\ncompare_with = "ref/hqml_results_iris.csv"\n')
    cfg = write(study, text, out=tmp_path / "out")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = qmu("run", cfg, "--max-cells", "1", cwd=elsewhere)
    assert run.returncode == 0, run.stderr
    (tmp_path / "out" / "report.md").unlink()
    rep = qmu("report", tmp_path / "out", cwd=elsewhere)
    assert rep.returncode == 0, rep.stderr
    assert "Ours vs the paper (hqml_results_iris.csv)" in (tmp_path / "out" / "report.md").read_text()
