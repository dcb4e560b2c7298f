"""Populations of retrained and unlearned models as independent tasks, their per-example
outputs, resume by task key, and the per-example noise-effect pairing."""

import pickle

import numpy as np
import pytest

from qmu_hw.core.exceptions import InvalidRequestError
from qmu_hw.metrics.per_example import forgetting_score
from qmu_hw.study.per_example_effect import example_noise_effects, pair_by_example, per_example_rows
from qmu_hw.study.populations import (
    PerExampleSettings,
    PopulationSpec,
    build_populations,
    collect,
    population_metrics,
    population_tasks,
    run_model_task,
    unique_tasks,
)
from qmu_hw.study.protocol import TrainSettings

QUICK = TrainSettings(epochs=2, patience=1)  # the plumbing, not the science


def spec(method="identity", **kw):
    return PopulationSpec("iris", 0, "subset:0.1", method, settings=QUICK, **kw)


def test_n_models_is_checked():
    assert PerExampleSettings().n_models == 32
    for bad in (7, 0, 8.0, True, "32"):
        with pytest.raises(InvalidRequestError, match=r"\[evaluation.per_example\] n_models: expected an integer ≥ 8"):
            PerExampleSettings(bad)


def test_spec_refuses_unknown_method_and_scenario():
    with pytest.raises(InvalidRequestError, match="unknown unlearning method"):
        spec("no-such-method")
    with pytest.raises(InvalidRequestError, match="unknown scenario"):
        PopulationSpec("iris", 0, "half", "identity")
    with pytest.raises(InvalidRequestError, match="billed/cloud backend"):
        spec("identity", backend="ibm-brisbane", shots=1024)


def test_tasks_keys_seeds_and_sharing():
    tasks = population_tasks(spec("identity"), 8)
    assert len(tasks) == 16 and len({t.key for t in tasks}) == 16 and len({t.seed for t in tasks}) == 16
    other = population_tasks(spec("ga", hyperparameters={"epochs": 1}), 8)
    # retrained models do not depend on the method: every method shares one population
    assert [t.key for t in tasks if t.kind == "retrained"] == [t.key for t in other if t.kind == "retrained"]
    assert not {t.key for t in tasks if t.kind == "unlearned"} & {t.key for t in other if t.kind == "unlearned"}
    # ... but they do depend on the backend arm they are evaluated on
    noisy = population_tasks(spec("identity", backend="exact-shots", shots=256), 8)
    assert not {t.key for t in tasks} & {t.key for t in noisy}
    assert pickle.loads(pickle.dumps(tasks[0])) == tasks[0]  # executors ship tasks to workers
    both = unique_tasks([spec("identity"), spec("ga", hyperparameters={"epochs": 1})], 8)
    assert len(both) == 8 + 2 * 8  # one shared retrained population, two method populations


def test_one_model_task_returns_per_example_outputs():
    task = population_tasks(spec("ga", hyperparameters={"epochs": 1}), 8)[8]
    assert task.kind == "unlearned"
    out = run_model_task(task)
    assert out.forget_phi.dtype == np.float64 and out.forget_phi.shape == out.forget_ids.shape
    assert out.calibration_phi.shape == out.calibration_ids.shape and out.calibration_ids.size > 0
    assert not set(out.forget_ids) & set(out.calibration_ids)
    assert np.all(np.isfinite(out.forget_phi)) and 0 <= out.acc_retain <= 1
    again = pickle.loads(pickle.dumps(out))  # plain data back to the driver
    np.testing.assert_array_equal(again.forget_phi, out.forget_phi)
    rec = type(out).from_record(out.as_record())
    np.testing.assert_array_equal(rec.forget_phi, out.forget_phi)


def test_populations_resume_without_training_a_model_twice():
    s = spec("identity")
    ran = []

    def counting_map(fn, tasks, args):
        for t, a in zip(tasks, args, strict=True):
            ran.append(t.key)
            yield fn(t, a)

    tasks = population_tasks(s, 8)
    # a "killed" run: only the first 5 models finished and were stored
    partial = {t.key: run_model_task(t) for t in tasks[:5]}
    pops, have = build_populations(s, 8, map_fn=counting_map, done=partial)
    assert sorted(ran) == sorted(t.key for t in tasks[5:])  # the other 11 ran, each once
    assert len(have) == 16
    assert pops.unlearned.shape == pops.retrained.shape == (8, pops.forget_ids.size)
    # identity is the teacher every time: one point, whatever the seed
    assert np.ptp(pops.unlearned, axis=0).max() == 0.0
    ran.clear()
    build_populations(s, 8, map_fn=counting_map, done=have)
    assert ran == []
    row, eps = population_metrics(pops)
    assert eps.shape == (pops.forget_ids.size,)
    assert {"epsilon_median", "epsilon_p90", "forgetting_score", "challenge_score", "epsilon_calibration_median",
            "ulira_balanced_accuracy"} <= set(row)
    assert row["epsilon_median"] == pytest.approx(np.median(eps))


def test_collect_refuses_outputs_of_different_forget_sets():
    mine = population_tasks(spec(), 8)
    other = PopulationSpec("iris", 1, "subset:0.1", "identity", settings=QUICK)  # another data seed
    outs = [run_model_task(t) for t in (mine[0], mine[1], mine[8])]
    outs.append(run_model_task(population_tasks(other, 8)[9]))
    assert collect(outs[:3] + [run_model_task(mine[9])]).unlearned.shape[0] == 2
    with pytest.raises(InvalidRequestError, match="other examples"):
        collect(outs)


def _rows(method, backend, shots, eps, ids=(11, 12, 13, 14, 15, 16, 17)):
    return per_example_rows("class:0", method, backend, shots, 0, list(ids), eps, 8)


def test_pairing_uses_the_same_example_ids_on_both_backends():
    ids = (11, 12, 13, 14, 15, 16, 17)
    ex = _rows("ga", "exact", None, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6], ids)
    # the noisy arm lists the same examples in another order: pairing is by id, not position
    order = [6, 5, 4, 3, 2, 1, 0]
    no_eps = [e + 1.0 for e in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)]
    no = _rows("ga", "dm-depol-0.01", 1024, [no_eps[i] for i in order], [ids[i] for i in order])
    (row,) = example_noise_effects(ex + no)
    assert row["unit"] == "example" and row["estimand"] == "model" and row["n_units"] == 7
    assert row["delta"] == pytest.approx(1.0)  # every example moved by exactly +1
    assert row["p_value"] == pytest.approx(2 * 0.5 ** 7) == row["min_p"]  # 7 of 7 up: the smallest p
    assert row["ci_low"] == pytest.approx(1.0) and row["ci_high"] == pytest.approx(1.0)
    units, a, b = pair_by_example({(0, 11): 0.1, (0, 12): 0.2}, {(0, 12): 0.5, (0, 11): 0.3})
    assert units == [(0, 11), (0, 12)] and a.tolist() == [0.1, 0.2] and b.tolist() == [0.3, 0.5]
    # other ids on the noisy arm (another forget set): refused, naming the ids
    bad = _rows("ga", "dm-depol-0.01", 1024, no_eps, (11, 12, 13, 14, 15, 16, 99))
    with pytest.raises(InvalidRequestError, match="99"):
        example_noise_effects(ex + bad)


def test_difference_in_differences_against_identity():
    eps_ex, eps_no = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    rows = (_rows("ga", "exact", None, eps_ex) + _rows("ga", "dm-depol-0.01", 1024, eps_no)
            + _rows("identity", "exact", None, [2.0] * 7) + _rows("identity", "dm-depol-0.01", 1024, [2.2] * 7))
    out = {(r["method"], r["estimand"]): r for r in example_noise_effects(rows)}
    assert out[("ga", "model")]["delta"] == pytest.approx(0.2)
    assert out[("ga", "unlearning")]["delta"] == pytest.approx(0.0)  # noise moved identity just as much
    assert out[("ga", "unlearning")]["p_value"] == 1.0
    assert ("identity", "unlearning") not in out


@pytest.mark.slow
def test_identity_scores_a_higher_median_epsilon_than_retrain():
    """n_models = 8, exact backend, Iris class:0, the protocol's default training."""
    eps = {}
    done: dict = {}
    for method in ("identity", "retrain"):
        s = PopulationSpec("iris", 0, "class:0", method)
        pops, done = build_populations(s, 8, done=done)  # one retrained population for both
        summary, _ = forgetting_score(pops.unlearned, pops.retrained)
        eps[method] = summary.epsilon_median
    assert len(done) == 24  # 8 retrained (shared) + 8 identity + 8 retrain runs
    assert eps["identity"] > eps["retrain"]
    assert eps["identity"] > 0.5 and eps["retrain"] == 0.0
