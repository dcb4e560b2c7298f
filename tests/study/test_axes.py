"""Study axes over [model]/[data]/[training] keys, and the one plan the runner, the executors
and the estimate share."""

from __future__ import annotations

import csv

import pytest

from qmu_hw.study.config import ConfigError, parse_config
from qmu_hw.study.estimate import estimate_study
from qmu_hw.study.grid import expand
from qmu_hw.study.plan import StudyPlan
from qmu_hw.study.runner import StudyRunner

AXES = {"model": {"n_layers": [1, 2], "entangler": ["ring", "none"]}}


def _doc(out, axes=None, **grid) -> dict:
    return {
        "study": {"name": "axes", "output": str(out), "seeds": [0]},
        "data": {"dataset": "iris", "per_class": 10},
        "training": {"epochs": 2, "patience": 1, "n_oracles": 2},
        "grid": {"scenarios": ["class:0"], "methods": ["identity"], "backends": ["exact", "dm-depol-0.05"],
                 **grid, **(axes or {})},
        # 2 epochs train no working model: the validity gate would (rightly) exclude every
        # pair; this test is about the axes' plumbing, so the gate is set out of the way
        "analysis": {"min_teacher_accuracy": 0.01},
    }


@pytest.fixture(scope="module")
def axis_study(tmp_path_factory):
    from qmu_hw.study.finish import finish_study

    out = tmp_path_factory.mktemp("axes")
    cfg = parse_config(_doc(out, AXES))
    runner = StudyRunner(cfg, log=lambda *_: None)
    summary = runner.run()
    assert summary.failed == 0, summary.failures
    finish_study(out, cfg, store=runner.store)
    return cfg, out, summary, runner.store.rows()


def test_a_2x2_axis_study_has_4x_the_cells_with_the_axis_columns_everywhere(axis_study):
    cfg, out, summary, rows = axis_study
    base = parse_config(_doc(out))
    assert len(expand(cfg)) == 4 * len(expand(base)) == summary.ran == 8
    combos = {(r["model.n_layers"], r["model.entangler"]) for r in rows}
    assert combos == {(1, "ring"), (1, "none"), (2, "ring"), (2, "none")}
    with open(out / "results.csv") as f:
        got = list(csv.DictReader(f))
    assert len(got) == 8 and all(r["model.n_layers"] in ("1", "2") and r["model.entangler"] in ("ring", "none")
                                 for r in got)
    report = (out / "report.md").read_text()
    for n in (1, 2):
        for e in ("ring", "none"):
            assert f"### model.n_layers = {n}, model.entangler = {e}" in report
    # The noise effect along each axis: its own file and report section.
    with open(out / "noise_interaction.csv") as f:
        inter = list(csv.DictReader(f))
    assert {r["axis"] for r in inter} == {"model.n_layers", "model.entangler"}
    assert {r["contrast"] for r in inter} == {"slope", "none - ring"}
    assert "## Does noise sensitivity grow with entangler / n_layers?" in report
    # Teachers and oracles are trained per combination: each has its own checkpoints.
    teachers = sorted((out / "checkpoints").glob("teacher-*.pt"))  # (metadata in .pt.json beside each)
    assert len(teachers) == 4 and len({p.name.rsplit("-", 1)[-1] for p in teachers}) == 4
    # The combinations really differ: a deeper circuit is a different model.
    by = {(r["model.n_layers"], r["model.entangler"], r["backend"]): r["acc_retain_teacher"] for r in rows}
    assert len(set(by.values())) > 1


def test_estimate_and_a_real_run_count_the_same_tasks(axis_study):
    cfg, _, summary, _ = axis_study
    plan = StudyPlan.of(cfg)
    # 4 combinations x 1 seed: 4 teachers; an exact and a same-noise ensemble each: 8.
    assert plan.task_counts() == {"teacher": 4, "oracle": 8, "cell": 8}
    assert summary.tasks == plan.task_counts()
    est = estimate_study(cfg, measure_time=False, progress=False)
    counted = {"teacher": sum(r["cell"].startswith("teacher ") for r in est.cells),
               "oracle": sum(" oracles seed " in r["cell"] for r in est.cells),
               "cell": est.totals["cells"]}
    assert counted == plan.task_counts()
    assert plan.oracle_trainings() == 16  # K = 2 per ensemble


def test_a_resumed_run_counts_only_what_it_did(axis_study):
    cfg, out, _, _ = axis_study
    again = StudyRunner(cfg, log=lambda *_: None).run()
    assert again.skipped == 8 and again.tasks == {"teacher": 0, "oracle": 0, "cell": 0}


def test_a_cell_id_changes_when_an_axis_value_changes(tmp_path):
    a = parse_config(_doc(tmp_path, {"model": {"n_layers": [1, 2]}}))
    b = parse_config(_doc(tmp_path, {"model": {"n_layers": [1, 3]}}))

    def ids(cfg):
        return {(dict(c.axes)["model.n_layers"], c.backend): c.cell_id(cfg) for c in expand(cfg)}

    ia, ib = ids(a), ids(b)
    assert ia[(1, "exact")] == ib[(1, "exact")]  # the same combination keeps its id (and results)
    assert ia[(2, "exact")] != ib[(3, "exact")]
    assert len(set(ia.values())) == len(ia)
    plain = parse_config(_doc(tmp_path))
    assert all("axes" not in c.key() for c in expand(plain))  # studies without axes keep their ids


def test_any_table_key_is_an_axis_checked_like_the_scalar_key(tmp_path):
    from qmu_hw.study.tasks import prepare_data

    doc = _doc(tmp_path, {"data": {"dataset": ["iris", "digits"]}}, train_backend=["exact", "same"])
    del doc["data"]["dataset"]
    cfg = parse_config(doc)
    assert {name for name, _ in cfg.axes} == {"data.dataset", "training.train_backend"}
    models = {v["data.dataset"]: prepare_data(c, 0).model_kwargs["name"] for v, c in cfg.combinations()}
    assert models == {"iris": "hqml-iris", "digits": "hqml-cnn"}  # each dataset gets its own default model
    assert {dict(c.axes)["training.train_backend"] for c in expand(cfg)} == {"exact", "same"}
    with pytest.raises(ConfigError, match=r"\[grid.model\] n_layers: value 0: expected a positive integer"):
        parse_config(_doc(tmp_path, {"model": {"n_layers": [1, 0]}}))
    with pytest.raises(ConfigError, match=r"\[grid.model\] depth: unknown key of \[model\]"):
        parse_config(_doc(tmp_path, {"model": {"depth": [1, 2]}}))
    with pytest.raises(ConfigError, match=r"\[grid.model\] entangler: value 'star': unknown entangler"):
        parse_config(_doc(tmp_path, {"model": {"entangler": ["ring", "star"]}}))
    with pytest.raises(ConfigError, match=r"\[data\] dataset is also set; give one value there or a list here"):
        parse_config(_doc(tmp_path, {"data": {"dataset": ["iris", "digits"]}}))
    del doc["grid"]["train_backend"]
    doc["grid"]["model"] = {"name": ["hqml-iris"]}
    with pytest.raises(ConfigError, match="axis combination data.dataset = 'digits', model.name = 'hqml-iris'"):
        parse_config(doc)


def test_the_depth_axis_changes_the_circuit_and_not_the_head(tmp_path):
    """n_layers varies only the quantum circuit; hqml-iris-deep (a `name` value) changes the head too."""
    from qmu_hw.adapters.registry import get_backend
    from qmu_hw.study.protocol import new_model
    from qmu_hw.study.tasks import prepare_data

    cfg = parse_config(_doc(tmp_path, {"model": {"n_layers": [1, 4], "name": ["hqml-iris", "hqml-iris-deep"]}}))
    be = get_backend("exact")
    heads, circuits = {}, {}
    for v, c in cfg.combinations():
        m = new_model(prepare_data(c, 0), be, 0)
        heads[(v["model.n_layers"], v["model.name"])] = [type(x).__name__ for x in m.head]
        circuits[(v["model.n_layers"], v["model.name"])] = m.quantum.circuit.n_params
    assert heads[(1, "hqml-iris")] == heads[(4, "hqml-iris")]
    assert circuits[(4, "hqml-iris")] > circuits[(1, "hqml-iris")]
    assert heads[(1, "hqml-iris-deep")] != heads[(1, "hqml-iris")]
