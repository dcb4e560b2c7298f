"""Budgets, estimates and the ledger of record: caps hold up front and per request, every
run's spending is on record (ledger table, ledger.json), estimates print machine-readably."""

import json
import sqlite3
import subprocess
import sys
import types

import pytest

from qmu_hw.core.exceptions import BudgetExceededError
from qmu_hw.core.ledger import Budgets, LedgerEntry, ShotBudget, ShotLedger
from qmu_hw.study.accounting import LeaseBudget, Leases, LedgerRecord, actual, carry_earlier
from qmu_hw.study.config import parse_config
from qmu_hw.study.leases import Meter, study_caps

STUDY = """
[study]
name = "acct"
output = "{out}"
seeds = [0]

[data]
dataset = "iris"
per_class = 20

[training]
epochs = 4
patience = 3
n_oracles = 2

[grid]
scenarios = ["class:0"]
methods = ["identity", "ga"]
backends = ["exact", "{backend}"]
shots = [64]

[methods.ga]
epochs = 2
"""
CAPPED_PROFILE = """schema_version = 1
name = "capped-shots"
description = "exact-shots with a 1000-shot budget"
adapter = "statevector"

[defaults]
shots = 1024

[budget]
total_shots = 1000

[cost]
currency = "EUR"
per_shot = 0.001
"""


def qmu(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "qmu_hw.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def write(tmp_path, backend="exact-shots", extra=""):
    path = tmp_path / "study.toml"
    path.write_text(STUDY.replace("{out}", str(tmp_path / "out")).replace("{backend}", backend) + extra)
    return path


def rows(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT status, cost, error FROM cells").fetchall()


def ledger_rows(db):
    with sqlite3.connect(db) as c:
        c.row_factory = sqlite3.Row
        return [dict(r) for r in c.execute("SELECT * FROM ledger")]


def test_profile_cap_refuses_the_study_before_any_training(tmp_path):
    """A profile's [budget] total_shots = 1000 under a 1024-shot study once ran to exit 0 with
    519,168 eval shots stored."""
    prof = tmp_path / "capped-shots.toml"
    prof.write_text(CAPPED_PROFILE)
    cfg = write(tmp_path, backend=str(prof))
    est = qmu("estimate", cfg, "--json", "--no-timing")
    assert est.returncode == 3, est.stderr
    doc = json.loads(est.stdout)
    assert set(doc["bound"]) == {"shots", "tasks", "seconds", "cost"} and doc["currency"] == "EUR"
    assert doc["bound"]["shots"] > 1000 and doc["expected"]["shots"] <= doc["bound"]["shots"]
    assert "capped-shots" in doc["refused"] and "total_shots is 1,000" in doc["refused"]
    res = qmu("run", cfg, "--quiet")
    assert res.returncode == 3, res.stderr
    assert "refused before training" in res.stderr and "capped-shots" in res.stderr and "1,000" in res.stderr
    out = tmp_path / "out"
    assert not (out / "checkpoints").exists()
    # a run refused before any work leaves no folder behind (issue 20), so no result rows
    assert not out.exists() or (rows(out / "results.sqlite") == [] and ledger_rows(out / "results.sqlite") == [])


def test_run_writes_the_ledger_of_record_and_ledger_json(tmp_path):
    cfg = write(tmp_path)
    res = qmu("run", cfg, "--quiet")
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out"
    doc = json.loads((out / "ledger.json").read_text())
    assert set(doc) >= {"bound", "expected", "actual", "currency"} and doc["currency"] == "USD"
    record = ledger_rows(out / "results.sqlite")
    total = doc["actual"]["total"]
    assert total["shots"] == sum(r["shots"] for r in record) > 0
    assert total["tasks"] == sum(r["submissions"] for r in record)
    assert total["shots"] <= doc["bound"]["shots"]  # the plan's bound held
    assert sum(v["shots"] for k, v in doc["actual"].items() if k != "total") == total["shots"]
    # per-cell columns come from the same entries: a cell's unlearning and evaluation shots are
    # on record under its label
    with sqlite3.connect(out / "results.sqlite") as c:
        cells = c.execute("SELECT scenario, seed, backend, shots, method, status, cost FROM cells").fetchall()
    assert len(cells) == 4
    for scenario, seed, backend, shots, method, status, cost in cells:
        assert status == "done"
        label = f"{scenario} seed={seed} {backend}@{shots or 'exact'} {method}"
        mine = [r for r in record if r["task"] == label]
        assert mine, label
        cost = json.loads(cost)
        assert cost["shots"] == sum(r["shots"] for r in mine if r["phase"].startswith("unlearn"))
        assert cost["eval_shots"] <= sum(r["shots"] for r in mine if r["phase"] == "eval")
    # A rerun spends nothing and carries the earlier spending without writing it twice.
    again = qmu("run", cfg, "--quiet")
    assert again.returncode == 0, again.stderr
    assert ledger_rows(out / "results.sqlite") == record


def test_a_request_crossing_a_cap_at_run_time_fails_its_cell_and_the_study_goes_on(tmp_path, monkeypatch):
    """The up-front check skipped (as if the bound were wrong): the cap still holds per request,
    the refused cell is stored failed: budget, no cell is left running, the rest is stored."""
    from qmu_hw.study.config import load_config
    from qmu_hw.study.runner import StudyRunner

    cfg = load_config(write(tmp_path, extra="\n[budget]\nmax_total_shots = 20000\n"))
    runner = StudyRunner(cfg, log=lambda *_: None)
    monkeypatch.setattr(runner, "_refuse_over_caps", lambda todo, earlier: None)
    summary = runner.run()
    got = rows(tmp_path / "out" / "results.sqlite")
    assert sorted(s for s, _, _ in got).count("running") == 0
    failed = [e for s, _, e in got if s == "failed"]
    assert failed and all(e.startswith("budget: ") for e in failed)
    assert summary.ran >= 2 and summary.failed == len(failed)
    paid = sum(r["shots"] for r in ledger_rows(tmp_path / "out" / "results.sqlite") if not r["replayed"])
    assert paid <= 20000


def test_earlier_runs_count_against_the_caps(tmp_path):
    rec = LedgerRecord(tmp_path / "r.sqlite")
    led = ShotLedger()
    rec.attach(led)
    led.record(LedgerEntry("eval", "dm", "-", 4, 600, 1, 0.1, 0.6, False))
    led.record(LedgerEntry("eval", "dm", "-", 4, 600, 0, 0.1, 0.6, False, replayed=True))
    rec.close()
    later = LedgerRecord(tmp_path / "r.sqlite")
    spend = later.earlier_spend()
    assert spend["shots"] == 600 and spend["by_backend"] == {"dm": {"shots": 600, "cost": 0.6}}
    fresh = ShotLedger()
    carry_earlier(fresh, spend)
    later.attach(fresh)
    budget = Budgets((ShotBudget(total_shots=10_000), ShotBudget(total_shots=1000, scope="dm")))
    budget.check(fresh, "eval", 400, backend="dm")
    with pytest.raises(BudgetExceededError, match="backend 'dm'"):
        budget.check(fresh, "eval", 401, backend="dm")
    budget.check(fresh, "eval", 5000, backend="other")  # the profile cap is dm's only
    assert len(later.rows()) == 2  # carried entries are not written again
    assert actual(later.rows())["total"] == {"shots": 1200, "tasks": 1, "seconds": pytest.approx(0.2),
                                             "cost": pytest.approx(1.2), "replayed_shots": 600}


def _row(spend, total=None):
    """An estimate row's breakdown: (backend, phase, shots, cost) tuples."""
    rows = [{"backend": b, "phase": p, "shots": s, "cost": c} for b, p, s, c in spend]
    return {"spend": rows, "shots_total": total if total is not None else sum(r["shots"] for r in rows)}


def test_leases_never_promise_more_than_is_left():
    led = ShotLedger()
    led.record(LedgerEntry("train", "x", "-", 1, 100, 1, 0.0, 0.0, False))  # spent before
    leases = Leases({Meter("shots"): 1000}, led)
    grant = [leases.grant(t, _row([("x", "eval", 500, 0.0)])) for t in "ab"] + [leases.grant("c", _row([("x", "eval", 10, 0.0)]))]
    assert [g[0]["allow"] for g in grant] == [500, 400, 0]
    led.record(LedgerEntry("eval", "x", "-", 1, 300, 1, 0.0, 0.0, False))  # a's spending, recorded
    leases.settle("a")
    assert leases.remaining(Meter("shots")) == 1000 - 400 - 400
    lease = LeaseBudget()
    led.record(LedgerEntry("train", "x", "-", 1, 999, 1, 0.0, 0.0, False))  # an earlier task's spending
    lease.hold([{"what": "shots", "backend": None, "phase": None, "allow": 100}], len(led))
    lease.check(led, "train", 100)
    with pytest.raises(BudgetExceededError, match="lease"):
        lease.check(led, "train", 101)


def test_a_lease_covers_per_phase_per_profile_and_cost_caps():
    """Leases used to cover total shots only: a worker could cross a per-phase or profile cap."""
    cfg = parse_config({"study": {"name": "t", "seeds": [0]}, "grid": {"backends": ["exact-shots"], "shots": [10]},
                        "budget": {"per_phase": {"eval": 300}, "max_cost": 2.0}})
    prof = types.SimpleNamespace(name="dm", budget={"total_shots": 250})
    caps = study_caps(cfg, [prof])
    assert caps == {Meter("cost"): 2.0, Meter("shots", None, "eval"): 300, Meter("shots", "dm"): 250}
    led = ShotLedger()
    leases = Leases(caps, led)
    row = _row([("dm", "eval", 200, 0.0), ("dm", "unlearn/ga", 100, 0.0), ("other", "eval", 50, 1.5)])
    first = {(m["what"], m["backend"], m["phase"]): m["allow"] for m in leases.grant("a", row)}
    # need, capped by what is left: eval 250 of 300; dm 250 (needs 300); cost 1.5; plus the bound
    assert first == {("cost", None, None): 1.5, ("shots", None, "eval"): 250, ("shots", "dm", None): 250,
                     ("shots", None, None): 350}
    second = {(m["what"], m["backend"], m["phase"]): m["allow"] for m in leases.grant("b", row)}
    assert second[("shots", None, "eval")] == 50 and second[("shots", "dm", None)] == 0
    assert second[("cost", None, None)] == pytest.approx(0.5)
    lease = LeaseBudget()
    lease.hold(leases.grant("c", None), 0)  # no row: what is left (nothing)
    with pytest.raises(BudgetExceededError, match="phase 'eval'"):
        lease.check(led, "eval", 1, backend="other")
    lease.hold([{"what": "shots", "backend": None, "phase": "eval", "allow": 50},
                {"what": "shots", "backend": "dm", "phase": None, "allow": 40},
                {"what": "cost", "backend": None, "phase": None, "allow": 0.5}], 0)
    lease.check(led, "unlearn/ga", 40, backend="dm")  # not eval: only dm's lease counts
    with pytest.raises(BudgetExceededError, match="backend 'dm'"):
        lease.check(led, "unlearn/ga", 41, backend="dm")
    lease.check(led, "eval", 50, 0.5, backend="other")
    with pytest.raises(BudgetExceededError, match="cost budget"):
        lease.check(led, "train", 0, 0.6, backend="other")
    leases.settle("a")
    assert leases.remaining(Meter("shots", None, "eval")) == 300 - 50


def test_run_yes_over_a_device_profile_cap_exits_3_without_connecting(tmp_path, monkeypatch):
    """braket-iqm-garnet's profile caps spending at 100 USD: a study over it is refused before
    any account is looked up (no AWS credentials here: connecting would exit 4)."""
    cfg = write(tmp_path, backend="braket-iqm-garnet")
    res = qmu("run", cfg, "--yes")
    assert res.returncode == 3, res.stderr
    assert "braket-iqm-garnet" in res.stderr and "max_cost is 100.00" in res.stderr
    assert "credentials" not in res.stderr and not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.parametrize("change, message", [
    (("shots = [64]", "shots = [9223372036854775807]"), r"\[grid\] shots"),
    (("seeds = [0]", "seeds = [4294967296]"), r"\[study\] seeds"),
    (("[methods.ga]", "[budget]\nmax_total_shots = 4611686018427387904\n\n[methods.ga]"), "max_total_shots"),
    (("[methods.ga]", "[budget]\nper_phase = { eval = 0 }\n\n[methods.ga]"), "per_phase"),
])
def test_config_refuses_integers_that_are_not_int64_safe(tmp_path, change, message):
    """A CLI study with shots 2**63-1 once stored eval_shots 9223372036854775301."""
    from qmu_hw.study.config import ConfigError, load_config

    path = tmp_path / "s.toml"
    path.write_text(write(tmp_path).read_text().replace(*change))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_a_worker_request_over_a_per_phase_cap_is_refused_and_the_study_finishes(tmp_path, monkeypatch):
    """The up-front check is switched off (as if the estimate were too low): the workers' leases
    alone keep the ``eval`` cap. Cells whose request would cross it are stored ``failed:
    budget`` before submission, the others finish, none is left ``running``."""
    from qmu_hw.study.config import load_config
    from qmu_hw.study.estimate import Estimate
    from qmu_hw.study.runner import StudyRunner

    path = write(tmp_path, extra='\n[budget]\nper_phase = { eval = 14000 }\n')
    monkeypatch.setattr(Estimate, "refusal", lambda self, cfg, spent=None: None)
    runner = StudyRunner(load_config(path), log=lambda *_: None)
    summary = runner.run(workers=2)
    statuses = [r[0] for r in rows(tmp_path / "out" / "results.sqlite")]
    assert "running" not in statuses and len(statuses) == 4
    assert summary.failed >= 1 and summary.ran >= 1, summary.failures
    failed = [r for r in rows(tmp_path / "out" / "results.sqlite") if r[0] == "failed"]
    assert all(r[2].startswith("budget:") and "'eval'" in r[2] for r in failed), failed
    doc = json.loads((tmp_path / "out" / "ledger.json").read_text())
    assert doc["actual"]["eval"]["shots"] <= 14000  # the cap held across both workers


def test_any_cell_of_a_group_may_compute_the_shared_reference_outputs_within_its_lease():
    """The estimate counts a group's reference outputs once (on its first cell), but on Ray a
    later cell may be the one to compute them (the first one's worker was killed, or simply
    ran later): its lease covers them (a killed Ray worker's retry was refused for this)."""
    cfg = parse_config({"study": {"name": "t", "seeds": [0]}, "data": {"dataset": "iris", "per_class": 12},
                        "training": {"epochs": 2, "n_oracles": 1},
                        "grid": {"scenarios": ["class:0"], "methods": ["identity", "ga"],
                                 "backends": ["exact-shots"], "shots": [16]}})
    from qmu_hw.study.estimate import estimate_study

    rows = [r for r in estimate_study(cfg, measure_time=False, progress=False).cells if r["task"][0] == "cell"]
    first, second = rows
    assert "ref_spend" not in first and second["ref_spend"][0]["shots"] > 0
    refs = second["ref_spend"][0]["shots"]
    leases = Leases({}, ShotLedger())
    lease = {m["phase"]: m["allow"] for m in leases.grant("ga", second)}
    assert lease[None] == second["shots_total"] + refs
    capped = Leases({Meter("shots", None, "eval"): 10**9}, ShotLedger())
    eval_need = sum(s["shots"] for s in second["spend"] if s["phase"] == "eval")
    assert {m["phase"]: m["allow"] for m in capped.grant("ga", second)}["eval"] == eval_need + refs
