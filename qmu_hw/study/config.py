"""Study configuration (TOML): reading, per-table parsing, cross-key checks, :class:`StudyConfig`.

A study file has the tables ``[study] [data] [model] [training] [grid] [budget] [report]
[analysis]`` and ``[methods.NAME]``. Each table is parsed by :func:`_parse_table` from the fields of its
dataclass in :mod:`.config_tables` (the table classes and :data:`TABLES` are re-exported
here): a field's ``metadata`` holds the TOML type(s) it accepts and a ``check`` returning
what was expected when the value is wrong. Errors name the file, the table, the key and its
line. Checks that need more than one key (model vs dataset, per_class vs the
splits, backends vs qubit count) run in :func:`_check_across` and :func:`check_backends`.

``cfg.tables.<table>.<key>`` reads like the TOML. The flat names other code uses
(``cfg.seeds``, ``cfg.n_oracles``, ``cfg.train_backend`` ...) are read-only properties; the
mapping is :data:`FLAT`. ``cfg.model`` is ``[model] name``, ``cfg.methods`` is
``[grid] methods`` and ``cfg.hyperparameters`` the ``[methods.NAME]`` tables. A new key is
one field in its table in :mod:`.config_tables` (plus one :data:`FLAT` entry if code reads
it flat).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..core.exceptions import InvalidRequestError, QmuHwError
from ..core.names import unknown_name_message
from ..data.splits import parse_scenario
from .config_backends import check_backends, user_circuit  # noqa: F401  (check_backends re-exported)
from .config_errors import ConfigError, _Reader  # noqa: F401  (re-exported)
from .config_tables import (  # noqa: F401  (re-exported: callers import the tables from here)
    AXIS_SHORTHANDS,
    AXIS_TABLES,
    DATASET_SHAPES,
    IMAGE_MODELS,
    TABLES,
    TABULAR_MODELS,
    AnalysisTable,
    BudgetTable,
    DataTable,
    EvaluationTable,
    GridTable,
    ModelTable,
    ReportTable,
    StudyTable,
    Tables,
    TrainingTable,
)
from .per_example_settings import PerExampleSettings

# Flat attribute -> (table, key), for code that reads ``cfg.seeds`` etc.
FLAT: dict[str, tuple[str, str]] = {
    "name": ("study", "name"), "output": ("study", "output"), "seeds": ("study", "seeds"),
    "dataset": ("data", "dataset"), "data_dir": ("data", "data_dir"), "per_class": ("data", "per_class"),
    "angle_range": ("data", "angle_range"),
    "model": ("model", "name"), "n_qubits": ("model", "n_qubits"), "n_layers": ("model", "n_layers"),
    "entangler": ("model", "entangler"), "model_inputs": ("model", "inputs"), "model_weights": ("model", "weights"),
    "model_factory": ("model", "factory"), "model_circuit": ("model", "circuit"),
    **{k: ("training", k) for k in ("epochs", "patience", "lr", "batch_size", "n_oracles", "train_backend",
                                    "gradient", "grad_shots")},
    **{k: ("grid", k) for k in ("scenarios", "methods", "backends", "shots", "surrogates", "shots_for")},
    **{k: ("budget", k) for k in ("max_total_shots", "max_cost", "per_phase")},
    "compare_with": ("report", "compare_with"), "title": ("report", "title"),
    "primary": ("analysis", "primary"), "min_teacher_accuracy": ("analysis", "min_teacher_accuracy"),
    "threads": ("execution", "threads"),
    "per_example": ("evaluation", "per_example"),
}
# Not part of what decides results (kept out of the digest, hence out of cell ids).
_NOT_RESULTS = ("output", "name", "compare_with", "title", "primary", "min_teacher_accuracy", "threads")


@dataclass(frozen=True)
class StudyConfig:
    """A validated study. ``path`` is the file it came from (None if built in code)."""

    tables: Tables
    path: str | None = None
    # One validated config per combination of the study axes (``cfg.combinations()``);
    # empty when the study has no axes (then the study is its own one combination).
    combos: tuple = ()

    @property
    def axes(self) -> tuple[tuple[str, tuple], ...]:
        """``(("model.n_layers", (1, 2, 4)), ...)``: the study axes, in file order."""
        return self.tables.grid.axes

    def combinations(self) -> list[tuple[dict[str, Any], StudyConfig]]:
        """``(axis values, config of that combination)`` pairs: every axis key replaced by one
        of its values in the table it belongs to. Without axes: ``[({}, self)]``."""
        if not self.combos:
            return [({}, self)]
        return [(dict(values), c) for values, c in self.combos]

    def combination(self, values: dict[str, Any]) -> StudyConfig:
        """The config of one axis combination (``{}`` on a study without axes: itself)."""
        for v, c in self.combinations():
            if v == dict(values):
                return c
        raise InvalidRequestError(f"no axis combination {values!r} in this study; expected one of "
                                  f"{[v for v, _ in self.combinations()]}")

    @property
    def hyperparameters(self) -> dict[str, dict]:
        return self.tables.methods

    @property
    def model_extra(self) -> dict:
        """What a user model (``factory:``/``circuit:``) is built with beyond the built-in keys."""
        m = self.tables.model
        return {k: list(v) for k, v in (("inputs", m.inputs), ("weights", m.weights)) if v is not None}

    def digest(self) -> str:
        """sha256 of everything that determines results (not the output folder or name)."""
        d = {k: getattr(self, k) for k in FLAT if k not in _NOT_RESULTS}
        for added_later in ("shots_for", "model_inputs", "model_weights", "per_example"):
            if not d[added_later]:  # studies without these keys keep their digests (and checkpoints)
                del d[added_later]
        del d["model_factory"], d["model_circuit"]  # already in the model name
        if str(self.model).startswith("circuit:"):  # the file's content decides results, not its path
            d["model"] = "circuit"
            d["model_circuit_sha256"] = hashlib.sha256(Path(self.model[len("circuit:"):]).read_bytes()).hexdigest()
        if self.per_example is not None:  # populations add the per-example columns to every cell
            d["per_example"] = {"n_models": self.per_example.n_models}
        d["hyperparameters"] = self.hyperparameters
        if self.axes:  # studies without axes keep their digests (and checkpoints, cell ids)
            d["axes"] = [[name, list(values)] for name, values in self.axes]
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def _flat(table: str, name: str) -> property:
    return property(lambda self: getattr(getattr(self.tables, table), name),
                    doc=f"``[{table}] {name}``")


for _attr, (_table, _key) in FLAT.items():
    setattr(StudyConfig, _attr, _flat(_table, _key))


# -- reading -----------------------------------------------------------------------------------
def _parse_table(cls: type, section: str, table: Any, r: _Reader):
    if not isinstance(table, dict):
        raise r.err(section, None, "must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("toml", True)}
    values = {}
    for k, v in table.items():
        if k not in fields:
            raise r.err(section, k, f"unknown key; expected one of {sorted(fields)}")
        meta = fields[k].metadata
        types = meta["types"]
        if isinstance(v, bool) or not isinstance(v, types):
            names = "/".join(t.__name__ for t in types)
            raise r.err(section, k, f"expected {names}, got {v!r}")
        problem = meta["check"](v) if meta["check"] else None
        if problem:
            raise r.err(section, k, problem)
        values[k] = tuple(v) if isinstance(v, list) else v
    return cls(**values)


def load_config(path: str | Path, output: str | None = None, *, check_backends_now: bool = True,
                base_dir: str | Path | None = None) -> StudyConfig:
    """Read and validate a study config.

    ``check_backends_now``: build every local backend and check options and qubit counts
    (no cloud connection is opened). ``base_dir``: the folder relative paths resolve
    against (default: the config file's folder).
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"study config {p}: cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"study config {p}: not valid TOML: {exc}") from None
    cfg = parse_config(data, text, str(p), output, base_dir=base_dir)
    if check_backends_now:
        for _, combo in cfg.combinations():  # each combination's model (qubits) on every backend
            check_backends(combo, text)
    return cfg


def parse_config(data: dict, text: str = "", path: str = "<config>", output: str | None = None, *,
                 base_dir: str | Path | None = None) -> StudyConfig:
    """Validate a parsed TOML document; ``base_dir`` as in :func:`load_config`."""
    r = _Reader(text, path)
    base = Path(base_dir) if base_dir is not None else (Path(path).parent if path != "<config>" else Path.cwd())
    data, axes = _axes(data, r)
    whole, (data, per_example) = data, _per_example(data, r)  # combinations are parsed from the whole document
    for section in data:
        if section not in TABLES and section != "methods":
            raise r.err(section, None, f"unknown section; expected one of {sorted([*TABLES, 'methods'])}")
    parsed = {name: _parse_table(cls, name, data.get(name, {}), r) for name, cls in TABLES.items()}
    parsed["methods"] = _parse_methods(data.get("methods", {}), r)
    parsed["evaluation"] = dataclasses.replace(parsed["evaluation"], per_example=per_example)
    study, grid = parsed["study"], parsed["grid"]
    name = study.name or Path(path).stem
    parsed["study"] = dataclasses.replace(study, name=name, output=output or study.output or f"runs/{name}")
    parsed["model"] = _resolve_user_model(parsed["model"], base, r)
    parsed["grid"] = dataclasses.replace(
        grid, methods=_resolve_methods(grid.methods, r),
        backends=tuple(_resolve_backend(b, base, r, "grid", "backends") for b in grid.backends),
        shots=tuple(None if s == "exact" else s for s in grid.shots),
        surrogates={_resolve_backend(k, base, r, "grid", "surrogates"): _resolve_backend(v, base, r, "grid", "surrogates")
                    for k, v in grid.surrogates.items()},
        shots_for={_resolve_backend(k, base, r, "grid", "shots_for"): tuple(None if s == "exact" else s for s in v)
                   for k, v in grid.shots_for.items()})
    tr = parsed["training"] = dataclasses.replace(parsed["training"], lr=float(parsed["training"].lr))
    if tr.train_backend != "same":
        parsed["training"] = dataclasses.replace(
            tr, train_backend=_resolve_backend(tr.train_backend, base, r, "training", "train_backend"))
    dat, rep = parsed["data"], parsed["report"]
    if dat.data_dir is not None:
        parsed["data"] = dataclasses.replace(dat, data_dir=str(_against(dat.data_dir, base)))
    if rep.compare_with is not None:
        compare = _against(rep.compare_with, base)
        if not compare.is_file():
            raise r.err("report", "compare_with", f"file {compare} not found (relative paths are read from {base})")
        _check_reference_csv(compare, r)
        parsed["report"] = dataclasses.replace(rep, compare_with=str(compare))
    if axes:
        parsed["grid"] = dataclasses.replace(parsed["grid"], axes=tuple((f"{t}.{k}", tuple(v)) for t, k, v in axes))
    cfg = StudyConfig(Tables(**parsed), path=path)
    if axes:
        return dataclasses.replace(cfg, combos=_combinations(cfg, whole, axes, text, path, output, base))
    _check_across(cfg, r)
    if parsed["model"].factory is not None:
        _import_factory(parsed["model"].factory, r)
    return cfg


def _per_example(data: dict, r: _Reader) -> tuple[dict, PerExampleSettings | None]:
    """``[evaluation.per_example]`` (the document without it, and its settings): a table with
    ``n_models`` (default 32, at least 8: :class:`PerExampleSettings`' check)."""
    ev = data.get("evaluation")
    if ev is None:
        return data, None
    if not isinstance(ev, dict):
        raise r.err("evaluation", None, "must be a table (e.g. [evaluation.per_example])")
    ev = dict(ev)
    pe = ev.pop("per_example", None)
    if pe is None:
        return {**data, "evaluation": ev}, None
    section = "evaluation.per_example"
    if not isinstance(pe, dict):
        raise r.err("evaluation", "per_example", f"expected a table [evaluation.per_example], got {pe!r}")
    for k in pe:
        if k != "n_models":
            raise r.err(section, k, "unknown key; expected one of ['n_models']")
    try:
        settings = PerExampleSettings(**pe)
    except InvalidRequestError as exc:
        raise r.err(section, "n_models", str(exc).split(": ", 1)[-1]) from None
    return {**data, "evaluation": ev}, settings


# -- study axes ----------------------------------------------------------------------------
def _axes(data: dict, r: _Reader) -> tuple[dict, list[tuple[str, str, list]]]:
    """The document without its axes, and the axes ``(table, key, values)``: every
    ``[grid.<table>] key = [v1, v2]`` with table in :data:`AXIS_TABLES` (and the [grid]
    shorthands, e.g. ``train_backend``). Each value passes the same check as the scalar key
    (``[<table>] key = v``), before anything else is read."""
    grid = data.get("grid")
    if not isinstance(grid, dict):
        return data, []
    grid = dict(grid)
    axes: list[tuple[str, str, list]] = []
    for name in list(grid):
        if name in AXIS_TABLES:
            sub = grid.pop(name)
            if not isinstance(sub, dict):
                raise r.err("grid", name, f"expected a table [grid.{name}] of axis lists, got {sub!r}")
            axes += [(name, k, v) for k, v in sub.items()]
        elif name in AXIS_SHORTHANDS and isinstance(grid[name], list):
            axes.append((*AXIS_SHORTHANDS[name], grid.pop(name)))
    seen = set()
    for table, k, values in axes:
        section = f"grid.{table}"
        fields = {f.name: f for f in dataclasses.fields(TABLES[table])}
        if k not in fields:
            raise r.err(section, k, f"unknown key of [{table}]; expected one of {sorted(fields)}")
        if (table, k) in seen:
            raise r.err(section, k, f"the axis {table}.{k} is given twice")
        seen.add((table, k))
        if k in data.get(table, {}):
            raise r.err(section, k, f"[{table}] {k} is also set; give one value there or a list here, not both")
        if not isinstance(values, list) or not values:
            raise r.err(section, k, f"expected a non-empty list of values for the axis {table}.{k}, got {values!r}")
        if len({repr(v) for v in values}) != len(values):
            raise r.err(section, k, f"expected distinct values; got {values!r}")
        meta = fields[k].metadata
        for v in values:  # the scalar key's own type and check
            if isinstance(v, bool) or not isinstance(v, meta["types"]):
                names = "/".join(t.__name__ for t in meta["types"])
                raise r.err(section, k, f"expected a list of {names}, got {v!r}")
            problem = meta["check"](v) if meta["check"] else None
            if problem:
                raise r.err(section, k, f"value {v!r}: {problem}")
    return {**data, "grid": grid}, axes


def _combinations(cfg: StudyConfig, data: dict, axes, text: str, path: str, output, base: Path) -> tuple:
    """Every axis combination as a full config, parsed and cross-checked like a study that
    sets those values as scalars (so a digits model on iris is refused up front)."""
    out = []
    for values in itertools.product(*(v for _, _, v in axes)):
        doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
        for (table, k, _), v in zip(axes, values, strict=True):
            doc[table] = {**doc.get(table, {}), k: v}
        try:
            combo = parse_config(doc, text, path, output or cfg.output, base_dir=base)
        except ConfigError as exc:
            shown = ", ".join(f"{t}.{k} = {v!r}" for (t, k, _), v in zip(axes, values, strict=True))
            raise ConfigError(f"{exc} (axis combination {shown})") from None
        got = tuple((f"{t}.{k}", getattr(getattr(combo.tables, t), k)) for t, k, _ in axes)
        out.append((got, combo))
    return tuple(out)


def _import_factory(target: str, r: _Reader) -> None:
    """Import a ``[model] factory`` (the user's own code, by design) after every other check;
    whatever its import raises, SystemExit and KeyboardInterrupt included, becomes one line."""
    from ..models.custom import load_factory

    try:
        load_factory(target)
    except QmuHwError as exc:
        raise r.err("model", "factory", str(exc)) from None
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        said = " ".join(str(exc).split())[:200]
        raise r.err("model", "factory", f"importing {target.partition(':')[0]!r} raised {type(exc).__name__}"
                                        f"{': ' + said if said else ''}") from None


# What the report's "Ours vs the paper" table reads from a [report] compare_with CSV
# (report._paper_comparison); checked at load so a wrong file stops the study before it runs.
REFERENCE_TEXT_COLUMNS = ("scenario", "method")
REFERENCE_NUMBER_COLUMNS = ("acc_forget_unlearn", "acc_test_unlearn", "UQI")


def _check_reference_csv(path: Path, r: _Reader) -> None:
    import csv

    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in REFERENCE_TEXT_COLUMNS + REFERENCE_NUMBER_COLUMNS if c not in header]
            if missing:
                raise r.err("report", "compare_with", f"{path} lacks the columns {missing}; expected a CSV with "
                                                      f"{list(REFERENCE_TEXT_COLUMNS + REFERENCE_NUMBER_COLUMNS)}")
            for n, row in enumerate(reader, start=2):
                for c in REFERENCE_NUMBER_COLUMNS:
                    try:
                        float(row[c])
                    except (TypeError, ValueError):
                        raise r.err("report", "compare_with", f"{path} line {n}: column {c} is not a number: "
                                                              f"{row[c]!r}") from None
    except UnicodeDecodeError:
        raise r.err("report", "compare_with", f"{path} is not a UTF-8 text CSV") from None
    except (OSError, csv.Error) as exc:
        raise r.err("report", "compare_with", f"{path} cannot be read as CSV ({exc})") from None


def _against(p: str, base: Path) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else (base / q).resolve()


def _resolve_methods(methods, r: _Reader) -> tuple[str, ...]:
    from ..unlearning import method_names

    if methods == "all":
        return tuple(method_names())
    if isinstance(methods, str):
        raise r.err("grid", "methods", f"expected \"all\" or a list of method names, got {methods!r}")
    if not methods:
        raise r.err("grid", "methods", "the method list is empty; name at least one method or use \"all\"")
    for m in methods:
        if m not in method_names():
            raise r.err("grid", "methods", unknown_name_message("method", m, method_names(), "one of"))
    if len(set(methods)) != len(methods):
        raise r.err("grid", "methods", f"a method appears more than once in {list(methods)}")
    return tuple(methods)


def _parse_methods(table: Any, r: _Reader) -> dict[str, dict]:
    from ..unlearning import hyperparameter_problem, method_names

    if not isinstance(table, dict):
        raise r.err("methods", None, "must hold [methods.NAME] tables")
    out = {}
    for name, hp in table.items():
        if name not in method_names():
            raise r.err(f"methods.{name}", None, unknown_name_message("method", name, method_names(), "one of"))
        if not isinstance(hp, dict):
            raise r.err(f"methods.{name}", None, "must be a table of hyperparameters")
        for k, v in hp.items():  # type and range, so `lr = "fast"` stops here, not after the teachers
            problem = hyperparameter_problem(name, k, v)
            if problem:
                raise r.err(f"methods.{name}", k, problem)
        out[name] = dict(hp)
    return out


def _resolve_backend(b: str, base: Path, r: _Reader, section: str, key_: str) -> str:
    """A built-in profile name stays a name; a path becomes absolute (against ``base``)."""
    from ..core.profiles import builtin_profiles

    if not isinstance(b, str):
        raise r.err(section, key_, f"expected a profile name or path, got {b!r}")
    known = builtin_profiles()
    if b in known:
        return b
    if b.endswith(".toml") or "/" in b:
        p = _against(b, base)
        if p.is_file():
            return str(p)
        raise r.err(section, key_, f"profile file {p} not found (relative paths are read from {base})")
    raise r.err(section, key_, unknown_name_message("backend", b, known, "a profile path or one of"))


def _resolve_user_model(m, base: Path, r: _Reader):
    """``[model] factory`` / ``circuit`` become the model name ``factory:pkg.mod:fn`` /
    ``circuit:/abs/file.qasm``; the file must exist now, before any data is loaded (the
    factory is imported by :func:`_import_factory`, after every other check)."""
    if m.factory is None and m.circuit is None:
        for k in ("inputs", "weights"):
            if getattr(m, k) is not None:
                raise r.err("model", k, "only used with [model] circuit = \"file.qasm\"")
        return m
    given = [k for k in ("name", "factory", "circuit") if getattr(m, k) is not None]
    if len(given) > 1:
        raise r.err("model", given[1], f"expected one of [model] name, factory or circuit, got {given}")
    if m.factory is not None:  # imported by _import_factory, after every other check
        return dataclasses.replace(m, name=f"factory:{m.factory}")
    path = _against(m.circuit, base)
    if not path.is_file():
        raise r.err("model", "circuit", f"file {path} not found (relative paths are read from {base})")
    if not m.inputs:
        raise r.err("model", "inputs", f"circuit {path.name}: name its per-sample parameters, e.g. "
                                       "inputs = [\"x0\", \"x1\", \"x2\", \"x3\"]")
    return dataclasses.replace(m, name=f"circuit:{path}")


def _check_across(cfg: StudyConfig, r: _Reader) -> None:
    """Checks that involve more than one key; all before any data is loaded or model trained."""
    t = cfg.tables
    kind, features, n_classes = DATASET_SHAPES[cfg.dataset]
    model = cfg.model or ("hqml-iris" if kind == "tabular" else "hqml-cnn")
    if model.startswith("circuit:"):
        circuit = user_circuit(cfg, r)
        if kind != "tabular" or circuit.n_inputs != features:
            raise r.err("model", "inputs", f"circuit reads {circuit.n_inputs} inputs per sample; dataset "
                                           f"{cfg.dataset!r} gives {features if kind == 'tabular' else 'images'}: "
                                           "a circuit model takes one input per tabular feature")
        if cfg.n_qubits is not None and cfg.n_qubits != circuit.n_qubits:
            raise r.err("model", "n_qubits", f"the circuit has {circuit.n_qubits} qubits, got n_qubits = {cfg.n_qubits}")
    elif model.startswith("factory:"):
        pass  # the factory decides its own shape; checked when the first model is built
    elif kind == "tabular" and model not in TABULAR_MODELS or kind == "image" and model not in IMAGE_MODELS:
        raise r.err("model", "name", f"model {model!r} does not take {kind} inputs of dataset {cfg.dataset!r}; "
                                     f"expected one of {TABULAR_MODELS if kind == 'tabular' else IMAGE_MODELS}")
    if kind == "tabular" and cfg.n_qubits is not None and cfg.n_qubits != features and ":" not in model:
        raise r.err("model", "n_qubits", f"dataset {cfg.dataset!r} has {features} features, one per qubit: "
                                         f"expected n_qubits = {features}, got {cfg.n_qubits}")
    for s in cfg.scenarios:
        kind_s, value = parse_scenario(s)
        if kind_s == "class" and int(value) >= n_classes:
            raise r.err("grid", "scenarios", f"scenario {s!r}: dataset {cfg.dataset!r} has classes "
                                             f"0..{n_classes - 1}")
    if cfg.per_class is not None:
        problem = _splits_problem(cfg.per_class, any(s.startswith("subset") for s in cfg.scenarios))
        if problem:
            raise r.err("data", "per_class", problem)
    for k in t.grid.shots_for:
        if k not in cfg.backends:
            raise r.err("grid", "shots_for", f"shots for {k!r}, which is not in [grid] backends {list(cfg.backends)}")
    for k in t.grid.surrogates:
        if k not in cfg.backends:
            raise r.err("grid", "surrogates", f"surrogate for {k!r}, which is not in [grid] backends "
                                              f"{list(cfg.backends)}")


def _splits_problem(per_class: int, subset: bool) -> str | None:
    """Whether ``per_class`` samples of a class leave every split at least one sample (and
    the training split two, so a subset scenario keeps a retain sample); simulated with the
    real split code on one class, which is what balanced subsampling gives every class."""
    import numpy as np

    from ..data.splits import make_splits

    s = make_splits(np.zeros(per_class, dtype=np.int64), 0)
    sizes = {"train": len(s.train), "val": len(s.val), "test": len(s.test), "pool": len(s.pool)}
    need_train = 2 if subset else 1
    if min(sizes["val"], sizes["test"], sizes["pool"]) < 1 or sizes["train"] < need_train:
        return (f"per_class = {per_class} is too small for the train/val/test/pool splits (per class: "
                f"{sizes}); expected a value that leaves every split a sample of each class, e.g. >= 10")
    return None
