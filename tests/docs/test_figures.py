"""The figures the README points at (benchmarks/RESULTS.md, section "Examples") are the ones the
code gives: the method count from the registry, the hardware examples' costs from the estimate,
and the section records machine, date and commit."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_examples  # noqa: E402


def _section() -> str:
    text = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    m = re.search(rf"^## {re.escape(bench_examples.SECTION)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert m, "benchmarks/RESULTS.md has no Examples section: run python benchmarks/bench_examples.py"
    return m.group(1)


def test_section_records_machine_date_and_commit():
    sec = _section()
    assert re.search(r"Measured \d{4}-\d\d-\d\d \d\d:\d\d UTC at commit `[0-9a-f]{7,}", sec)
    assert "logical CPUs" in sec and "Command: `python benchmarks/bench_examples.py" in sec


def test_method_count_is_the_registry_s():
    from qmu_hw.unlearning import method_names

    n = int(re.search(r"method_names\(\)`\): \*\*(\d+)\*\*", _section()).group(1))
    assert n == len(method_names()), "rerun python benchmarks/bench_examples.py: the registry changed"


@pytest.mark.parametrize("example", ["braket_hardware", "ibm_hardware"])
def test_hardware_costs_are_the_estimate_s(example):
    from qmu_hw.study.config import load_config
    from qmu_hw.study.dry_run import dry_run_estimate

    lines = _section().splitlines()
    header = next(ln for ln in lines if ln.startswith("| example |") and "| cost |" in ln)
    cols = [c.strip() for c in header.split("|")]
    row = [c.strip() for c in next(ln for ln in lines if ln.startswith(f"| {example} |")).split("|")]
    assert row[cols.index("bound from")] == "dry run"  # a billed study: the bound run checks
    stated = float(row[cols.index("cost")].replace(",", ""))
    cfg = load_config(ROOT / "examples" / f"{example}.toml", check_backends_now=False)
    est = dry_run_estimate(cfg, measure_time=False, progress=False)
    assert stated == pytest.approx(est.totals["cost"], abs=0.005)


def test_readme_and_examples_quote_no_hand_typed_times():
    readme = (ROOT / "README.md").read_text()
    assert "benchmarks/RESULTS.md" in readme
    for stale in ("about a minute", "17 methods", "~$1,295", "~$2,090", "~50 s", "~25 s"):
        assert stale not in readme, stale
    for toml in (ROOT / "examples").glob("*.toml"):
        head = "\n".join(ln for ln in toml.read_text().splitlines() if ln.startswith("#"))
        assert not re.search(r"[Ww]all time[^.]*\d+ (?:s|min)\b", head), toml.name


def test_render_marks_a_missed_target_and_the_load():
    mach = {"date": "2026-01-01 00:00 UTC", "commit": "abc1234", "cpu": "x, 2 logical CPUs", "platform": "p",
            "python": "3.11", "torch": "2"}
    timed = [{"name": "quickstart", "wall": 75.0, "walls": [75.0], "cells": 108,
              "phases": {"unlearn": 30.0, "eval": 2.0}, "loads": [(0.5, 1.1)]}]
    text = bench_examples.render(mach, timed, {}, 18, None, "", "python benchmarks/bench_examples.py")
    assert "| quickstart | 108 | 75.0 | – | 30.0 | 2.0 | 0.5→1.1 | ≤ 60 s: missed |" in text
    assert "**18**" in text and "commit `abc1234`" in text
