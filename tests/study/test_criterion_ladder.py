"""The oracle-spread criterion's calibration on the shipped ladder, at exact (slow).

``retrain`` is one more oracle (retrained on the retain set with the [training] settings),
so a criterion that compares like with like must find it within the spread almost always;
``identity`` is the teacher unchanged, which in a class scenario still predicts the
forgotten class, so it must almost never be within.
"""

import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from qmu_hw.study.config import parse_config
from qmu_hw.study.runner import StudyRunner

LADDER = Path(__file__).resolve().parents[2] / "examples" / "noise_ladder.toml"


def exact_arm(out, seeds=None) -> dict:
    """The shipped ladder restricted to its exact backend and to identity and retrain (both
    train_backend arms are the same cells at exact, so the axis is dropped)."""
    data = tomllib.loads(LADDER.read_text())
    data["study"] = {**data["study"], "output": str(out), **({"seeds": list(seeds)} if seeds is not None else {})}
    grid = {k: v for k, v in data["grid"].items() if k != "train_backend"}
    data["grid"] = {**grid, "backends": ["exact"], "methods": ["identity", "retrain"]}
    data["methods"] = {}
    return data


def within_rates(out, seeds=None) -> dict[tuple[str, str], list[float]]:
    cfg = parse_config(exact_arm(out, seeds), path=str(LADDER), output=str(out))
    runner = StudyRunner(cfg, log=lambda *_: None)
    summary = runner.run()
    assert summary.failed == 0
    rates: dict[tuple[str, str], list[float]] = {}
    for r in runner.store.rows():
        rates.setdefault((r["scenario"], r["method"]), []).append(float(r["within_oracle_spread"]))
    return rates


@pytest.mark.slow
def test_retrain_within_and_identity_outside_at_exact_on_the_shipped_ladder(tmp_path):
    rates = within_rates(tmp_path)
    retrain = [w for (sc, m), v in rates.items() if m == "retrain" for w in v]
    identity = [w for (sc, m), v in rates.items() if m == "identity" and sc.startswith("class:") for w in v]
    assert len(identity) >= 8
    assert sum(retrain) / len(retrain) >= 0.9, rates
    assert sum(identity) / len(identity) <= 0.1, rates
