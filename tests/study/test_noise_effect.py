"""Paired noise effects, Holm, slopes and the Findings they produce (synthetic stores)."""

import csv
import math

import numpy as np
import pytest
from scipy import stats

from qmu_hw.study.findings import findings_lines
from qmu_hw.study.noise_effect import (
    COLUMNS,
    holm,
    ladder_slopes,
    mean_ci_p,
    metric_columns,
    paired_effects,
    write_noise_effects,
)
from qmu_hw.study.report import build_report
from qmu_hw.study.store import ResultsStore

EXACT_JS = [0.10, 0.12, 0.08, 0.11]
NOISY_JS = [0.15, 0.16, 0.10, 0.17]


def _row(scenario, method, seed, backend, shots, value=0.1):
    """A finished cell with every metric the report and the effects read."""
    r = {"dataset": "iris", "scenario": scenario, "method": method, "seed": seed, "backend": backend,
         "shots": shots, "cost_shots": 0, "cost_circuits": 10, "acc_forget_oracle": 0.0, "n_oracles": 5.0,
         "mia_pop_n_members": 10.0, "mia_pop_n_nonmembers": 12.0, "acc_test_forgotten": 0.0}
    for _, _, col in metric_columns():
        r[col] = value
    return r


def test_delta_ci_and_p_match_a_hand_computation():
    rows = []
    for seed, (e, n) in enumerate(zip(EXACT_JS, NOISY_JS, strict=True)):
        rows.append(_row("class:0", "scrub", seed, "exact", None, 0.3) | {"js_forget": e})
        rows.append(_row("class:0", "scrub", seed, "dm-depol-0.02", 1024, 0.3) | {"js_forget": n})
    eff = {(e.metric, e.reference): e for e in paired_effects(rows)}
    e = eff[("js_forget", "same")]
    # By hand: d = [0.05, 0.04, 0.02, 0.06], mean 0.0425, sd = sqrt(8.75e-4 / 3).
    sd = math.sqrt(8.75e-4 / 3)
    se = sd / 2
    t_crit = 3.182446305284263  # t(0.975, df=3)
    assert e.n_seeds == 4 and e.backend == "dm-depol-0.02" and e.shots == 1024
    assert e.exact_mean == pytest.approx(0.1025) and e.mean == pytest.approx(0.145)
    assert e.delta == pytest.approx(0.0425, abs=1e-12)
    assert e.ci_low == pytest.approx(0.0425 - t_crit * se, abs=1e-9)
    assert e.ci_high == pytest.approx(0.0425 + t_crit * se, abs=1e-9)
    assert e.p_value == pytest.approx(2 * stats.t.sf(0.0425 / se, 3), rel=1e-9)
    # One method in its family: Holm leaves p alone. Unchanged metrics: Δ 0, p 1.
    assert e.p_holm == pytest.approx(e.p_value)
    assert eff[("acc_forget", "none")].delta == 0 and eff[("acc_forget", "none")].p_value == 1.0


def test_bootstrap_interval_from_ten_pairs():
    rng = np.random.default_rng(3)
    d = rng.normal(0.05, 0.02, 12)
    m, lo, hi, p = mean_ci_p(d)
    boot = d[np.random.default_rng(0).integers(0, 12, (10_000, 12))].mean(axis=1)
    assert m == pytest.approx(d.mean())
    assert (lo, hi) == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])))
    assert p == pytest.approx(stats.ttest_1samp(d, 0).pvalue)


def test_holm_is_never_below_raw_p_and_matches_the_definition():
    p = [0.01, 0.04, 0.03, 0.2, float("nan")]
    h = holm(p)
    # Sorted 0.01, 0.03, 0.04, 0.2 with m = 4: 0.04, 0.09, 0.09 (monotone), 0.2.
    assert h[:4] == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert math.isnan(h[4])
    rng = np.random.default_rng(1)
    for _ in range(50):
        raw = rng.uniform(0, 0.2, rng.integers(1, 12))
        adj = holm(raw)
        assert all(a >= r - 1e-15 and a <= 1 for a, r in zip(adj, raw, strict=True))


def test_ladder_slope_recovers_a_planted_linear_trend():
    rows = []
    for seed in range(5):
        for b, p1 in (("dm-depol-0.001", 0.001), ("dm-depol-0.01", 0.01), ("dm-depol-0.05", 0.05)):
            rows.append(_row("class:0", "ga", seed, b, 256, 0.2) | {"js_forget": 0.1 + 2.0 * p1 + 0.001 * seed})
    s = {(x.metric, x.reference): x for x in ladder_slopes(rows)}
    assert s[("js_forget", "same")].slope == pytest.approx(2.0)
    assert s[("js_forget", "same")].levels == "0.001,0.01,0.05"
    assert s[("js_forget", "same")].p_value == 0.0  # identical per-seed slopes: no spread
    assert s[("acc_forget", "none")].slope == 0 and s[("acc_forget", "none")].p_value == 1.0


def _synthetic_store(folder, planted: float):
    """exact + dm-depol-0.02 @ 1024, three methods, six seeds. Per-seed Δ of every metric is
    ±ε in pairs (mean exactly 0); ``planted`` is added to scrub's same-noise forget-set JS."""
    store = ResultsStore(folder)
    eps = [0.01, -0.01, 0.02, -0.02, 0.005, -0.005]
    i = 0
    for method in ("identity", "ga", "scrub"):
        for seed in range(6):
            base = _row("class:0", method, seed, "exact", None, 0.2)
            noisy = _row("class:0", method, seed, "dm-depol-0.02", 1024, 0.2)
            for _, _, col in metric_columns():
                noisy[col] = base[col] + eps[seed]
            if method == "scrub":
                noisy["js_forget"] += planted
            for r in (base, noisy):
                cid = f"c{i}"
                i += 1
                store.start(cid, "h", {k: r[k] for k in ("dataset", "scenario", "seed", "backend", "shots", "method")}
                            | {"profile_sha256": "x"})
                store.finish(cid, {k: v for k, v in r.items() if not k.startswith("cost_") and k not in
                                   ("dataset", "scenario", "seed", "backend", "shots", "method")},
                             {"shots": 0, "circuits": 10})
    return store


def _findings(report_text: str) -> str:
    return report_text.split("## Findings", 1)[1].split("\n## ", 1)[0]


def test_a_planted_effect_is_reported_in_findings(tmp_path):
    store = _synthetic_store(tmp_path, planted=0.04)
    rows = store.rows()
    effects, slopes = write_noise_effects(tmp_path, rows, store)
    path = build_report(tmp_path, rows, effects=effects, slopes=slopes)
    text = path.read_text()
    assert text.splitlines()[2] == "## Findings"  # the report opens with the answer
    found = _findings(text)
    assert "On dm-depol-0.02 @ 1024 shots (class:0), scrub's forget-set JS to the same-noise oracles rises by 0.040" \
        in found
    assert found.count("rises by") + found.count("falls by") == 1  # nothing else was planted
    assert "not significant" in found.lower() and "n = 6" in found
    # The CSV and the store hold the same rows, with the contract's columns.
    with open(tmp_path / "noise_effect.csv") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        csv_rows = list(reader)
    assert len(csv_rows) == len(store.table("noise_effect")) == len(effects) > 0
    hit = [r for r in csv_rows if r["method"] == "scrub" and r["metric"] == "js_forget" and r["reference"] == "same"]
    assert float(hit[0]["p_holm"]) < 0.05 and float(hit[0]["p_holm"]) >= float(hit[0]["p_value"])


def test_no_planted_effect_no_finding(tmp_path):
    store = _synthetic_store(tmp_path, planted=0.0)
    rows = store.rows()
    effects, slopes = write_noise_effects(tmp_path, rows, store)
    found = _findings(build_report(tmp_path, rows, effects=effects, slopes=slopes).read_text())
    assert "rises by" not in found and "falls by" not in found
    assert "No paired noise effect on the headline metrics is significant" in found


def test_findings_without_an_exact_twin_say_so():
    lines = findings_lines([], [])
    assert lines[0] == "## Findings\n" and "exact" in lines[1]


def test_every_method_has_its_own_colour_and_marker():
    from qmu_hw.study.report import method_styles
    from qmu_hw.unlearning import method_names

    styles = method_styles(method_names())
    assert len(method_names()) > 10  # more than tab10 has colours
    colours = [tuple(s["color"]) for s in styles.values()]
    assert len(set(colours)) == len(colours)
    assert styles["certified"] != styles["retrain"]
