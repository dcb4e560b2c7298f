import pytest
import torch

from qmu_hw import InvalidRequestError, get_backend
from qmu_hw.models.training import evaluate_accuracy, predict_proba
from qmu_hw.study.protocol import TrainSettings, prepare, train_teacher, transfer, unlearn_data
from qmu_hw.unlearning import BASELINES, CLASSICAL, PAPER_METHODS, method_names, unlearn

FAST = {"retrain": {"epochs": 5}, "certified": {"epochs": 3}, "q-mul": {"epochs": 3}}


def _fast(m):
    hp = {"epochs": 2} if m not in ("identity", "ssd", "fisher") else {}
    hp.update(FAST.get(m, {}))
    return hp


def test_registry_has_every_method():
    assert set(PAPER_METHODS) | set(BASELINES) | set(CLASSICAL) == set(method_names())
    assert len(PAPER_METHODS) == 11


@pytest.mark.parametrize("method", sorted(set(PAPER_METHODS) | set(BASELINES) | set(CLASSICAL)))
@pytest.mark.parametrize("spec", ["subset:0.05", "class:0"])
def test_no_method_mutates_the_teacher(iris_setup, method, spec):
    _, teacher, scen = iris_setup
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    model, report = unlearn(method, teacher, scen[spec][1], seed=1, **_fast(method))
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model is not teacher and model.quantum.backend is teacher.quantum.backend
    assert report.method == method and report.wall_time_s >= 0
    if method == "ssd" and report.details["dampened_parameters"] == 0:
        return  # SSD legitimately leaves a model alone when no weight is forget-specific
    if method != "identity":
        changed = any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), before.values(), strict=True))
        assert changed, f"{method} returned the teacher's weights unchanged"


def test_unknown_method_and_hyperparameter(iris_setup):
    _, teacher, scen = iris_setup
    with pytest.raises(InvalidRequestError, match="unknown unlearning method 'forgetti'"):
        unlearn("forgetti", teacher, scen["class:0"][1])
    with pytest.raises(InvalidRequestError, match=r"no hyperparameter\(s\) \['temperature'\]; valid"):
        unlearn("ga", teacher, scen["class:0"][1], temperature=2.0)


def test_loops_cover_retain_and_cycle_forget(iris_setup):
    _, teacher, scen = iris_setup
    data = scen["subset:0.05"][1]
    _, rep = unlearn("neggrad+", teacher, data, epochs=3, patience=100)
    per_epoch = -(-len(data.retain) // data.batch_size)
    # The paper's zip() stopped after ceil(|forget|/bs) = 1 batch per epoch.
    assert rep.steps == 3 * per_epoch and per_epoch > 1


def test_scrub_alternates_max_and_min_steps(iris_setup):
    _, teacher, scen = iris_setup
    data = scen["subset:0.05"][1]
    _, rep = unlearn("scrub", teacher, data, epochs=4, max_steps=2)
    f = -(-len(data.forget) // data.batch_size)
    r = -(-len(data.retain) // data.batch_size)
    assert rep.steps == 2 * f + 4 * r


def test_scrub_rewind_really_rewinds(iris_setup):
    _, teacher, scen = iris_setup
    data = scen["subset:0.05"][1]
    rewound, rep = unlearn("scrub+r", teacher, data, seed=3, epochs=6, max_steps=3, lr=0.05)
    epoch = rep.details["rewound_to_epoch"]
    replay, _ = unlearn("scrub", teacher, data, seed=3, epochs=epoch, max_steps=3, lr=0.05)
    for a, b in zip(rewound.state_dict().values(), replay.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-10)
    full, _ = unlearn("scrub", teacher, data, seed=3, epochs=6, max_steps=3, lr=0.05)
    if epoch < 6:
        assert any(not torch.allclose(a, b) for a, b in zip(rewound.state_dict().values(),
                                                            full.state_dict().values(), strict=True))


def test_qmul_pulls_toward_the_most_similar_class(iris_setup):
    _, teacher, scen = iris_setup
    data = scen["class:0"][1]
    model, rep = unlearn("q-mul", teacher, data, epochs=10, patience=100)
    target = torch.tensor(rep.details["targets"])
    assert (target != 0).all()
    before = (predict_proba(teacher, data.forget.X).argmax(1) == target).float().mean()
    after = (predict_proba(model, data.forget.X).argmax(1) == target).float().mean()
    assert after > before and after > 0.5


def test_fisher_ewc_importance_comes_from_the_forget_set_as_the_paper(iris_setup, monkeypatch):
    import qmu_hw.unlearning.fisher as fisher_mod

    _, teacher, scen = iris_setup
    data = scen["subset:0.05"][1]
    seen = []
    real = fisher_mod.diagonal_fisher
    monkeypatch.setattr(fisher_mod, "diagonal_fisher", lambda m, split, bs, rng: seen.append(split) or real(m, split, bs, rng))
    unlearn("fisher-ewc", teacher, data, epochs=1)
    unlearn("fisher-ewc", teacher, data, epochs=1, importance="retain")
    assert seen == [data.forget, data.retain]
    with pytest.raises(InvalidRequestError, match="importance must be 'forget' or 'retain'"):
        unlearn("fisher-ewc", teacher, data, epochs=1, importance="test")


def test_cf_k_and_eu_k_touch_only_the_last_blocks(iris_setup):
    _, teacher, scen = iris_setup
    data = scen["class:0"][1]
    for method in ("cf-k", "eu-k"):
        model, _ = unlearn(method, teacher, data, k=1, epochs=2)
        blocks_t = dict(teacher.blocks())
        for name, block in model.blocks():
            same = all(torch.equal(a, b) for a, b in zip(block.parameters(), blocks_t[name].parameters(), strict=True))
            assert same == (name != model.blocks()[-1][0]), (method, name)
        assert all(p.requires_grad for p in model.parameters())


def test_eu_k_forgets_a_class(iris_setup):
    _, teacher, scen = iris_setup
    data = scen["class:0"][1]
    model, _ = unlearn("eu-k", teacher, data, k=1, epochs=10)
    assert evaluate_accuracy(model, data.forget) < 0.1
    assert evaluate_accuracy(model, data.retain) > 0.6


@pytest.mark.parametrize("method", sorted(set(PAPER_METHODS) | set(BASELINES) | set(CLASSICAL)))
def test_methods_run_with_parameter_shift_on_a_sampled_backend(method):
    prep = prepare("iris", 1, per_class=6)
    be = get_backend("exact-shots", shots=64, seed=0)
    teacher = train_teacher(prep, get_backend("exact"), TrainSettings(epochs=2, patience=5))
    noisy = transfer(teacher, prep, be, 1, gradient="parameter-shift", shots=64)
    sc = prep.scenario("class:1")
    data = unlearn_data(prep.scenario_splits(sc), 3, sc, 8)
    model, rep = unlearn(method, noisy, data, **{k: 1 for k in _fast(method)})
    assert model.quantum.gradient == "parameter-shift" and model.quantum.shots == 64
    if method != "identity":
        assert rep.shots > 0 and rep.submissions > 0
        assert be.ledger.total_shots(f"unlearn/{method}") == rep.shots


def test_ssd_dampens_class_specific_weights(iris_setup):
    _, teacher, scen = iris_setup
    model, rep = unlearn("ssd", teacher, scen["class:0"][1], alpha=2.0)
    assert rep.details["dampened_parameters"] > 0
    assert evaluate_accuracy(model, scen["class:0"][1].forget) < evaluate_accuracy(teacher, scen["class:0"][1].forget)
