"""Study layer: the unlearning protocol, grid runner, results store, report, and the
Python API ``run`` / ``load`` (imported on first use, so the package stays light)."""

from __future__ import annotations

from typing import Any

__all__ = ["StudyResult", "load", "run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'qmu_hw.study' has no attribute {name!r}")
