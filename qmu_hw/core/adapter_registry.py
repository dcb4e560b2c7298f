"""The adapter registry: adapter name -> adapter class, loaded on first use.

Apart from :mod:`.backend` (which re-exports it) so that a profile can ask its adapter
whether it is remote (``Profile.is_cloud``) without importing the backend base class,
which itself names profiles: the two would otherwise import each other.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

from .exceptions import InvalidRequestError

_ADAPTERS: dict[str, type] = {}

ENTRY_POINT_GROUP = "qmu_hw.adapters"  # how a package outside qmu-hw offers an adapter
ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")  # a registered name, never a module path


def register_adapter(name: str) -> Callable[[type], type]:
    """Class decorator: ``@register_adapter("my-engine")``. A profile's ``adapter = "NAME"``
    loads the shipped module registering NAME on first use, or the object a package offers as
    NAME in the ``qmu_hw.adapters`` entry-point group (a profile never names a module: a data
    file must not choose what gets imported)."""

    def deco(cls: type) -> type:
        _ADAPTERS[name] = cls
        cls.adapter_name = name
        return cls

    return deco


def _builtin_adapters() -> dict[str, str]:
    """``{name: module}`` registered by the shipped adapter modules (read from their source,
    so listing them imports nothing)."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "adapters"
    pattern = re.compile(r'^@register_adapter\("([^"]+)"\)', re.M)
    return {m: f"qmu_hw.adapters.{f.stem}" for f in sorted(folder.glob("*.py"))
            for m in pattern.findall(f.read_text(encoding="utf-8"))}


def _entry_points() -> dict:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def adapter_class(name: str) -> type:
    """The adapter class a profile names, importing its shipped module or loading its entry
    point on first use; a name that is neither is refused without importing anything."""
    if not isinstance(name, str) or not ADAPTER_NAME.match(name):
        raise InvalidRequestError(
            f"adapter {name!r} is not an adapter name; a profile names a registered adapter (one of "
            f"{sorted(_builtin_adapters())} or a package's '{ENTRY_POINT_GROUP}' entry point), never a module path"
        )
    if name not in _ADAPTERS:
        builtin = _builtin_adapters()
        if name in builtin:
            importlib.import_module(builtin[name])
        else:
            ep = _entry_points().get(name)
            if ep is not None:
                loaded = ep.load()  # the package's own code, installed by the user
                # a class with the backend contract's one required method (not BaseBackend:
                # importing the base class here would make a circle through the profiles)
                if name not in _ADAPTERS and isinstance(loaded, type) and callable(getattr(loaded, "estimate", None)):
                    register_adapter(name)(loaded)
    if name not in _ADAPTERS:
        known = sorted(set(_ADAPTERS) | set(_builtin_adapters()) | set(_entry_points()))
        raise InvalidRequestError(
            f"unknown adapter {name!r}; expected one of {known}, or install a package that registers "
            f"{name!r} in the '{ENTRY_POINT_GROUP}' entry-point group"
        )
    return _ADAPTERS[name]
