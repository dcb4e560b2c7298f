"""The per-example report section: tables with the sanity columns, findings, ECDF plot."""

import numpy as np

from qmu_hw.study.per_example_effect import example_noise_effects, per_example_rows
from qmu_hw.study.per_example_report import per_example_section, plot_epsilon_ecdf


def _summary(method, backend, shots, lo):
    return {"scenario": "class:0", "method": method, "backend": backend, "shots": shots, "seed": 0,
            "forgetting_score": 0.5, "challenge_score": 0.4, "ulira_balanced_accuracy": lo + 0.1,
            "ulira_ci_low": lo, "ulira_ci_high": lo + 0.2, "epsilon_max": 2.09, "epsilon_n_models": 32,
            "epsilon_calibration_median": 0.0}


def _study(identity_eps):
    ids = list(range(10, 20))
    ex = []
    for b, s in (("exact", None), ("dm-depol-0.01", 1024)):
        ex += per_example_rows("class:0", "retrain", b, s, 0, ids, np.zeros(10), 32)
        ex += per_example_rows("class:0", "identity", b, s, 0, ids, np.full(10, identity_eps), 32)
        ex += per_example_rows("class:0", "ga", b, s, 0, ids, np.linspace(0, 1, 10) + (0.5 if s else 0), 32)
    summ = [_summary(m, b, s, 0.8 if m == "identity" and identity_eps > 0 else 0.4)
            for m in ("retrain", "identity", "ga") for b, s in (("exact", None), ("dm-depol-0.01", 1024))]
    return summ, ex, example_noise_effects(ex)


def test_section_tables_and_sanity_findings(tmp_path):
    summ, ex, eff = _study(2.09)
    text = "\n".join(per_example_section(summ, ex, eff, plots={"ga": "img/eps_ga.png"}))
    assert text.index("### class:0, exact@exact") < text.index("### class:0, dm-depol-0.01@1024")
    assert "| ga | 32 | 10 |" in text and "ε̃ retrain | ε̃ identity" in text
    assert "`identity` is detected" in text and "NOT detected" not in text
    assert "noise (dm-depol-0.01@1024) raises (worse forgetting) `ga`'s per-example ε relative to identity by 0.50" in text
    assert "![ECDF of per-example ε per backend, ga](img/eps_ga.png)" in text
    out = plot_epsilon_ecdf(ex, "ga", tmp_path / "eps_ga.png")
    assert out.exists() and out.stat().st_size > 1000


def test_undetected_identity_is_said_in_findings():
    summ, ex, eff = _study(0.0)
    text = "\n".join(per_example_section(summ, ex, eff))
    assert text.count("`identity` (no unlearning) is NOT detected") == 2
