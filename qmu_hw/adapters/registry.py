"""Adapter registry and :func:`get_backend` (profile name or path → backend object)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.backend import adapter_class, adapter_info, register_adapter
from ..core.exceptions import InvalidRequestError, QmuHwError
from ..core.ledger import Budgets, ShotBudget, ShotLedger
from ..core.profiles import Profile, resolve_profile

# The registry lives in core (profiles ask it whether a backend is remote); re-exported here.
__all__ = ["adapter_class", "adapter_info", "get_backend", "register_adapter"]


def get_backend(name_or_path: str | Path | Profile | Any, **overrides: Any):
    """A backend from a built-in profile name, a TOML path, a :class:`Profile`, or a native
    device object (Qiskit fake backend / AerSimulator / IBMBackend, Braket LocalSimulator /
    AwsDevice, PennyLane device; see :mod:`qmu_hw.adapters.devices`).

    ``overrides``: ``shots`` (int or None), ``seed``, ``ledger``, ``budget``, and any key
    of the profile's ``[options]`` table, e.g. ``get_backend("aer-depol-0.01", shots=2048)``.
    """
    native: dict[str, Any] = {}
    if isinstance(name_or_path, Profile):
        profile = name_or_path
    elif isinstance(name_or_path, (str, Path)):
        profile = resolve_profile(name_or_path)
    else:
        from .devices import describe_device

        profile, native = describe_device(name_or_path)
    adapter_info(profile).require(f"backend {profile.name!r}")
    cls = adapter_class(profile.adapter)
    kwargs: dict[str, Any] = {
        "shots": profile.shots,
        "seed": profile.seed,
    }
    options = dict(profile.options)
    for key, value in overrides.items():
        if key in ("shots", "seed", "ledger", "budget"):
            kwargs[key] = value
        else:
            options[key] = value
    if "shots" in kwargs and kwargs["shots"] == "exact":
        kwargs["shots"] = None
    from ..core.contract import check_shots

    kwargs["shots"] = check_shots(kwargs["shots"])
    _check_arguments(profile.name, kwargs)
    try:
        return cls(profile, options=options, **native, **kwargs)
    except QmuHwError:
        raise
    except (KeyError, ValueError, TypeError) as exc:  # an option value the adapter could not use
        given = {k: v for k, v in overrides.items() if k not in ("shots", "seed", "ledger", "budget")}
        said = " ".join(str(exc).split())[:160]
        raise InvalidRequestError(
            f"backend {profile.name!r}: its adapter refused the options {given or dict(profile.options)} "
            f"({type(exc).__name__}: {said}); the accepted keys are {sorted(adapter_info(profile).option_schema)}"
        ) from None


SEED_LIMIT = 2 ** 32  # seeds feed numpy / simulator generators as uint32


def _check_arguments(name: str, kwargs: dict) -> None:
    """``seed``, ``ledger`` and ``budget`` are checked here, so ``seed="abc"`` or
    ``budget="lots"`` is refused by ``get_backend`` rather than failing at the first request."""
    seed = kwargs.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or not 0 <= int(seed) < SEED_LIMIT):
        raise InvalidRequestError(f"backend {name!r}: seed must be an integer in [0, 2**32) or None, got {seed!r}")
    ledger, budget = kwargs.get("ledger"), kwargs.get("budget")
    if ledger is not None and not isinstance(ledger, ShotLedger):
        raise InvalidRequestError(f"backend {name!r}: ledger must be a qmu_hw ShotLedger or None, got {ledger!r}")
    if budget is not None and not isinstance(budget, (ShotBudget, Budgets)):
        raise InvalidRequestError(f"backend {name!r}: budget must be a qmu_hw ShotBudget (e.g. ShotBudget("
                                  f"total_shots=10_000)) or None, got {budget!r}")
