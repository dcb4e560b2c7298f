"""Studies on Ray: same cells as a sequential run, and faults (a killed worker, a killed
driver, a failing cell) that leave every cell in the store exactly once.

Every Ray here is a local one the CLI starts on loopback with 2 CPUs."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from qmu_hw.core.exceptions import MissingDependencyError
from qmu_hw.study.config import parse_config, tomllib
from qmu_hw.study.executor_backends import InlineExecutor, LocalExecutor
from qmu_hw.study.executors import cell_on_driver, here, make_executor, on_driver
from qmu_hw.study.grid import expand
from qmu_hw.study.plan import StudyPlan

STUDY = """
[study]
name = "raytiny"
output = "{out}"
seeds = [0]

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
epochs = 6
[methods.finetune]
epochs = 6
"""
N_CELLS = 12


def _write(tmp_path, name):
    path = tmp_path / f"{name}.toml"
    path.write_text(STUDY.replace("{out}", str(tmp_path / name)))
    return path


def _cli(*args):
    return [sys.executable, "-m", "qmu_hw.cli", *map(str, args)]


def _run(*args, timeout=300):
    return subprocess.run(_cli(*args), capture_output=True, text=True, timeout=timeout)


def _rows(folder):
    with sqlite3.connect(folder / "results.sqlite") as c:
        return c.execute("SELECT cell_id, status, metrics, finished, error FROM cells").fetchall()


def _ledger_columns(folder):
    """Each cell's spending columns (times excepted: they are measured, not counted)."""
    with sqlite3.connect(folder / "results.sqlite") as c:
        rows = c.execute("SELECT cell_id, cost FROM cells WHERE status = 'done'").fetchall()
    return {cid: {k: v for k, v in json.loads(cost).items() if not k.endswith("_wall_s")} for cid, cost in rows}


def _ledger_totals(folder):
    """ledger.json's actual spending per phase and in total (seconds excepted: measured)."""
    doc = json.loads((folder / "ledger.json").read_text())
    return {p: {k: v for k, v in a.items() if k != "seconds"} for p, a in doc["actual"].items()}


def _metrics(folder):
    return {r[0]: json.loads(r[2]) for r in _rows(folder) if r[1] == "done"}


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The reference: the study run in one process, one cell after another."""
    tmp = tmp_path_factory.mktemp("seq")
    res = _run("run", _write(tmp, "seq"), "--quiet")
    assert res.returncode == 0, res.stderr
    return tmp / "seq"


# -- no Ray needed ---------------------------------------------------------------------------
def test_executor_ray_without_ray_names_the_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does when Ray is absent
    with pytest.raises(MissingDependencyError, match=r"pip install 'qmu-hw\[ray\]'"):
        make_executor("ray", 2)
    from qmu_hw.cli import main

    assert main(["run", str(_write(tmp_path, "x")), "--executor", "ray"]) == 4  # a missing SDK: exit 4
    assert "pip install 'qmu-hw[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "x" / "checkpoints").exists()  # refused before any training


def test_executor_choices_are_checked_before_work():
    with pytest.raises(ValueError, match="unknown executor 'dask'"):
        make_executor("dask", 2)
    with pytest.raises(ValueError, match="--address .* needs --executor ray"):
        make_executor("local", 2, address="10.0.0.1:6379")
    assert make_executor("local", 1).inline  # one worker: every task runs in the driver, in order


def test_billed_and_journaled_cells_stay_on_the_driver_their_training_does_not():
    text = STUDY.replace('backends = ["exact", "exact-shots"]', 'backends = ["exact", "braket-sv1"]')
    cfg = parse_config(tomllib.loads(text.replace("{out}", "/tmp/unused")))
    cells = expand(cfg)
    cloud = [c for c in cells if c.backend == "braket-sv1"]
    assert cloud and all(cell_on_driver(cfg, c) for c in cloud)
    assert not any(cell_on_driver(cfg, c) for c in cells if c.backend == "exact")
    assert on_driver("ibm-local-fake-manila")  # journaled even though it is not billed
    plan = StudyPlan.of(cfg, cells)
    # One teacher per seed and one oracle set per scenario, on the exact train backend,
    # shared by the cloud cells and the local ones.
    assert sorted(t.label for t in plan.tasks) == ["oracles class:0 seed=0 exact@exact",
                                                   "oracles subset:0.1 seed=0 exact@exact",
                                                   "teacher seed=0 exact@exact"]
    assert all(len(plan.needs[c]) == 2 for c in cells)
    pool = LocalExecutor(2)
    assert [c for c in cells if here(plan, c, pool)] == cloud  # only the billed cells stay here
    assert all(here(plan, c, InlineExecutor()) for c in cells)


# -- local 2-CPU Ray ---------------------------------------------------------------------------
try:
    import psutil  # installed with Ray
    import ray  # noqa: F401
except ImportError:  # the tests above still run
    psutil = None
needs_ray = pytest.mark.skipif(psutil is None, reason="Ray is not installed (pip install 'qmu-hw[ray]')")


@pytest.mark.ray
@needs_ray
def test_ray_gives_cell_for_cell_the_sequential_metrics(tmp_path, sequential):
    res = _run("run", _write(tmp_path, "ray"), "--executor", "ray", "--workers", "2")
    assert res.returncode == 0, res.stderr
    assert f"{N_CELLS} cells run" in res.stdout
    got, want = _metrics(tmp_path / "ray"), _metrics(sequential)
    assert len(want) == N_CELLS and got == want
    # The ledger columns too (the second cell of a scenario once recorded 165 eval circuits
    # sequentially and 507 on Ray: the shared reference outputs were charged to it).
    assert _ledger_columns(tmp_path / "ray") == _ledger_columns(sequential)
    # ...and the study's totals: the reference outputs are charged once per group on Ray as
    # sequentially (workers used to recompute them, once per worker process).
    assert _ledger_totals(tmp_path / "ray") == _ledger_totals(sequential)
    again = _run("run", _write(tmp_path, "ray"), "--executor", "ray", "--workers", "2")
    assert again.returncode == 0 and f"0 cells run, {N_CELLS} skipped" in again.stdout


def test_process_pool_charges_the_sequential_ledger(tmp_path, sequential):
    """Two worker processes: the same per-cell columns and ledger.json totals as one process."""
    res = _run("run", _write(tmp_path, "pool"), "--workers", "2")
    assert res.returncode == 0, res.stderr
    assert _metrics(tmp_path / "pool") == _metrics(sequential)
    assert _ledger_columns(tmp_path / "pool") == _ledger_columns(sequential)
    got, want = _ledger_totals(tmp_path / "pool"), _ledger_totals(sequential)
    assert got == want and want["eval"]["shots"] > 0
    refs = list((tmp_path / "pool" / "checkpoints").glob("reference-*.npz"))
    assert len(refs) == 4  # one per (scenario, backend) group: 2 scenarios x 2 backends


def _descendants(pid):
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _wait_for(predicate, proc, timeout=120.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = predicate()
        if got:
            return got
        assert proc.poll() is None, "the run ended before the fault could be injected"
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the run")


@pytest.mark.ray
@needs_ray
def test_sigkill_of_a_ray_worker_mid_cell_retries_it(tmp_path, sequential):
    out = tmp_path / "killw"
    proc = subprocess.Popen(_cli("run", _write(tmp_path, "killw"), "--executor", "ray", "--workers", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def busy_cell_worker():  # a Ray worker process of THIS run, executing a cell
            return [p for p in _descendants(proc.pid) if _title(p) == "ray::cell_task"]

        victim = _wait_for(busy_cell_worker, proc)[0]
        victim.send_signal(signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        _kill_tree(proc)
    assert proc.returncode == 0, stderr
    rows = _rows(out)
    assert len(rows) == N_CELLS and all(r[1] == "done" for r in rows), rows
    assert _metrics(out) == _metrics(sequential)  # the retried cell computed the same numbers


@pytest.mark.ray
@needs_ray
def test_sigkill_of_the_driver_then_rerun_completes_each_cell_once(tmp_path, sequential):
    cfg, out = _write(tmp_path, "killd"), tmp_path / "killd"
    proc = subprocess.Popen(_cli("run", cfg, "--executor", "ray", "--workers", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tree = []
    try:
        def some_done():
            if not (out / "results.sqlite").exists():
                return False
            try:
                return sum(r[1] == "done" for r in _rows(out)) >= 3
            except sqlite3.OperationalError:  # schema being created
                return False

        _wait_for(some_done, proc)
        tree = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        _kill_tree(proc, tree)  # Ray's processes die with their driver; make sure
    before = {r[0]: r for r in _rows(out) if r[1] == "done"}
    assert 3 <= len(before) < N_CELLS
    res = _run("run", cfg, "--executor", "ray", "--workers", "2")
    assert res.returncode == 0, res.stderr
    assert f"{N_CELLS - len(before)} cells run, {len(before)} skipped" in res.stdout
    rows = _rows(out)
    assert len(rows) == N_CELLS and len({r[0] for r in rows}) == N_CELLS and all(r[1] == "done" for r in rows)
    for r in rows:  # finished cells were not run again
        if r[0] in before:
            assert r == before[r[0]]
    assert _metrics(out) == _metrics(sequential)


@pytest.mark.ray
@needs_ray
def test_a_failing_cell_is_recorded_with_its_error_and_the_run_goes_on(tmp_path, sequential):
    cfg, out = _write(tmp_path, "fail"), tmp_path / "fail"
    # The sequential run's checkpoints are valid here (same config digest); one scenario's
    # oracle checkpoints are damaged beyond repair (a folder where the weights should be: it
    # can be neither read nor replaced), so its cells fail while the other scenario's finish.
    shutil.copytree(sequential / "checkpoints", out / "checkpoints")
    damaged = sorted((out / "checkpoints").glob("oracle-*class_0*.pt"))
    assert damaged
    for p in damaged:
        p.unlink()
        (p / "x").mkdir(parents=True)
    res = _run("run", cfg, "--executor", "ray", "--workers", "2")
    assert res.returncode == 1, res.stderr
    rows = _rows(out)
    failed = [r for r in rows if r[1] == "failed"]
    assert len(rows) == N_CELLS and len(failed) == N_CELLS // 2
    assert all(r[4].startswith("prerequisite oracles class:0 seed=0 exact@exact failed: IsADirectoryError")
               for r in failed), failed[0][4]
    want = _metrics(sequential)
    assert all(want[k] == v for k, v in _metrics(out).items()) and len(_metrics(out)) == N_CELLS // 2
    assert "cell failed: class:0" in res.stderr


def _title(p):
    try:
        return " ".join(p.cmdline()).strip()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


def _kill_tree(proc, tree=None):
    """Only the processes this test started: the CLI and what it spawned."""
    for p in (tree or []) + _descendants(proc.pid):
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)
    if os.name == "posix":
        time.sleep(0.2)


JOURNALED = """
[study]
name = "journaled"
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
backends = ["exact", "ibm-local-fake-manila"]
shots = [128]
[methods.ga]
epochs = 1
"""


@pytest.mark.ray
@pytest.mark.ibm
@needs_ray
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_journaled_backend_cells_run_in_the_driver_with_the_same_numbers(tmp_path):
    from qmu_hw.core.journal import JobJournal

    for name in ("seq", "ray"):
        (tmp_path / f"{name}.toml").write_text(JOURNALED.replace("{out}", str(tmp_path / name)))
    assert _run("run", tmp_path / "seq.toml").returncode == 0
    res = _run("run", tmp_path / "ray.toml", "--executor", "ray", "--workers", "2")
    assert res.returncode == 0, res.stderr
    assert _metrics(tmp_path / "ray") == _metrics(tmp_path / "seq") and len(_metrics(tmp_path / "seq")) == 4
    # A worker has no journal: every IBM request is in the driver's, as in the sequential run.
    seq, ray_ = (JobJournal(tmp_path / n / "journal.sqlite").entries() for n in ("seq", "ray"))
    assert seq and sorted(e.request_hash for e in ray_) == sorted(e.request_hash for e in seq)
    assert all(e.state == "done" for e in ray_)
