"""qmu-hw estimate --power: the smallest attainable p and the seeds needed."""

import numpy as np
import pytest

from qmu_hw.core.exceptions import InvalidRequestError
from qmu_hw.metrics.stats import units_needed
from qmu_hw.study.power import parse_power, pilot_sigma, power_lines
from qmu_hw.study.store import ResultsStore
from tests.study.test_noise_effect import _study


def test_power_spec_parses_and_bad_specs_get_one_clear_line():
    r = parse_power("delta=0.05, sigma=0.1,power=0.9")
    assert (r.delta, r.sigma, r.alpha, r.power) == (0.05, 0.1, 0.05, 0.9)
    for bad, match in (("sigma=0.1", "expected delta="), ("delta=0", "delta > 0"), ("delta=a", "a number for delta"),
                       ("delta=0.1,beta=2", "keys"), ("delta=0.1,delta=0.2", "twice"), ("delta=0.1,alpha=1", "alpha")):
        with pytest.raises(InvalidRequestError, match=match):
            parse_power(bad)


def test_power_lines_state_the_smallest_p_and_the_seeds_needed():
    five = power_lines(5, 4, parse_power("delta=0.05"))
    assert "smallest attainable two-sided p = 0.062" in five[0] and "can NEVER reach" in five[0]
    assert "give sigma" in five[1]
    eight = power_lines(8, 4, parse_power("delta=0.05,sigma=0.1"))
    assert "0.0078" in eight[0] and "with Holm across 4 method(s) on the primary endpoint, 0.031" in eight[0]
    assert f": {units_needed(0.05, 0.1)} seeds" in eight[1] and "this study has 8" in eight[1]


def test_pilot_sigma_is_the_pooled_sd_of_per_seed_delta_unlearning(tmp_path):
    jitter = [0.01, -0.02, 0.03, 0.0, -0.01, 0.02]
    rows = _study(seeds=6, planted={"ga": lambda s: 0.05 + jitter[s]})
    store = ResultsStore(tmp_path)
    for i, r in enumerate(rows):
        key = {k: r[k] for k in ("dataset", "scenario", "seed", "backend", "shots", "method")}
        store.start(f"c{i}", "h", key | {"profile_sha256": "x"})
        store.finish(f"c{i}", {k: v for k, v in r.items() if k not in key and not k.startswith("cost_")}, {})
    sigma, n, groups = pilot_sigma(tmp_path)
    # ga's Δ_unlearning varies by the jitter, retrain's and scrub's by nothing: pooled over 3 groups
    expected = np.sqrt(np.var(jitter, ddof=1) * 5 / 15)
    assert (n, groups) == (6, 3) and sigma == pytest.approx(expected)
    with pytest.raises(InvalidRequestError, match="no results.sqlite"):
        pilot_sigma(tmp_path / "nowhere")


def test_cli_estimate_power(tmp_path, capsys):
    from qmu_hw.cli import main

    cfg = tmp_path / "s.toml"
    cfg.write_text('[study]\nseeds = [0, 1, 2, 3, 4, 5, 6, 7]\n[grid]\nmethods = ["identity", "ga"]\n'
                   'scenarios = ["class:0"]\n[training]\nepochs = 1\nn_oracles = 2\n')
    assert main(["estimate", str(cfg), "--no-timing", "--power", "delta=0.05,sigma=0.02"]) == 0
    out = capsys.readouterr().out
    assert "8 seeds -> smallest attainable two-sided p = 0.0078" in out and "Holm across 1 method(s)" in out
    assert main(["estimate", str(cfg), "--power", "delta=-1"]) == 2
    assert "delta > 0" in capsys.readouterr().err
    assert main(["estimate", str(cfg), "--pilot", str(tmp_path)]) == 2
