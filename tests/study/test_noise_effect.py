"""Paired noise effects (both estimands), the validity gate, slopes, multiplicity and the
Findings they produce, on synthetic results rows (fast)."""

import csv
import math

import numpy as np
import pytest

from qmu_hw.metrics.stats import sign_flip_ci, sign_flip_p
from qmu_hw.study.config_tables import AnalysisTable
from qmu_hw.study.findings import criterion_lines, findings_lines
from qmu_hw.study.noise_effect import (
    COLUMNS,
    analyse,
    exclusions,
    ladder_slopes,
    metric_columns,
    paired_effects,
    write_noise_effects,
)
from qmu_hw.study.report import build_report
from qmu_hw.study.store import ResultsStore

METHODS = ("identity", "retrain", "ga", "scrub")
NOISY = "dm-depol-0.01"


def _row(scenario, method, seed, backend, shots, value=0.2, **extra):
    """A finished cell with every metric the report and the effects read; a working teacher
    and oracles (accuracy 0.9 of 3 classes) unless ``extra`` says otherwise."""
    r = {"dataset": "iris", "scenario": scenario, "method": method, "seed": seed, "backend": backend,
         "shots": shots, "cost_shots": 0, "cost_circuits": 10, "acc_forget_oracle": 0.0, "n_oracles": 5.0,
         "mia_pop_n_members": 10.0, "mia_pop_n_nonmembers": 12.0, "acc_test_forgotten": 0.0,
         "acc_test_teacher": 0.9, "acc_retain_oracle": 0.9, "n_classes": 3.0}
    for _, _, col in metric_columns():
        r[col] = value
    return r | extra


def _study(seeds=8, shift=None, planted=None, backends=(NOISY,), methods=METHODS, **extra):
    """exact + ``backends`` @ 1024. ``shift(seed)``: added to every method's noisy value
    (a pure output-scale effect); ``planted[method](seed)``: added to that method's noisy
    js_forget only. Per-seed jitter keeps the per-seed Δ from being constant."""
    rows = []
    for seed in range(seeds):
        for m in methods:
            base = 0.1 + 0.01 * seed + 0.003 * METHODS.index(m)
            rows.append(_row("class:0", m, seed, "exact", None, base, **extra))
            for b in backends:
                v = base + (shift(seed) if shift else 0.0)
                r = _row("class:0", m, seed, b, 1024, v, **extra)
                if planted and m in planted:
                    r["js_forget"] += planted[m](seed)
                rows.append(r)
    return rows


def _by(effects, **kw):
    out = [e for e in effects if all(getattr(e, k) == v for k, v in kw.items())]
    assert len(out) == 1, (kw, len(out))
    return out[0]


def test_both_estimands_match_a_hand_computation():
    rows = _study(seeds=6, planted={"ga": lambda s: 0.02 + 0.002 * s, "identity": lambda s: 0.01})
    eff = paired_effects(rows)
    m = _by(eff, method="ga", estimand="model", metric="js_forget", reference="same", backend=NOISY)
    d_model = np.array([0.02 + 0.002 * s for s in range(6)])
    assert m.delta == pytest.approx(d_model.mean()) and m.n_seeds == 6 and m.baseline == ""
    assert m.p_value == pytest.approx(sign_flip_p(d_model)) and m.min_p == pytest.approx(2 ** -5)
    assert (m.ci_low, m.ci_high) == pytest.approx(sign_flip_ci(d_model))
    u = _by(eff, method="ga", estimand="unlearning", baseline="identity", metric="js_forget", reference="same",
            backend=NOISY)
    d_unl = d_model - 0.01  # identity moved by 0.01 under noise: the method's own part is the rest
    assert u.delta == pytest.approx(d_unl.mean())
    assert u.exact_mean == pytest.approx(np.mean([0.006, 0.006, 0.006, 0.006, 0.006, 0.006]))
    assert u.p_value == pytest.approx(sign_flip_p(d_unl))
    # relative to retrain (which ran), a separate baseline; identity has no unlearning row vs itself
    r = _by(eff, method="ga", estimand="unlearning", baseline="retrain", metric="js_forget", reference="same",
            backend=NOISY)
    assert r.delta == pytest.approx(d_model.mean())
    assert not [e for e in eff if e.method == "identity" and e.baseline == "identity"]


def test_constant_deltas_give_the_smallest_attainable_p_never_zero():
    rows = _study(seeds=3, shift=lambda s: 0.556)
    e = _by(paired_effects(rows), method="ga", estimand="model", metric="acc_forget", reference="none")
    assert e.delta == pytest.approx(0.556) and e.p_value == 0.25 and e.p_adj >= 0.25
    assert math.isinf(e.ci_low) and math.isinf(e.ci_high)  # n = 3 cannot bound it


def _findings_text(rows, tmp_path, **kw):
    effects, slopes = write_noise_effects(tmp_path, rows, **kw)
    text = build_report(tmp_path, rows, effects=effects, slopes=slopes, analysis=kw.get("analysis")).read_text()
    return effects, text.split("## Findings", 1)[1].split("\n## ", 1)[0]


def test_a_planted_unlearning_effect_appears_as_delta_unlearning(tmp_path):
    """scrub differs from identity only under noise: the primary endpoint finds it."""
    rows = _study(planted={"scrub": lambda s: 0.04 + 0.003 * (s % 3)})
    effects, found = _findings_text(rows, tmp_path)
    e = _by(effects, method="scrub", estimand="unlearning", baseline="identity", metric="js_forget",
            reference="same")
    assert e.adjustment == "holm-primary" and e.p_adj < 0.05
    primary = found.split("### ", 1)[0]
    assert "noise changes scrub's forget-set JS to the same-noise oracles relative to identity by +0.043" in primary
    assert "95 % CI [" in primary and "n = 8 seeds" in primary and "Holm across methods" in primary
    assert "ga's forget-set JS" not in primary.split("Not significant")[0]  # nothing planted for ga
    assert "±" not in found


def test_a_pure_output_scale_effect_is_not_an_unlearning_finding(tmp_path):
    """Every method and identity shift equally under noise: Δ_model, never Δ_unlearning."""
    rows = _study(shift=lambda s: -0.1 - 0.01 * (s % 4))
    effects, found = _findings_text(rows, tmp_path)
    model = [e for e in effects if e.estimand == "model" and e.metric == "js_forget" and e.reference == "same"]
    assert all(e.p_adj < 0.05 and e.delta < -0.1 for e in model) and len(model) == 4
    unl = [e for e in effects if e.estimand == "unlearning"]
    assert unl and all(e.delta == 0.0 and e.p_value == 1.0 for e in unl)
    head, model_section = found.split("### Noise effects on the model", 1)
    assert "noise changes" not in head  # no Δ_unlearning sentence anywhere before the model section
    assert "Not significant for any method" in head or "Not significant (p_adj" in head
    assert "identity's forget-set JS to the same-noise oracles moves by" in model_section


def test_rounding_residues_of_equal_shifts_are_no_effect():
    """(0.1 + 0.1) − (0.2 + 0.1) − (0.1 − 0.2) = −2.8e-17 in floating point: eight such
    residues of one sign would otherwise give the smallest attainable p."""
    rows = []
    for seed in range(8):
        for m, v in (("identity", 0.2), ("ga", 0.1)):
            rows += [_row("class:0", m, seed, "exact", None, v), _row("class:0", m, seed, NOISY, 1024, v + 0.1)]
    e = _by(paired_effects(rows), method="ga", estimand="unlearning", baseline="identity", metric="js_forget",
            reference="same")
    assert e.delta == 0.0 and e.p_value == 1.0


def test_a_dead_teacher_cell_is_excluded_with_its_reason(tmp_path):
    rows = _study(backends=(NOISY, "dm-depol-0.05"), planted={"scrub": lambda s: 0.04})
    for r in rows:
        if r["backend"] == "dm-depol-0.05":
            r["acc_test_teacher"] = 0.333  # chance for 3 classes; halfway to exact 0.9 is 0.617
    effects, found = _findings_text(rows, tmp_path)
    dead = [e for e in effects if e.backend == "dm-depol-0.05"]
    assert dead and all(not e.valid and e.n_seeds == 0 and e.n_excluded == 8 and math.isnan(e.p_adj) for e in dead)
    assert "teacher at chance on dm-depol-0.05 (test accuracy 0.333 < 0.617)" in dead[0].reason
    live = [e for e in effects if e.backend == NOISY]
    assert all(e.valid and e.n_excluded == 0 for e in live)
    assert "class:0 on dm-depol-0.05 @ 1024: 8 of 8 seeds; teacher at chance (test accuracy 0.333 < 0.617)" in found
    assert "On dm-depol-0.05" not in found  # no finding from the dead rung
    with open(tmp_path / "noise_effect.csv") as f:
        flagged = [r for r in csv.DictReader(f) if r["backend"] == "dm-depol-0.05"]
    assert flagged and all(r["valid"] == "False" and "teacher at chance" in r["reason"] for r in flagged)
    # an explicit threshold replaces the default, and the oracles are judged too
    for r in rows:
        if r["backend"] == NOISY and r["seed"] == 0:
            r["acc_retain_oracle"] = 0.4
    ex = exclusions(rows, AnalysisTable(min_teacher_accuracy=0.5))
    assert sorted((x.backend, x.n_excluded) for x in ex) == [("dm-depol-0.01", 1), ("dm-depol-0.05", 8)]
    assert next(x for x in ex if x.backend == NOISY).reasons == ("same-noise oracles at chance (retain accuracy 0.400 < 0.500)",)


def test_slopes_use_every_rung_including_exact_and_skip_two_levels():
    ladder = ("dm-depol-0.001", "dm-depol-0.01", "dm-depol-0.02")
    rows = []
    for seed in range(8):
        for m in ("identity", "ga"):
            rows.append(_row("class:0", m, seed, "exact", None, 0.1 + 0.01 * seed))
            for b in ladder:
                p1 = float(b.split("-")[-1])
                gain = (3.0 + 0.1 * seed) if m == "ga" else 1.0
                rows.append(_row("class:0", m, seed, b, 1024, 0.1 + 0.01 * seed) | {"js_forget": 0.1 + 0.01 * seed
                                                                                    + gain * p1})
    s = {(x.method, x.estimand, x.baseline, x.metric, x.reference): x for x in ladder_slopes(rows)}
    ga = s[("ga", "model", "", "js_forget", "same")]
    assert ga.levels == "0,0.001,0.01,0.02" and ga.n_seeds == 8
    assert ga.slope == pytest.approx(3.35) and ga.p_value == pytest.approx(2 ** -7)
    unl = s[("ga", "unlearning", "identity", "js_forget", "same")]
    assert unl.slope == pytest.approx(2.35) and unl.adjustment == "bh"
    flat = s[("ga", "model", "", "acc_forget", "none")]
    assert flat.slope == 0.0 and flat.p_value == 1.0  # rounding residues are not a trend
    two = [r for r in rows if r["backend"] in ("exact", "dm-depol-0.01")]
    assert ladder_slopes(two) == []  # exact + one rung is a difference, not a slope


def test_axis_columns_pair_within_and_reach_the_csv(tmp_path):
    rows = []
    for depth, extra in ((1, 0.0), (2, 0.05)):
        for r in _study(seeds=6, planted={"ga": lambda s, e=extra: e}):
            rows.append(r | {"model.n_layers": depth, "training.train_backend": "exact"})
    effects, _ = write_noise_effects(tmp_path, rows)
    ga = [e for e in effects if e.method == "ga" and e.estimand == "unlearning" and e.baseline == "identity"
          and e.metric == "js_forget" and e.reference == "same"]
    assert sorted((dict(e.axes)["model.n_layers"], round(e.delta, 6)) for e in ga) == [(1, 0.0), (2, 0.05)]
    with open(tmp_path / "noise_effect.csv") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames
        assert cols[:6] == ["scenario", "method", "backend", "shots", "model.n_layers", "training.train_backend"]
        assert set(COLUMNS) <= set(cols)
        assert {r["model.n_layers"] for r in reader} == {"1", "2"}


def test_one_exact_run_serves_both_train_backend_arms():
    """With train_backend = "same" an exact cell trains on exact: if the grid runs the exact
    cells once, both arms pair with them; every other axis still has to match."""
    rows = []
    for r in _study(seeds=6, planted={"ga": lambda s: 0.03}):
        if r["backend"] == "exact":
            rows.append(r | {"training.train_backend": "exact", "model.n_layers": 1})
        else:
            rows += [r | {"training.train_backend": arm, "model.n_layers": 1} for arm in ("exact", "same")]
    rows += [r | {"training.train_backend": "same", "model.n_layers": 2} for r in _study(seeds=6)
             if r["backend"] != "exact"]  # depth 2 has no exact cells at all: no pairs
    eff = [e for e in paired_effects(rows) if e.method == "ga" and e.estimand == "unlearning"
           and e.baseline == "identity" and e.metric == "js_forget" and e.reference == "same"]
    assert sorted((dict(e.axes)["training.train_backend"], round(e.delta, 6), e.n_seeds) for e in eff) == [
        ("exact", 0.03, 6), ("same", 0.03, 6)]


def test_holm_for_the_primary_bh_for_everything_else(tmp_path):
    rows = _study(planted={"scrub": lambda s: 0.04 + 0.001 * s})
    effects, slopes = analyse(rows, AnalysisTable(primary="js_forget"))
    prim = [e for e in effects if e.adjustment == "holm-primary"]
    assert sorted(e.method for e in prim) == ["ga", "retrain", "scrub"]
    assert all(e.estimand == "unlearning" and e.baseline == "identity" and e.metric == "js_forget" for e in prim)
    assert all(e.adjustment == "bh" for e in effects if e not in prim)
    s = _by(prim, method="scrub")
    assert s.p_adj == pytest.approx(min(1.0, 3 * s.p_value))  # smallest of three: Holm multiplies by 3
    # a different declared primary moves the Holm family
    other = analyse(rows, AnalysisTable(primary="acc_forget"))[0]
    assert {e.metric for e in other if e.adjustment == "holm-primary"} == {"acc_forget"}
    store = ResultsStore(tmp_path)
    write_noise_effects(tmp_path, rows, store)
    assert len(store.table("noise_effect")) > 0  # the store keeps what its schema can hold


def test_findings_without_an_exact_twin_say_so():
    lines = findings_lines([], [])
    assert lines[0] == "## Findings\n" and "exact" in lines[1]


def test_findings_without_identity_say_no_unlearning_effect_can_be_estimated():
    rows = _study(seeds=6, methods=("retrain", "ga"), shift=lambda s: 0.1)
    effects, slopes = analyse(rows)
    assert not [e for e in effects if e.baseline == "identity"]
    text = "\n".join(findings_lines(effects, slopes))
    assert "needs `identity` in `[grid] methods`" in text and "relative to identity by" not in text


def test_criterion_sanity_table_counts_retrain_and_identity():
    rows = [_row("class:0", m, s, "exact", None) | {"within_oracle_spread": float(m == "retrain" or s == 0)}
            for m in ("retrain", "identity") for s in range(4)]
    text = "\n".join(criterion_lines(rows))
    assert "| class:0 | exact @ exact | 4 of 4 seeds (100%) | 1 of 4 seeds (25%) |" in text


def test_every_method_has_its_own_colour_and_marker():
    from qmu_hw.study.report import method_styles
    from qmu_hw.unlearning import method_names

    styles = method_styles(method_names())
    assert len(method_names()) > 10  # more than tab10 has colours
    colours = [tuple(s["color"]) for s in styles.values()]
    assert len(set(colours)) == len(colours)
    assert styles["certified"] != styles["retrain"]
