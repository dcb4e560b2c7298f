"""A small TOML writer for the tables qmu-hw writes itself (study configs given as dicts,
profiles of native devices): scalars, arrays and inline tables."""

from __future__ import annotations

import math
import re
from typing import Any

from .exceptions import InvalidRequestError


def toml_value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequestError(f"{where}: must be finite, got {value!r}")
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v, where) for v in value) + "]"
    if isinstance(value, dict):  # an inline table
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v, where)}" for k, v in value.items()) + "}"
    raise InvalidRequestError(f"{where}: unsupported value {value!r} ({type(value).__name__})")


def toml_key(key: Any) -> str:
    key = str(key)
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_value(key, "key")


def toml_table(name: str | None, table: dict[str, Any], where: str) -> list[str]:
    """Lines of ``[name]`` (or top-level keys when ``name`` is None)."""
    lines = [] if name is None else [f"[{name}]"]
    lines += [f"{toml_key(k)} = {toml_value(v, f'{where} {k}')}" for k, v in table.items()]
    return lines
