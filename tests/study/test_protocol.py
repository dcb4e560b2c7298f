import math

import pytest

from qmu_hw import get_backend
from qmu_hw.data.tensors import Split
from qmu_hw.study.protocol import (
    TrainSettings,
    evaluate,
    prepare,
    run_protocol,
    train_oracle,
    train_teacher,
    unlearn_data,
)
from qmu_hw.unlearning import method_defaults, method_names, unlearn

ARMED = [False]


class TestSplitTripwire(Split):
    """A test split that fails loudly if anything reads it while armed."""

    __test__ = False

    def __getattribute__(self, name):
        if name in ("X", "y") and ARMED[0]:
            raise AssertionError(f"the test split's {name} was read during training or selection")
        return super().__getattribute__(name)


def test_training_and_selection_never_read_the_test_split():
    prep = prepare("iris", 0)
    real = prep.tensors["test"]
    prep.tensors["test"] = TestSplitTripwire(real.X, real.y, real.index)
    be = get_backend("exact")
    settings = TrainSettings(epochs=5, patience=3)
    ARMED[0] = True
    try:
        teacher = train_teacher(prep, be, settings)
        sc = prep.scenario("class:1")
        parts = prep.scenario_splits(sc)
        oracle = train_oracle(prep, sc, be, 5, settings)
        data = unlearn_data(parts, 3, sc, 32)
        models = [unlearn(m, teacher, data, **({"epochs": 1} if "epochs" in method_defaults(m) else {}))[0]
                  for m in method_names()]
    finally:
        ARMED[0] = False
    ident = models[method_names().index("identity")]
    row = evaluate(ident, teacher, [oracle], parts, sc)  # evaluation may read it
    # identity returns the teacher: its test accuracy is the teacher's, counted by hand
    from qmu_hw.models import predict_proba

    expected = float((predict_proba(teacher, real.X).argmax(1) == real.y).double().mean())
    assert row["acc_test"] == pytest.approx(expected, abs=1e-12)
    assert expected > 1 / 3  # better than chance on 3 balanced classes after 5 epochs


def test_teacher_trains_on_the_full_training_split_including_forget():
    prep = prepare("iris", 0)
    sc = prep.scenario("subset:0.1")
    train_idx = set(prep.tensors["train"].index.tolist())
    assert set(sc.forget.tolist()) <= train_idx
    assert len(prep.tensors["train"]) == len(sc.retain) + len(sc.forget)


@pytest.fixture(scope="module")
def iris_rows():
    return run_protocol("iris", "exact", seed=0)


def test_full_protocol_on_iris_exact(iris_rows):
    rows = iris_rows
    methods = set(method_names())
    for spec in ("subset:0.02", "class:0"):
        assert {r["method"] for r in rows if r["scenario"] == spec} == methods
    by = {(r["scenario"], r["method"]): r for r in rows}
    # Every metric is present and finite where it must be.
    keys = ["acc_retain", "acc_forget", "acc_test", "uqi", "kl_test", "js_test", "agree_test", "js_forget",
            "js_test_floor_mean", "excess", "within_oracle_spread", "excess_exact", "mia_conf_auc", "mia_pop_auc",
            "mia_pop_tpr@10%fpr", "mia_pop_n_members", "circuits",
            "wall_time_s", "circuits_vs_retrain"]
    for r in rows:
        for k in keys:
            assert k in r and not (isinstance(r[k], float) and math.isnan(r[k]) and k != "circuits_vs_retrain"), (r["method"], k)
    assert by[("class:0", "retrain")]["acc_forget"] <= 0.05
    assert by[("class:0", "eu-k")]["acc_forget"] <= 0.05
    assert by[("class:0", "identity")]["acc_test_teacher"] >= 0.9
    assert by[("subset:0.02", "retrain")]["circuits_vs_retrain"] == 1.0
    # Identity is the teacher: no drop at all.
    assert by[("class:0", "identity")]["forget_drop"] == 0
