"""The adapter registry: adapter name -> adapter class, loaded on first use.

Apart from :mod:`.backend` (which re-exports it) so that a profile can ask its adapter
whether it is remote (``Profile.is_cloud``) without importing the backend base class,
which itself names profiles: the two would otherwise import each other.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from .exceptions import InvalidRequestError

_ADAPTERS: dict[str, type] = {}


def register_adapter(name: str) -> Callable[[type], type]:
    """Class decorator: ``@register_adapter("my-engine")``. A profile's ``adapter = "NAME"`` loads
    ``qmu_hw.adapters.NAME`` (``-`` → ``_``) on first use, or ``"pkg.module:NAME"`` for an
    adapter living outside qmu-hw."""

    def deco(cls: type) -> type:
        _ADAPTERS[name] = cls
        cls.adapter_name = name
        return cls

    return deco


def _builtin_adapters() -> list[str]:
    """Names registered by the shipped adapter modules (read from their source, so listing
    them imports nothing)."""
    import re
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "adapters"
    pattern = re.compile(r'^@register_adapter\("([^"]+)"\)', re.M)
    return [m for f in sorted(folder.glob("*.py")) for m in pattern.findall(f.read_text(encoding="utf-8"))]


def adapter_class(name: str) -> type:
    """The adapter class a profile names, importing its module on first use."""
    if name not in _ADAPTERS:
        module, key = name.split(":", 1) if ":" in name else (f"qmu_hw.adapters.{name.replace('-', '_')}", name)
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise  # the module exists but something it imports does not
        if key in _ADAPTERS:
            _ADAPTERS[name] = _ADAPTERS[key]
    if name not in _ADAPTERS:
        raise InvalidRequestError(
            f"unknown adapter {name!r}; expected one of {sorted(set(_ADAPTERS) | set(_builtin_adapters()))} "
            "or 'pkg.module:NAME' for an adapter registered in your own module"
        )
    return _ADAPTERS[name]
