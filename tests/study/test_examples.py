from pathlib import Path

import pytest

from qmu_hw.study.config import load_config
from qmu_hw.study.estimate import estimate_study
from qmu_hw.study.grid import expand

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_validates_and_estimates(path):
    cfg = load_config(path)
    cells = expand(cfg)
    assert cells
    est = estimate_study(cfg, cells, measure_time=False)
    assert est.totals["cells"] == len(cells) and est.refusal(cfg) is None


def test_examples_are_the_documented_ones():
    names = {p.stem for p in EXAMPLES}
    assert {"quickstart", "noise_ladder", "shot_budget", "digits_cnn", "paper_protocol", "ibm_hardware",
            "braket_hardware"} <= names
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for n in names:
        assert f"examples/{n}.toml" in readme, n


def test_cloud_estimates_follow_the_price_tables():
    """Per-cell money from the profiles' tables, recomputed by hand from the cell's counts."""
    from qmu_hw.study.grid import profile_of

    cfg = load_config(Path(__file__).resolve().parents[2] / "examples" / "braket_hardware.toml")
    est = estimate_study(cfg, measure_time=False)
    # the example names a copy of the shipped Garnet profile with a larger [budget] max_cost
    (qpu,) = [b for b in cfg.backends if b != "braket-dm1-depol-0.01"]
    assert profile_of(qpu).cost == profile_of("braket-iqm-garnet").cost
    garnet = profile_of(qpu).cost
    dm1 = profile_of("braket-dm1-depol-0.01").cost
    for c in est.cells:
        if c["method"] != "identity":
            continue  # identity does no unlearning work: every circuit is an evaluation task
        assert c["tasks"] == c["circuits"]  # no program-set limit stated: one task per circuit
        if c["backend"] == qpu:
            assert c["cost"] == pytest.approx(garnet["per_task"] * c["tasks"] + garnet["per_shot"] * c["shots_total"])
        else:  # simulator time: 3 s minimum per task at $0.075 per minute
            assert c["qpu_seconds"] == pytest.approx(3.0 * c["tasks"])
            assert c["cost"] == pytest.approx(dm1["per_second"] * 3.0 * c["tasks"])
    # with a surrogate, unlearning work on Garnet is simulated locally: only evaluation is paid
    # (the group's first cell, identity, also pays the teacher/oracle reference outputs the
    # driver computes once per group; ga and eu-k pay their own evaluation alone)
    cost = {(c["backend"], c["method"]): c["cost"] for c in est.cells}
    assert cost[(qpu, "ga")] == pytest.approx(cost[(qpu, "eu-k")])
    assert 0 < cost[(qpu, "ga")] < cost[(qpu, "identity")]
    # on DM1 (no surrogate) unlearning is paid too: ga far above identity, which pays evaluation
    # and the group's reference outputs
    assert cost[("braket-dm1-depol-0.01", "ga")] > 5 * cost[("braket-dm1-depol-0.01", "identity")]
