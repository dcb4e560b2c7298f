"""MkDocs hook: the reference pages that are generated from the code at build time.

* ``reference/config.md``: every key of every study-config table, from the dataclasses in
  ``qmu_hw.study.config_tables`` (type, default, and the comment next to the field), plus each
  method's hyperparameters from the method registry.
* ``reference/results-columns.md``: the ``results.csv`` column dictionary (:func:`results_columns`).
* ``reference/cli.md``: ``qmu-hw --help`` of every command, from the CLI's own parser.

The pages are added as generated files (``File.generated``), so nothing is written into
``docs/`` and nothing generated is committed. Run ``python docs/hooks/generate.py`` to print them.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import sys
import textwrap
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # document this checkout, not another installed copy
    sys.path.insert(0, str(ROOT))


# -- study config reference ------------------------------------------------------------------
def _field_comments(cls) -> dict[str, str]:
    """Field name → the comment(s) on its line(s) and directly above it, from the source."""
    import inspect

    src = textwrap.dedent(inspect.getsource(cls))
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = src.splitlines()
    out = {}
    body = ast.parse(src).body[0].body
    prev_end = ast.parse(src).body[0].lineno
    for node in body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above = []
            ln = node.lineno - 1
            while ln > prev_end and lines[ln - 1].strip().startswith("#"):
                above.insert(0, comments.get(ln, ""))
                ln -= 1
            own = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
            out[node.target.id] = " ".join(above + own)
        prev_end = node.end_lineno
    return out


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        v = f.default
    elif f.default_factory is not dataclasses.MISSING:
        v = f.default_factory()
    else:
        return "required"
    if v is None:
        return "(none)"
    if isinstance(v, tuple):
        v = list(v)
    return f"`{_toml(v)}`"


def _toml(v) -> str:
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + "}"
    return str(v)


def _types(f: dataclasses.Field) -> str:
    names = {"str": "string", "int": "integer", "float": "number", "list": "array", "dict": "table",
             "bool": "boolean"}
    return " or ".join(names.get(t.__name__, t.__name__) for t in f.metadata.get("types", ()))


_PROBES = {str: "\x00", int: -(10**9), float: -1e300, list: [None], dict: {"\x00": None}}


def _accepts(f: dataclasses.Field) -> str:
    """What the key's own check accepts, in its words: the check is run on a value of the right
    TOML type that no check allows, and its "expected ..." message is kept."""
    check, types = f.metadata.get("check"), f.metadata.get("types", ())
    if check is None or not types or types[0] not in _PROBES:
        return ""
    try:
        msg = check(_PROBES[types[0]])
    except Exception:  # noqa: BLE001 - a check that cannot take the probe says nothing here
        return ""
    if not msg or "expected " not in msg:
        return ""
    text = msg.split("expected ", 1)[1]
    for cut in (", got", "; ", " for '\\x00'"):
        text = text.split(cut, 1)[0]
    return text.strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def config_reference() -> str:
    from qmu_hw.study.config_tables import TABLES
    from qmu_hw.unlearning import method_defaults, method_names

    out = ["# Study config reference", "",
           "Generated from the config dataclasses (`qmu_hw/study/config_tables.py`) when the site is built. "
           "A study is one TOML file; every key is optional unless marked required. Unknown keys, wrong types "
           "and bad values are refused when the config is read, naming the table and the key, before any "
           "training. Relative paths are read from the config file's folder.", ""]
    for table, cls in TABLES.items():
        comments = _field_comments(cls)
        out += [f"## `[{table}]`", "", "| key | TOML type | default | accepts | notes |", "|---|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            out.append(f"| `{f.name}` | {_types(f)} | {_cell(_default(f))} | {_cell(_accepts(f))} | "
                       f"{_cell(comments.get(f.name, ''))} |")
        out.append("")
    out += ["## `[methods.NAME]`", "",
            "Hyperparameter overrides per unlearning method; the keys a method accepts and their defaults, "
            "from the method registry (`qmu_hw.unlearning.method_defaults`):", "",
            "| method | hyperparameters (defaults) |", "|---|---|"]
    for name in method_names():
        hp = method_defaults(name)
        out.append(f"| `{name}` | {_cell(', '.join(f'`{k} = {_toml(v)}`' for k, v in hp.items()) or '(none)')} |")
    out += ["", f"{len(method_names())} methods are registered. `[grid] methods = \"all\"` runs every one.", ""]
    return "\n".join(out)


# -- results.csv column dictionary -------------------------------------------------------------
def results_columns() -> str:
    """The ``results.csv`` column dictionary, from the metric catalog.

    The hook point for the catalog: ``qmu_hw.metrics.catalog.column_dictionary()`` (one entry
    per metric: label, range, direction, reference, meaning). Before the catalog exists, the
    key columns of the results store are listed and the page says the metric columns are
    described in ``qmu_hw.study.evaluation``.
    """
    head = ["# `results.csv` columns", "",
            "One row per finished cell of the current grid. Generated from the code when the site is built.", ""]
    try:
        from qmu_hw.metrics.catalog import column_dictionary
    except ImportError:
        from qmu_hw.study.store import KEY_COLUMNS

        return "\n".join(head + [
            "!!! note", "    The metric catalog (`qmu_hw.metrics.catalog`) is not part of this build; only the "
            "key columns are listed. Metric columns are documented in `qmu_hw.study.evaluation`.", "",
            "| key column |", "|---|", *[f"| `{c}` |" for c in KEY_COLUMNS], ""])
    return "\n".join(head) + "\n" + column_dictionary()


# -- CLI reference -----------------------------------------------------------------------------
def cli_reference() -> str:
    from qmu_hw.cli import build_parser

    ap = build_parser()
    out = ["# Command line", "", "Generated from `qmu-hw --help` when the site is built.", "",
           "```text", ap.format_help().rstrip().replace("usage: ", "usage: ", 1), "```", ""]
    sub = next(a for a in ap._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, parser in sub.choices.items():
        out += [f"## `qmu-hw {name}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    return "\n".join(out)


PAGES = {"reference/config.md": config_reference, "reference/results-columns.md": results_columns,
         "reference/cli.md": cli_reference}


def on_files(files, config):
    from mkdocs.structure.files import File

    for uri, make in PAGES.items():
        files.append(File.generated(config, uri, content=make()))
    return files


if __name__ == "__main__":
    for make in PAGES.values():
        print(make())
