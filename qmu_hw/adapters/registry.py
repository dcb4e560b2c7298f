"""Adapter registry and :func:`get_backend` (profile name or path → backend object)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.exceptions import InvalidRequestError
from ..core.profiles import Profile, resolve_profile

_ADAPTERS: dict[str, type] = {}
# Adapters living in modules that import an SDK: loaded only when a profile names them.
_LAZY_MODULES = {
    "statevector": "qmu_hw.adapters.statevector",
    "density-matrix": "qmu_hw.adapters.density_matrix",
    "aer": "qmu_hw.adapters.aer",
    "ibm": "qmu_hw.adapters.ibm",
    "braket": "qmu_hw.adapters.braket",
    "pennylane": "qmu_hw.adapters.pennylane",
}


def register_adapter(name: str) -> Callable[[type], type]:
    """Class decorator: ``@register_adapter("aer")``."""

    def deco(cls: type) -> type:
        _ADAPTERS[name] = cls
        cls.adapter_name = name
        return cls

    return deco


def adapter_class(name: str) -> type:
    if name not in _ADAPTERS and name in _LAZY_MODULES:
        importlib.import_module(_LAZY_MODULES[name])
    if name not in _ADAPTERS:
        raise InvalidRequestError(
            f"unknown adapter {name!r}; expected one of {sorted(set(_ADAPTERS) | set(_LAZY_MODULES))}"
        )
    return _ADAPTERS[name]


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
    return cls(profile, options=options, **native, **kwargs)
