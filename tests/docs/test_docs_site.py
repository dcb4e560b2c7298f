"""The documentation site builds with `mkdocs build --strict` (a broken link, a missing page or
an Args entry naming no parameter fails), and its generated pages come from the code."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs" / "hooks"))
import generate  # noqa: E402

needs_mkdocs = pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                                  reason="needs the [docs] extra (mkdocs)")


def test_config_reference_lists_every_key_of_every_table():
    import dataclasses

    from qmu_hw.study.config_tables import TABLES
    from qmu_hw.unlearning import method_names

    page = generate.config_reference()
    for table, cls in TABLES.items():
        assert f"## `[{table}]`" in page
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in page, (table, f.name)
    for m in method_names():
        assert f"| `{m}` |" in page
    assert f"{len(method_names())} methods are registered" in page
    # defaults and the checks' own words come from the dataclasses
    assert '| `dataset` | string | `"iris"` | one of (\'iris\'' in page
    assert "| `epochs` | integer | `100` | a positive integer |" in page


def test_generated_field_comments_follow_the_source():
    from qmu_hw.study.config_tables import TrainingTable

    assert "train on each cell's backend" in generate._field_comments(TrainingTable)["train_backend"]


def test_cli_reference_is_plain_help_of_every_command():
    page = generate.cli_reference()
    for cmd in ("run", "estimate", "report", "jobs", "backends"):
        assert f"## `qmu-hw {cmd}`" in page
    import re

    helps = re.findall(r"```text\n(.*?)```", page, flags=re.S)
    assert len(helps) == 6
    for text in helps:  # plain text: no RST literals or roles from docstrings
        assert "``" not in text and ":class:" not in text and ":func:" not in text


def test_results_columns_page_has_the_key_columns():
    page = generate.results_columns()
    for col in ("cell_id", "scenario", "backend", "shots", "method"):
        assert f"`{col}`" in page


@pytest.mark.slow
@needs_mkdocs
def test_mkdocs_build_strict(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "confirm_billed" in api and "StudyResult" in api  # mkdocstrings rendered the docstrings
    assert (tmp_path / "site" / "reference" / "config" / "index.html").is_file()
