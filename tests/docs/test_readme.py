"""Every ```python block of README.md runs, as a user would paste it: in a fresh interpreter
whose working folder is an empty temporary one (what a block writes stays there)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from .readme_blocks import ROOT, python_blocks

BLOCKS = python_blocks()
def _params():
    for b in BLOCKS:
        marks = [pytest.mark.slow] if b.slow else []
        yield pytest.param(b, id=b.id, marks=marks)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 5
    assert all(b.code.strip() for b in BLOCKS)


@pytest.mark.parametrize("block", list(_params()))
def test_readme_block_runs(block, tmp_path):
    missing = [m for m in block.needs if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", block.code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, (f"README.md line {block.line} ({block.heading}) failed:\n"
                                  f"{proc.stderr[-3000:]}")
