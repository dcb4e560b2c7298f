"""Inputs that used to give a wrong result or a bare traceback: each is now a clear qmu-hw
error (naming what was expected and where) or simply works."""

import errno
import io
import pickle
import sqlite3

import numpy as np
import pytest
import torch

from qmu_hw import EstimateRequest, get_backend
from qmu_hw.circuits import hqml
from qmu_hw.core.exceptions import InvalidRequestError, ProfileError
from qmu_hw.core.journal import DatabaseFileError, JobJournal, sqlite_connection
from qmu_hw.core.ledger import LedgerEntry, ShotLedger
from qmu_hw.models.hybrid import build_model


# -- [noise] on the noiseless engine ------------------------------------------------------------
def test_statevector_refuses_a_noise_table(tmp_path):
    p = tmp_path / "sv-noisy.toml"
    p.write_text('schema_version = 1\nname = "sv-noisy"\nadapter = "statevector"\n'
                 '[noise]\nkind = "depolarizing"\np1 = 0.01\np2 = 0.05\n')
    with pytest.raises(ProfileError, match=r"sv-noisy.toml: key 'noise.kind': the statevector engine is noiseless"):
        get_backend(str(p))
    p.write_text(p.read_text().replace('kind = "depolarizing"\np1 = 0.01\np2 = 0.05\n', 'kind = "none"\n'))
    assert get_backend(str(p)).capabilities.noise == "none"


# -- NaN / inf on the backprop path -------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_backprop_refuses_non_finite_inputs_like_parameter_shift(bad):
    x = torch.rand(4, 4, dtype=torch.float64)
    x[2, 1] = bad
    for gradient in ("backprop", "parameter-shift"):
        model = build_model("hqml-iris", get_backend("exact"), gradient=gradient, shots=None, seed=0)
        with pytest.raises(InvalidRequestError, match="must be finite"):
            model(x)
    model = build_model("hqml-iris", get_backend("exact"), gradient="backprop", seed=0)
    with pytest.raises(InvalidRequestError, match=r"inputs must be finite; got .* at index \(2, 1\)"):
        model(x)
    with torch.no_grad():
        model.quantum.weights[0, 0] = bad
    with pytest.raises(InvalidRequestError, match="weights must be finite"):
        model(torch.rand(2, 4, dtype=torch.float64))


# -- pickling a model (torch.save) ----------------------------------------------------------
def test_torch_save_of_a_model_with_a_quantum_layer_round_trips():
    be = get_backend("exact")
    model = build_model("hqml-iris", be, seed=3)
    x = torch.rand(5, 4, dtype=torch.float64)
    before = model(x).detach()
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert torch.equal(loaded(x).detach(), before)
    # the copy's ledger kept the history, got a fresh lock, and records new requests
    n = len(loaded.quantum.backend.ledger)
    assert n == len(be.ledger) + 1


def test_ledger_pickles_entries_not_lock_or_listeners():
    led = ShotLedger()
    led.listeners.append(lambda e: None)  # a lambda cannot be pickled: it must be left out
    led.record(LedgerEntry("train", "exact", "p", 3, 30, 1, 0.1, 0.5, False))
    back = pickle.loads(pickle.dumps(led))
    assert back.entries == led.entries and back.listeners == [] and back.total_cost() == 0.5
    back.record(LedgerEntry("eval", "exact", "p", 1, 10, 1, 0.1, 0.0, False))
    assert back.total_shots() == 40


# -- corrupted or full databases ----------------------------------------------------------------
def test_corrupted_journal_names_the_file(tmp_path):
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"not sqlite at all" * 200)
    with pytest.raises(DatabaseFileError, match=rf"journal database {path} is corrupted .*move it aside"):
        JobJournal(path)


def test_full_disk_in_sqlite_names_the_file(tmp_path):
    path = tmp_path / "results.sqlite"
    with pytest.raises(DatabaseFileError, match=rf"no space left on the device while writing {path}"):
        with sqlite_connection(path, "results") as db:
            # SQLite reports SQLITE_FULL ("database or disk is full") at its page cap, as on a full disk
            db.execute("PRAGMA max_page_count = 3")
            db.execute("CREATE TABLE t (x TEXT)")
            db.executemany("INSERT INTO t VALUES (?)", [("x" * 4000,)] * 50)
    with sqlite3.connect(path) as db:  # the inserts were rolled back, not half-written
        assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0


def test_full_disk_while_writing_a_checkpoint_names_the_file(tmp_path, monkeypatch):
    from qmu_hw.models import training
    from qmu_hw.study import runner
    from qmu_hw.study.store import UnwritableOutputError

    def save_to_a_full_disk(obj, f):
        with open("/dev/full", "wb") as dev:  # writes fail with ENOSPC, without a file name
            dev.write(b"\0" * (1 << 20))
            dev.flush()

    if not __import__("os").path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    monkeypatch.setattr(training.torch, "save", save_to_a_full_disk)
    model = build_model("hqml-iris", get_backend("exact"), seed=0)
    target = tmp_path / "checkpoints" / "teacher.pt"
    with pytest.raises(UnwritableOutputError, match=rf"cannot write checkpoint {target} \(No space left"):
        runner._save_checkpoint(model, target, {})
    assert not target.exists()


def test_cli_names_the_output_folder_for_a_bare_enospc():
    from qmu_hw import cli

    cli._OUTPUT.append("/data/study-out")
    try:
        msg = cli._os_error_text(OSError(errno.ENOSPC, "No space left on device"))
    finally:
        cli._OUTPUT.pop()
    assert msg.startswith("no space left on the device while writing the output folder /data/study-out")
    assert "/x/y.csv" in cli._os_error_text(OSError(errno.EACCES, "Permission denied", "/x/y.csv"))


# -- a resumed run counts what it already spent ---------------------------------------------
def test_resumed_run_charges_previous_shots_and_cost(tmp_path):
    from qmu_hw.study.config import load_config
    from qmu_hw.study.grid import expand
    from qmu_hw.study.runner import StudyRunner

    cfg_path = tmp_path / "s.toml"
    cfg_path.write_text(f'[study]\noutput = "{tmp_path / "out"}"\n[data]\nper_class = 20\n'
                        '[grid]\nscenarios = ["class:0"]\nmethods = ["identity", "ga"]\n'
                        'backends = ["exact-shots"]\nshots = [64]\n[budget]\nmax_cost = 5.0\n')
    cfg = load_config(cfg_path)
    runner = StudyRunner(cfg)
    cells = expand(cfg)
    ids = {c: c.cell_id(cfg) for c in cells}
    for c, cost in zip(cells, (1.25, 2.5), strict=True):
        runner.store.start(ids[c], cfg.digest(), c.key())
        runner.store.finish(ids[c], {"acc_forget": 0.0}, {"shots": 100, "eval_shots": 20, "qpu_cost": cost,
                                                           "eval_cost": 0.25})
    runner._charge_previous_runs(ids)
    assert runner.ledger.total_shots() == 240
    assert runner.ledger.total_cost() == pytest.approx(4.25)
    # the study's budget now refuses a request that would cross max_cost
    from qmu_hw.core.exceptions import BudgetExceededError

    with pytest.raises(BudgetExceededError, match="cost budget exceeded"):
        runner.budget.check(runner.ledger, "unlearn/ga", 10, cost=1.0)


def test_sampled_request_still_refuses_nan_params():
    c = hqml(2, 1)
    params = np.zeros((1, c.n_params))
    params[0, 0] = np.nan
    with pytest.raises(InvalidRequestError, match="params must be finite"):
        EstimateRequest(c, params, shots=10)
