"""The estimate as a dry run: the study's own tasks with counting backends. It needs no
credentials, network or SDK session for cloud profiles, writes nothing to the study's folder,
runs every loop in full, agrees with the methods' registered cost models (the analytic
bound) and bounds what a run spends."""

import json
import socket

import pytest

from qmu_hw.study.config import load_config, parse_config
from qmu_hw.study.dry_run import dry_run_estimate
from qmu_hw.study.estimate import estimate_study


def _cfg(tmp_path, backends=("exact-shots",), gradient="parameter-shift", train="exact",
         methods=("identity", "ga", "finetune", "scrub", "retrain"), seeds=(0,)):
    return parse_config({
        "study": {"name": "dry", "seeds": list(seeds), "output": str(tmp_path / "out")},
        "data": {"dataset": "iris", "per_class": 12},
        "training": {"epochs": 3, "patience": 1, "n_oracles": 1, "train_backend": train, "gradient": gradient,
                     "batch_size": 16},
        "grid": {"scenarios": ["class:0"], "methods": list(methods), "backends": list(backends), "shots": [16]},
        "methods": {m: {"epochs": 2} for m in methods if m in ("ga", "finetune", "scrub")}})


@pytest.mark.parametrize("backends,gradient,train", [
    (("exact-shots",), "parameter-shift", "exact"),
    (("dm-depol-0.01",), "spsa", "same"),
    (("exact", "exact-shots"), "spsa", "same"),
])
def test_the_dry_run_matches_the_cost_models_task_by_task(tmp_path, backends, gradient, train):
    """Every task the dry run walks charges what its registered cost model counts (patience 1:
    equal counts mean early stopping was off), and the study's folder is never created."""
    cfg = _cfg(tmp_path, backends, gradient, train)
    est = dry_run_estimate(cfg, measure_time=False, progress=False)
    assert est.bound_method == "dry run" and not est.mismatches, est.mismatches
    analytic = {r["task"]: r for r in estimate_study(cfg, measure_time=False, progress=False).cells}
    assert {r["task"] for r in est.cells} == set(analytic)
    for r in est.cells:
        a = analytic[r["task"]]
        assert (r["shots_total"], r["tasks"], r["circuits"]) == (a["shots_total"], a["tasks"], a["circuits"]), r["cell"]
    assert est.bound()["shots"] == est.analytic["shots"] > 0
    assert not (tmp_path / "out").exists()


def test_a_cloud_estimate_needs_no_credentials_network_or_sdk_session(tmp_path, monkeypatch):
    """braket and ibm profiles: no real backend is built, no socket opened, no account read."""
    import qmu_hw.adapters.registry as registry

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "QISKIT_IBM_TOKEN", "IBM_QUANTUM_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no saved accounts
    real = registry.get_backend

    def refuse_remote(name, **kw):
        prof = name if hasattr(name, "adapter") else registry.resolve_profile(name)
        assert not registry.adapter_info(prof).remote, f"the dry run built a real {prof.name}"
        return real(name, **kw)

    def no_network(*a, **k):
        raise AssertionError("the dry run opened a network connection")

    monkeypatch.setattr(registry, "get_backend", refuse_remote)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    for example in ("braket_hardware", "ibm_hardware"):
        cfg = load_config(f"examples/{example}.toml", output=str(tmp_path / example))
        est = dry_run_estimate(cfg, measure_time=False, progress=False)
        assert not est.mismatches, est.mismatches
        assert est.bound()["cost"] > 0 and est.bound()["shots"] == est.analytic["shots"]
        assert est.bound()["tasks"] == est.analytic["tasks"]
        assert not (tmp_path / example).exists()


def test_estimate_json_says_how_the_bound_was_found(tmp_path, capsys):
    from qmu_hw.cli import main

    path = tmp_path / "s.toml"
    path.write_text(f"""
[study]
name = "j"
output = "{tmp_path / 'out'}"
seeds = [0]
[data]
dataset = "iris"
per_class = 12
[training]
epochs = 2
n_oracles = 1
[grid]
scenarios = ["class:0"]
methods = ["identity"]
backends = ["exact-shots"]
shots = [16]
""")
    assert main(["estimate", str(path), "--json", "--no-timing"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["bound_method"] == "dry run" and doc["bound"]["shots"] == doc["analytic_bound"]["shots"] > 0
    assert main(["estimate", str(path), "--json", "--no-timing", "--fast"]) == 0
    fast = json.loads(capsys.readouterr().out)
    assert fast["bound_method"] == "analytic" and fast["bound"] == doc["analytic_bound"]


def test_a_run_spends_at_most_the_dry_run_bound(tmp_path):
    from qmu_hw.study.runner import StudyRunner

    cfg = _cfg(tmp_path, ("exact-shots",), "spsa", "same", methods=("identity", "ga"))
    est = dry_run_estimate(cfg, measure_time=False, progress=False)
    summary = StudyRunner(cfg, log=lambda *_: None).run()
    assert summary.failed == 0, summary.failures
    spent = json.loads((tmp_path / "out" / "ledger.json").read_text())["actual"]["total"]
    assert spent["shots"] <= est.bound()["shots"] and spent["tasks"] <= est.bound()["tasks"]
    assert est.bound()["shots"] <= 3 * spent["shots"], (spent, est.bound())


def test_axes_and_populations_in_the_dry_run(tmp_path):
    """Each axis combination is walked with its own model; populations come from the model."""
    from tests.study import test_axes, test_per_example_study

    cfg = parse_config(test_axes._doc(tmp_path / "a", test_axes.AXES))
    est = dry_run_estimate(cfg, measure_time=False, progress=False)
    analytic = estimate_study(cfg, measure_time=False, progress=False)
    assert not est.mismatches and est.totals["circuits"] == analytic.totals["circuits"]
    assert sum(r["task"][0] == "teacher" for r in est.cells) == 4 and est.totals["cells"] == 8
    cfg = parse_config(test_per_example_study._doc(tmp_path / "p", per_example={"n_models": 8}))
    est = dry_run_estimate(cfg, measure_time=False, progress=False)
    assert not est.mismatches
    assert sum(r.get("population_models", 0) for r in est.cells) == 2 * 3 * 8
    assert est.totals["circuits"] == estimate_study(cfg, measure_time=False, progress=False).totals["circuits"]


def test_early_stopping_is_off_only_inside_the_switch(tmp_path):
    """With a counting backend the validation accuracy never improves after epoch 1 or so, so
    patience 1 stops early; inside ``early_stopping(False)`` every epoch runs."""
    from qmu_hw.models.training import early_stopping, early_stopping_on, fit
    from qmu_hw.study.counting import CountingBackends
    from qmu_hw.study.protocol import new_model
    from qmu_hw.study.tasks import prepare_data

    cfg = _cfg(tmp_path)
    prep = prepare_data(cfg, 0)
    be = CountingBackends(cfg).get("exact", None, 0)
    t = prep.tensors

    def epochs_ran():
        model = new_model(prep, be, 0, gradient="backprop", shots=None)
        return fit(model, t["train"], t["val"], epochs=12, patience=1, batch_size=64).epochs_ran

    assert early_stopping_on()
    with early_stopping(False):
        assert not early_stopping_on() and epochs_ran() == 12
    assert early_stopping_on() and epochs_ran() < 12
