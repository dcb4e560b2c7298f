"""Optional SDKs: one import helper so a missing one always names the pip extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from .exceptions import MissingDependencyError


def require(module: str, extra: str | None, purpose: str, pip: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the install command.

    ``require("qiskit_aer", extra, "the Aer backends")`` with ``extra`` naming the pip extra →
    ``MissingDependencyError: the Aer backends need qiskit_aer: pip install 'qmu-hw[EXTRA]'``.
    ``extra=None`` names the plain package instead: ``pip install {pip or module}``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        cmd = f"pip install 'qmu-hw[{extra}]'" if extra else f"pip install {pip or module}"
        raise MissingDependencyError(
            f"{purpose} need {module.split('.')[0]}, which is not installed: {cmd}"
        ) from exc
