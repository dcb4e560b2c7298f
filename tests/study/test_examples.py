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
    assert {"quickstart", "noise_ladder", "shot_budget", "digits_cnn", "paper_protocol", "ibm_hardware"} <= names
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for n in names:
        assert f"examples/{n}.toml" in readme, n
