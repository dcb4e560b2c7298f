"""Unknown names answered with the closest known ones ("did you mean"), one rule for every
registry (backend profiles, unlearning methods)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable


def unknown_name_message(kind: str, name: str, known: Iterable[str], expected: str) -> str:
    """``unknown KIND 'x' (did you mean 'y'?); expected EXPECTED: a, b, …``: the closest known
    names first (difflib, case-insensitive), so a typo is answered in the first line."""
    known = sorted(known)
    by_lower = {k.lower(): k for k in known}
    close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)]
    if not close:
        # A device name rather than a profile name ('ibm_brisbane', 'FakeManilaV2'): offer the
        # profiles whose name holds all of its words.
        # profiles whose name holds every word of it that any profile name holds at all (a word
        # no profile uses, such as a version suffix "V2", cannot help and is dropped)
        vocab = {w for k in known for w in k.lower().split("-")}
        words = [w for w in (x.lower() for x in re.findall(r"[A-Z]?[a-z]+|\d+(?:\.\d+)?", name)) if w in vocab]
        close = [k for k in known if words and all(w in k.lower().split("-") for w in words)][:3]
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; expected {expected}: {', '.join(known)}"
