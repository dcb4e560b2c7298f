"""Adapter registry and :func:`get_backend` (profile name or path → backend object)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.backend import adapter_class, adapter_info, register_adapter
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
    from ..core.contract import check_seed, check_shots

    kwargs["shots"] = check_shots(kwargs["shots"])
    kwargs["seed"] = check_seed(kwargs["seed"])
    return cls(profile, options=options, **native, **kwargs)
