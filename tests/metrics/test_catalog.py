"""The metric catalog: one entry per metric, used by evaluation, the CLI summary and the
column dictionary; a new metric is its function plus one catalog entry."""

from __future__ import annotations

import csv

import pytest

from qmu_hw.core.exceptions import InvalidRequestError
from qmu_hw.metrics import catalog
from qmu_hw.metrics.catalog import Metric, column_dictionary


def test_entries_are_checked():
    with pytest.raises(InvalidRequestError, match="direction must be one of"):
        Metric("x", "x", (0.0, 1.0), "up", False, "")
    with pytest.raises(InvalidRequestError, match="already in the catalog"):
        catalog.register(catalog.metric("js_forget"))
    assert catalog.metric("js_forget_exact") is catalog.metric("js_forget")
    assert catalog.label("not-a-metric") == "not-a-metric"


def test_the_noise_effect_metrics_are_catalog_entries_with_the_same_reference_rule():
    from qmu_hw.study.noise_effect import metric_columns

    for name, reference, column in metric_columns():
        m = catalog.metric(name)
        assert m.reference == (reference != "none"), name
        assert column in m.columns()


def test_a_toy_metric_is_its_function_plus_one_catalog_entry(tmp_path):
    """Registered like any metric: computed for every cell, a results.csv column, documented."""
    from qmu_hw.study.config import parse_config
    from qmu_hw.study.finish import finish_study
    from qmu_hw.study.runner import StudyRunner

    def forget_confidence(probs, labels):  # the toy metric: mean top-class probability on the forget set
        return probs["forget"].max(axis=1).mean()

    catalog.register(Metric("toy_forget_confidence", "forget confidence", (0.0, 1.0), "match", False,
                            "Mean top-class probability on the forget set.", compute=forget_confidence))
    try:
        cfg = parse_config({"study": {"name": "toy", "output": str(tmp_path)},
                            "data": {"per_class": 10}, "training": {"epochs": 2, "n_oracles": 2},
                            "grid": {"scenarios": ["class:0"], "methods": ["identity"]}})
        runner = StudyRunner(cfg, log=lambda *_: None)
        assert runner.run().ran == 1
        finish_study(tmp_path, cfg, store=runner.store)
        with open(tmp_path / "results.csv") as f:
            (row,) = list(csv.DictReader(f))
        assert 1 / 3 <= float(row["toy_forget_confidence"]) <= 1.0  # 3 classes: at least a third
        assert "| `toy_forget_confidence` | forget confidence | [0, 1] |" in column_dictionary()
        # Every catalog metric is a real column of a cell (the catalog names what evaluation writes).
        for m in catalog.metrics():
            if not m.requires:  # e.g. [evaluation.per_example] columns: tests/study/test_per_example_study.py
                assert all(c in row for c in m.columns()), m.name
    finally:
        catalog.unregister("toy_forget_confidence")
    assert "toy_forget_confidence" not in column_dictionary()
