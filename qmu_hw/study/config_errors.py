"""Config errors that name the file, the table, the key and its line (used by every part
of the config check: reading, per-table parsing, axes, backends)."""

from __future__ import annotations

import re

from ..core.exceptions import InvalidRequestError


class ConfigError(InvalidRequestError):
    """A study config is malformed; the message names the file, key and line."""


def _line_of(text: str, section: str, key: str | None) -> int | None:
    current = ""
    for i, line in enumerate(text.splitlines(), start=1):
        m = re.match(r"^\s*\[([^\]]+)\]", line)
        if m:
            current = m.group(1).strip()
            if key is None and current == section:
                return i
            continue
        if key is not None and current == section and re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", line):
            return i
    return None


class _Reader:
    """Builds errors that name the file, the table, the key and its line."""

    def __init__(self, text: str, path: str) -> None:
        self.text, self.path = text, path

    def err(self, section: str, key: str | None, msg: str) -> ConfigError:
        line = _line_of(self.text, section, key)
        where = f"[{section}]" + (f" {key}" if key else "")
        return ConfigError(f"study config {self.path}: {where}{f' (line {line})' if line else ''}: {msg}")
