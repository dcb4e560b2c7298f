"""Estimates come from the methods' registered cost models, honour per-phase caps and show
progress when slow."""

import pytest

from qmu_hw.study.config import parse_config
from qmu_hw.study.estimate import estimate_study
from qmu_hw.unlearning import register_method
from qmu_hw.unlearning.base import _COSTS, _METHODS
from qmu_hw.unlearning.cost import CostContext, MethodCost


def _cfg(methods, backends=("exact-shots",), shots=(100,), budget=None, training=None):
    data = {"study": {"name": "t", "seeds": [0]}, "data": {"dataset": "iris", "per_class": 12},
            "grid": {"scenarios": ["subset:0.1"], "methods": list(methods), "backends": list(backends),
                     "shots": list(shots)},
            "training": {"epochs": 3, "n_oracles": 1, **(training or {})}}
    if budget:
        data["budget"] = budget
    return parse_config(data)


@pytest.fixture
def toy_method():
    """A method registered by a test, unknown to study/: estimated from its own cost model."""
    calls = []

    def cost(ctx: CostContext) -> MethodCost:
        calls.append(ctx)
        return MethodCost(grad_rows=7 * ctx.sizes.forget, grad_requests=3, select_rows=ctx.sizes.val,
                          select_requests=1, steps=3)

    register_method("toy-forget", cost=cost)(lambda model, data, *, rng, teacher, epochs=3: {"steps": 3})
    yield calls
    _METHODS.pop("toy-forget")
    _COSTS.pop("toy-forget")


def test_a_newly_registered_method_is_estimated_from_its_cost_model(toy_method):
    est = estimate_study(_cfg(["toy-forget"]), measure_time=False)
    ctx = toy_method[0]
    assert ctx.hp == {"epochs": 3} and ctx.n_classes == 3 and ctx.n_blocks == 3 and ctx.quantum_block == 0
    # each alone: the group's shared reference outputs are charged to its first cell
    by = {c["method"]: c for e in (est, estimate_study(_cfg(["identity"]), measure_time=False)) for c in e.cells}
    s = ctx.sizes
    circuits = by["toy-forget"]["circuits"] - by["identity"]["circuits"]
    slots = 2 * 4 * 3 * 2  # parameter shift: 2 rows per weight slot of the 4-qubit, 2-layer ansatz
    assert circuits == 7 * s.forget * (1 + slots) + s.val
    assert by["toy-forget"]["shots_total"] - by["identity"]["shots_total"] == 100 * circuits
    assert est.phases["unlearn/toy-forget"] == 100 * 7 * s.forget
    assert est.phases["unlearn/toy-forget/grad"] == 100 * 7 * s.forget * slots
    assert est.phases["unlearn/toy-forget/select"] == 100 * s.val


def test_per_phase_caps_refuse_like_the_runtime_budget():
    """Today's estimate ignores per_phase: a study whose unlearning needs more shots than its
    cap was estimated as fine and refused only at run time."""
    base = estimate_study(_cfg(["ga"]), measure_time=False)
    need = base.phase_shots("unlearn")
    assert need == sum(v for p, v in base.phases.items() if p.startswith("unlearn/")) > 0
    assert base.phase_shots("unlearn/ga/grad") < need
    tight = _cfg(["ga"], budget={"per_phase": {"unlearn": need - 1}})
    reason = estimate_study(tight, measure_time=False).refusal(tight)
    assert reason and "phase 'unlearn' needs up to" in reason and f"{need - 1:,}" in reason
    roomy = _cfg(["ga"], budget={"per_phase": {"unlearn": need, "eval": base.phase_shots("eval")}})
    assert estimate_study(roomy, measure_time=False).refusal(roomy) is None
    sub = _cfg(["ga"], budget={"per_phase": {"unlearn/ga/select": 1}})
    assert "unlearn/ga/select" in estimate_study(sub, measure_time=False).refusal(sub)


def test_training_on_the_cell_backend_is_charged_to_train_and_oracle():
    cfg = _cfg(["ga", "identity"], training={"train_backend": "same"})
    est = estimate_study(cfg, measure_time=False)
    # The teacher trains on the cell's backend (shots); the reference oracles always train in
    # exact mode (references.py), so they cost circuits but no shots.
    assert est.phase_shots("train") > 0 and est.phase_shots("oracle") == 0
    training = [c for c in est.cells if c["method"] == "(training)"]
    assert [c["cell"].split(" ")[0] for c in training] == ["teacher", "1"]  # teacher + one ensemble (K=1)
    assert all(c["circuits"] > 0 for c in training)
    assert est.totals["cells"] == 2
    exact = estimate_study(_cfg(["ga"]), measure_time=False)
    assert exact.phase_shots("train") == 0  # trained on the exact backend: nothing charged
    capped = _cfg(["ga"], training={"train_backend": "same"}, budget={"per_phase": {"train": 1}})
    assert "phase 'train'" in estimate_study(capped, measure_time=False).refusal(capped)


def test_estimate_shows_progress_on_stderr_when_slow(capsys):
    cfg = _cfg(["ga", "identity"])
    estimate_study(cfg, measure_time=False)
    assert "estimating" not in capsys.readouterr().err  # quick: silent
    estimate_study(cfg, measure_time=True, progress_delay=0.0)
    captured = capsys.readouterr()
    assert "estimating" in captured.err and "estimating" not in captured.out
    estimate_study(cfg, measure_time=False, progress=False, progress_delay=0.0)
    assert "estimating" not in capsys.readouterr().err


def test_estimate_names_no_method_or_model():
    from pathlib import Path

    import qmu_hw.study.estimate as mod
    from qmu_hw.models.hybrid import MODELS
    from qmu_hw.unlearning import method_names

    src = Path(mod.__file__).read_text()
    for name in method_names() + list(MODELS):
        assert f'"{name}"' not in src, name


def test_estimate_counts_both_oracle_ensembles_of_every_noise_level():
    """Issue 11: K exact-trained and K same-noise oracles per (seed, scenario, noise level)."""
    cfg = _cfg(["identity"], backends=("exact", "dm-depol-0.01", "dm-depol-0.05"), shots=("exact",),
               training={"n_oracles": 3})
    est = estimate_study(cfg, measure_time=False)
    ensembles = sorted(c["backend"] for c in est.cells if c["cell"].startswith("3 oracles"))
    assert ensembles == ["dm-depol-0.01", "dm-depol-0.05", "exact"]  # exact shared by every level
    one = next(c for c in est.cells if c["cell"].startswith("3 oracles") and c["backend"] == "exact")
    teacher = next(c for c in est.cells if c["cell"].startswith("teacher"))
    assert one["circuits"] > 0 and teacher["backend"] == "exact"
    fewer = estimate_study(_cfg(["identity"], backends=("exact", "dm-depol-0.01"), shots=("exact",),
                                training={"n_oracles": 3}), measure_time=False)
    assert sum(c["method"] == "(training)" for c in fewer.cells) == 3  # teacher + 2 ensembles
