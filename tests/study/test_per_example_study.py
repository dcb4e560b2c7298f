"""[evaluation.per_example] end to end: populations as study tasks, their outputs in the
store, the per-example columns in results.csv, per_example.csv, the per-example noise
effects in noise_effect.csv, the report section, resume without retraining, the estimate."""

from __future__ import annotations

import csv
import sqlite3

import pytest

from qmu_hw.metrics import catalog
from qmu_hw.study.config import ConfigError, parse_config
from qmu_hw.study.estimate import estimate_study
from qmu_hw.study.finish import finish_study
from qmu_hw.study.plan import StudyPlan
from qmu_hw.study.runner import StudyRunner

N_MODELS = 8


def _doc(out, **evaluation) -> dict:
    doc = {
        "study": {"name": "pe", "output": str(out), "seeds": [0]},
        "data": {"dataset": "iris", "per_class": 10},
        "training": {"epochs": 2, "patience": 1, "n_oracles": 2},
        "grid": {"scenarios": ["class:0"], "methods": ["identity", "retrain"], "backends": ["exact", "dm-depol-0.01"]},
    }
    if evaluation:
        doc["evaluation"] = evaluation
    return doc


def _csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("per_example")
    cfg = parse_config(_doc(out, per_example={"n_models": N_MODELS}))
    runner = StudyRunner(cfg, log=lambda *_: None)
    summary = runner.run()
    assert summary.failed == 0 and not summary.failures, summary.failures
    finish_study(out, cfg, store=runner.store)
    return cfg, out, summary, runner


def test_the_plan_counts_shared_retrained_populations_once(study):
    cfg, _, summary, _ = study
    counts = StudyPlan.of(cfg).task_counts()
    # 2 backend arms x (N retrained, shared by both methods, + N runs of each of 2 methods)
    assert counts["population"] == 2 * (N_MODELS + 2 * N_MODELS)
    assert summary.tasks == counts


def test_results_csv_has_the_per_example_columns_and_identity_is_detected(study):
    _, out, _, _ = study
    rows = _csv(out / "results.csv")
    assert len(rows) == 4
    needed = [c for m in catalog.metrics() if m.requires == "evaluation.per_example" for c in m.columns()]
    assert {"epsilon_median", "epsilon_p90", "forgetting_score", "ulira_balanced_accuracy"} <= set(needed)
    for r in rows:
        assert all(r.get(c, "") != "" for c in needed), (r["method"], r["backend"])
        assert any(k.startswith("ulira_tpr_at_fpr_") for k in r)
    by = {(r["method"], r["backend"]): r for r in rows}
    for backend in ("exact", "dm-depol-0.01"):
        identity, retrain = by[("identity", backend)], by[("retrain", backend)]
        assert float(identity["epsilon_median"]) > float(retrain["epsilon_median"])
        assert float(retrain["forgetting_score"]) > float(identity["forgetting_score"])


def test_per_example_csv_pairs_the_same_examples_on_both_backends(study):
    _, out, _, runner = study
    rows = _csv(out / "per_example.csv")
    ids = {}
    for r in rows:
        ids.setdefault((r["method"], r["backend"]), []).append(int(r["example_id"]))
        assert int(r["n_models"]) == N_MODELS
    assert set(ids) == {(m, b) for m in ("identity", "retrain") for b in ("exact", "dm-depol-0.01")}
    first = ids[("identity", "exact")]
    assert first and all(v == first for v in ids.values())
    assert len(runner.store.per_example_rows()) == len(rows)


def test_noise_effect_csv_gets_example_rows_with_the_unit_column(study):
    _, out, _, _ = study
    rows = _csv(out / "noise_effect.csv")
    units = {r["unit"] for r in rows}
    assert units == {"seed", "example"}
    ex = [r for r in rows if r["unit"] == "example"]
    assert {(r["method"], r["estimand"]) for r in ex} == {("identity", "model"), ("retrain", "model"),
                                                         ("retrain", "unlearning")}
    assert all(r["backend"] == "dm-depol-0.01" and r["metric"] == "epsilon" and int(r["n_seeds"]) > 0 for r in ex)


def test_the_report_has_the_per_example_section_and_ecdf_plots(study):
    _, out, _, _ = study
    report = (out / "report.md").read_text()
    assert "## Per-example forgetting quality" in report
    assert "ε̃ retrain | ε̃ identity" in report
    assert report.count("`identity` is detected") == 2 and "NOT detected" not in report  # one per backend arm
    for m in ("identity", "retrain"):
        assert (out / f"per_example_ecdf_{m}.png").stat().st_size > 0
        assert f"per_example_ecdf_{m}.png" in report


def test_a_rerun_trains_no_population_model_again(study):
    cfg, _, _, _ = study
    again = StudyRunner(cfg, log=lambda *_: None).run()
    assert again.skipped == 4 and again.tasks == {"teacher": 0, "oracle": 0, "cell": 0, "population": 0}


def test_a_killed_population_run_resumes_without_training_a_model_twice(tmp_path, monkeypatch):
    from qmu_hw.study import populations

    cfg = parse_config(_doc(tmp_path, per_example={"n_models": N_MODELS}))
    total = StudyPlan.of(cfg).task_counts()["population"]
    real, trained = populations.run_model_task, []

    def dies_after_ten(task, state=None):
        if len(trained) == 10:
            raise KeyboardInterrupt  # the driver is killed between two population models
        trained.append(task.key)
        return real(task, state)

    monkeypatch.setattr(populations, "run_model_task", dies_after_ten)
    with pytest.raises(KeyboardInterrupt):
        StudyRunner(cfg, log=lambda *_: None).run()
    monkeypatch.setattr(populations, "run_model_task", real)
    runner = StudyRunner(cfg, log=lambda *_: None)
    assert len(runner.store.population_keys()) == 10
    resumed = runner.run()
    assert resumed.tasks["population"] == total - 10  # the 10 stored models are not trained again
    assert resumed.tasks["cell"] == 0  # the cells had finished before the kill
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM population_outputs").fetchone()[0] == total
        assert db.execute("SELECT COUNT(*) FROM populations").fetchone()[0] == 4


def test_a_partial_run_then_the_rest_trains_each_model_once(tmp_path):
    cfg = parse_config(_doc(tmp_path, per_example={"n_models": N_MODELS}))
    total = StudyPlan.of(cfg).task_counts()["population"]
    first = StudyRunner(cfg, log=lambda *_: None).run(max_cells=1)
    assert first.tasks["population"] == 2 * N_MODELS  # the cell's retrained and method populations
    rest = StudyRunner(cfg, log=lambda *_: None).run()
    assert rest.tasks["cell"] == 3 and first.tasks["population"] + rest.tasks["population"] == total


def test_the_estimate_counts_the_population_models_of_the_plan(tmp_path):
    cfg = parse_config(_doc(tmp_path, per_example={"n_models": 16}))
    est = estimate_study(cfg, measure_time=False, progress=False)
    counted = sum(r.get("population_models", 0) for r in est.cells)
    assert counted == StudyPlan.of(cfg).task_counts()["population"] == 2 * 3 * 16
    without = estimate_study(parse_config(_doc(tmp_path)), measure_time=False, progress=False)
    assert est.totals["circuits"] > without.totals["circuits"]
    assert "population" not in StudyPlan.of(parse_config(_doc(tmp_path))).task_counts()


def test_n_models_below_8_is_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_config(_doc(tmp_path, per_example={"n_models": 4}))
    msg = str(err.value)
    assert "\n" not in msg and "[evaluation.per_example] n_models" in msg and "≥ 8, got 4" in msg
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config(_doc(tmp_path, per_example={"n_model": 8}))


def test_the_population_size_enters_the_digest_and_absence_keeps_old_digests(tmp_path):
    plain = parse_config(_doc(tmp_path))
    a = parse_config(_doc(tmp_path, per_example={"n_models": 8}))
    b = parse_config(_doc(tmp_path, per_example={"n_models": 16}))
    default = parse_config(_doc(tmp_path, per_example={}))
    assert default.per_example.n_models == 32
    assert len({plain.digest(), a.digest(), b.digest(), default.digest()}) == 4
    assert plain.per_example is None and not StudyPlan.of(plain).population_tasks


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_pool_gives_the_same_per_example_results(study, tmp_path, executor):
    if executor == "ray":
        pytest.importorskip("ray")
    cfg, _, _, runner = study
    pooled = parse_config(_doc(tmp_path, per_example={"n_models": N_MODELS}))
    summary = StudyRunner(pooled, log=lambda *_: None).run(workers=2, executor=executor)
    assert summary.tasks["population"] == StudyPlan.of(pooled).task_counts()["population"]
    inline = {(r["method"], r["backend"]): r for r in runner.store.rows()}
    for r in StudyRunner(pooled, log=lambda *_: None).store.rows():
        ref = inline[(r["method"], r["backend"])]
        for c in ("epsilon_median", "epsilon_p90", "forgetting_score", "ulira_balanced_accuracy"):
            assert r[c] == pytest.approx(ref[c]), c


def test_an_undetected_identity_is_said_first_in_the_findings():
    from qmu_hw.study.per_example_outputs import _headline

    text = "# t\n\n## Findings\n\n- seed-level finding\n"
    section = ["## Per-example", "- class:0, exact@exact: `identity` (no unlearning) is NOT detected by the ...",
               "- class:0, dm@exact: `identity` is detected (median ε 0.9 ...)"]
    out = _headline(text, section)
    assert out.index("is NOT detected") < out.index("- seed-level finding")
    assert "is detected (median" not in out
    assert _headline(text, section[2:]) == text


def test_every_axis_combination_has_its_own_populations(tmp_path):
    doc = _doc(tmp_path, per_example={"n_models": N_MODELS})
    doc["grid"]["model"] = {"n_layers": [1, 2]}
    cfg = parse_config(doc)
    assert all(c.per_example == cfg.per_example for _, c in cfg.combinations())
    plan = StudyPlan.of(cfg)
    assert plan.task_counts()["population"] == 2 * 2 * (N_MODELS + 2 * N_MODELS)
    # a deeper circuit is another model: no population model is shared across combinations
    by_axes = {}
    for key, cell in plan.population_owner.items():
        by_axes.setdefault(cell.axes, set()).add(key)
    a, b = by_axes.values()
    assert not a & b
