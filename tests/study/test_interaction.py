"""The noise effect along a study axis: a planted depth-dependent effect is found, a flat one
is not; categorical axes give contrasts."""

from __future__ import annotations

import numpy as np

from qmu_hw.study.interaction import interaction_effects, report_lines

SEEDS = range(10)


def _rows(effect, axis="model.n_layers", levels=(1, 2, 4), noise=0.01, rng_seed=0, output_shift=lambda level: 0.0):
    """``ga`` and ``identity`` cells: under noise both move by ``output_shift(level)`` (what
    noise does to how any model's outputs look) and ``ga`` by ``effect(level)`` more (what
    noise does to unlearning)."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for seed in SEEDS:
        for level in levels:
            base = 0.5 + 0.02 * seed
            for method, extra in (("ga", effect), ("identity", lambda _: 0.0)):
                noisy = base + output_shift(level) + extra(level) + rng.normal(0, noise)
                for backend, value in (("exact", base + (0.1 if method == "identity" else 0.0)),
                                       ("dm-depol-0.05", noisy + (0.1 if method == "identity" else 0.0))):
                    rows.append({"scenario": "class:0", "method": method, "seed": seed, "backend": backend,
                                 "shots": None, axis: level, "acc_forget": value})
    return rows


def _one(items, contrast="slope", estimand="unlearning", method="ga"):
    (it,) = [i for i in items if i.metric == "acc_forget" and i.contrast == contrast and i.estimand == estimand
             and i.method == method]
    return it


def test_a_planted_depth_dependent_noise_effect_on_unlearning_is_found():
    it = _one(interaction_effects(_rows(lambda layers: 0.05 * layers)))
    assert it.axis == "model.n_layers" and it.n_seeds == 10 and it.backend == "dm-depol-0.05"
    assert abs(it.estimate - 0.05) < 0.01 and it.ci_low > 0 and it.p_holm < 0.01
    lines = report_lines(interaction_effects(_rows(lambda layers: 0.05 * layers)))
    assert lines[0].startswith("\n## Does noise sensitivity grow with n_layers?")


def test_a_flat_noise_effect_is_not():
    it = _one(interaction_effects(_rows(lambda layers: 0.1)))
    assert abs(it.estimate) < 0.01 and it.ci_low < 0 < it.ci_high and it.p_value > 0.05


def test_a_depth_dependent_output_shift_is_an_effect_on_the_model_not_on_unlearning():
    """Noise that moves identity and ga alike along the depth axis changes how the models'
    outputs look, not what unlearning achieves: found for the model, not for unlearning."""
    items = interaction_effects(_rows(lambda layers: 0.0, output_shift=lambda layers: -0.05 * layers))
    model, unlearning = _one(items, estimand="model"), _one(items)
    assert model.ci_high < 0 and model.p_value < 0.01
    assert unlearning.ci_low < 0 < unlearning.ci_high and unlearning.p_value > 0.05
    assert not [line for line in report_lines(items) if "| identity |" in line]


def test_a_categorical_axis_gives_contrasts_with_its_first_level():
    shift = {"all": 0.2, "none": 0.0, "ring": 0.1}
    items = interaction_effects(_rows(lambda e: shift[e], axis="model.entangler", levels=("all", "none", "ring")))
    none, ring = _one(items, "none - all"), _one(items, "ring - all")
    assert abs(none.estimate + 0.2) < 0.02 and none.ci_high < 0
    assert abs(ring.estimate + 0.1) < 0.02 and ring.ci_high < 0


def test_no_axis_no_interaction():
    rows = [{k: v for k, v in r.items() if k != "model.n_layers"} for r in _rows(lambda layers: 0.0, levels=(1,))]
    assert interaction_effects(rows) == [] and report_lines([]) == []


def test_the_interaction_plot_shows_the_effect_on_unlearning_per_level(tmp_path):
    from qmu_hw.study.interaction import plot_interactions

    rows = _rows(lambda layers: 0.05 * layers)
    for r in rows:  # the headline metric of the plot
        r["js_forget"] = r["acc_forget"]
    path = plot_interactions(rows, tmp_path)
    assert path == tmp_path / "noise_interaction.png" and path.stat().st_size > 1000
    # no axis or no identity baseline: nothing to plot
    assert plot_interactions([r for r in rows if r["method"] == "ga"], tmp_path / "none") is None
