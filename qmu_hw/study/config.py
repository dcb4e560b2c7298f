"""Study configuration (TOML), validated with errors that name the key and its line."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..core.exceptions import InvalidRequestError
from ..data.datasets import DATASETS
from ..data.splits import parse_scenario

SCHEMA: dict[str, dict[str, type | tuple]] = {
    "study": {"name": str, "output": str, "seeds": list},
    "data": {"dataset": str, "data_dir": str, "per_class": int, "angle_range": str},
    "model": {"name": str, "n_qubits": int, "n_layers": int, "entangler": str},
    "training": {"epochs": int, "patience": int, "lr": float, "batch_size": int, "n_oracles": int,
                 "train_backend": str, "gradient": str, "grad_shots": (int, str)},
    "grid": {"scenarios": list, "methods": (list, str), "backends": list, "shots": list,
             "surrogates": dict},
    "budget": {"max_total_shots": int, "max_cost": float, "per_phase": dict},
    "report": {"compare_with": str, "title": str},
    "methods": {},  # [methods.NAME] tables of hyperparameter overrides
}


class ConfigError(InvalidRequestError):
    """A study config is malformed; the message names the file, key and line."""


def _line_of(text: str, section: str, key: str | None) -> int | None:
    lines = text.splitlines()
    current = ""
    for i, line in enumerate(lines, start=1):
        m = re.match(r"^\s*\[([^\]]+)\]", line)
        if m:
            current = m.group(1).strip()
            if key is None and current == section:
                return i
            continue
        if key is not None and current == section and re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", line):
            return i
    return None


@dataclass(frozen=True)
class StudyConfig:
    """A validated study. ``path`` is the file it came from (None if built in code)."""

    name: str
    output: str
    seeds: tuple[int, ...]
    dataset: str
    scenarios: tuple[str, ...]
    methods: tuple[str, ...]
    backends: tuple[str, ...]
    shots: tuple[int | None, ...]
    data_dir: str | None = None
    per_class: int | None = None
    angle_range: str = "half-pi"
    model: str | None = None
    n_qubits: int | None = None
    n_layers: int | None = None
    entangler: str = "ring"
    epochs: int = 100
    patience: int = 25
    lr: float = 0.01
    batch_size: int = 32
    n_oracles: int = 5
    train_backend: str = "exact"
    gradient: str = "parameter-shift"
    grad_shots: int | str = "same"
    surrogates: dict[str, str] = field(default_factory=dict)
    hyperparameters: dict[str, dict] = field(default_factory=dict)
    max_total_shots: int | None = None
    max_cost: float | None = None
    per_phase: dict[str, int] = field(default_factory=dict)
    compare_with: str | None = None
    title: str | None = None
    path: str | None = None

    def digest(self) -> str:
        """sha256 of everything that determines results (not the output folder or name)."""
        d = asdict(self)
        for k in ("path", "output", "name", "compare_with", "title"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def load_config(path: str | Path, output: str | None = None) -> StudyConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"study config {p}: cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"study config {p}: not valid TOML: {exc}") from None
    return parse_config(data, text, str(p), output)


def parse_config(data: dict, text: str = "", path: str = "<config>", output: str | None = None) -> StudyConfig:
    from ..core.profiles import builtin_profiles
    from ..models.hybrid import MODELS
    from ..unlearning import method_defaults, method_names

    def err(section: str, key: str | None, msg: str) -> ConfigError:
        line = _line_of(text, section, key)
        where = f"[{section}]" + (f" {key}" if key else "")
        return ConfigError(f"study config {path}: {where}{f' (line {line})' if line else ''}: {msg}")

    for section in data:
        if section not in SCHEMA:
            raise err(section, None, f"unknown section; expected one of {sorted(SCHEMA)}")
    for section, keys in SCHEMA.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise err(section, None, "must be a table")
        if section == "methods":
            continue
        for key, value in table.items():
            if key not in keys:
                raise err(section, key, f"unknown key; expected one of {sorted(keys)}")
            want = keys[key]
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                continue
            if isinstance(value, bool) or not isinstance(value, want):
                names = "/".join(t.__name__ for t in (want if isinstance(want, tuple) else (want,)))
                raise err(section, key, f"expected {names}, got {value!r}")
    study, dat, mod = data.get("study", {}), data.get("data", {}), data.get("model", {})
    tr, grid, bud = data.get("training", {}), data.get("grid", {}), data.get("budget", {})

    dataset = dat.get("dataset", "iris")
    if dataset not in DATASETS:
        raise err("data", "dataset", f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    if mod.get("name") is not None and mod["name"] not in MODELS:
        raise err("model", "name", f"unknown model {mod['name']!r}; expected one of {MODELS}")
    seeds = study.get("seeds", [0])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise err("study", "seeds", f"expected a non-empty list of non-negative integers, got {seeds!r}")
    scenarios = grid.get("scenarios", ["subset:0.02", "class:0"])
    if not scenarios:
        raise err("grid", "scenarios", "must not be empty")
    for s in scenarios:
        try:
            parse_scenario(s)
        except InvalidRequestError as exc:
            raise err("grid", "scenarios", str(exc)) from None
    methods = grid.get("methods", "all")
    if methods == "all":
        methods = method_names()
    elif isinstance(methods, str):
        raise err("grid", "methods", f"expected \"all\" or a list of method names, got {methods!r}")
    if not methods:
        raise err("grid", "methods", "the method list is empty; name at least one method or use \"all\"")
    for m in methods:
        if m not in method_names():
            raise err("grid", "methods", f"unknown method {m!r}; expected one of {method_names()}")
    backends = grid.get("backends", ["exact"])
    if not backends:
        raise err("grid", "backends", "must not be empty")
    known = builtin_profiles()
    for b in backends + [tr.get("train_backend", "exact")] + list(grid.get("surrogates", {}).values()):
        if b == "same":
            continue
        if b not in known and not (b.endswith(".toml") and Path(b).is_file()):
            raise err("grid", "backends", f"unknown backend {b!r}; expected a profile path or one of {sorted(known)}")
    shots = []
    for s in grid.get("shots", ["exact"]):
        if s == "exact":
            shots.append(None)
        elif isinstance(s, int) and not isinstance(s, bool) and s > 0:
            shots.append(s)
        else:
            raise err("grid", "shots", f"each entry must be a positive integer or \"exact\", got {s!r}")
    if not shots:
        raise err("grid", "shots", "must not be empty")
    hp = {}
    for name, table in data.get("methods", {}).items():
        if name not in method_names():
            raise err(f"methods.{name}", None, f"unknown method {name!r}; expected one of {method_names()}")
        valid = method_defaults(name)
        for k in table:
            if k not in valid:
                raise err(f"methods.{name}", k, f"unknown hyperparameter; valid: {sorted(valid)}")
        hp[name] = dict(table)
    gradient = tr.get("gradient", "parameter-shift")
    if gradient not in ("parameter-shift", "spsa"):
        raise err("training", "gradient", f"expected 'parameter-shift' or 'spsa' (the exact backend uses backprop), got {gradient!r}")
    grad_shots = tr.get("grad_shots", "same")
    if isinstance(grad_shots, str) and grad_shots != "same" or isinstance(grad_shots, int) and grad_shots <= 0:
        raise err("training", "grad_shots", f"expected a positive integer or \"same\", got {grad_shots!r}")
    for key in ("epochs", "patience", "batch_size", "n_oracles"):
        if key in tr and tr[key] < (0 if key == "n_oracles" else 1):
            raise err("training", key, f"must be positive, got {tr[key]}")
    if "max_total_shots" in bud and bud["max_total_shots"] <= 0:
        raise err("budget", "max_total_shots", f"must be positive, got {bud['max_total_shots']}")
    out = output or study.get("output") or f"runs/{study.get('name', Path(path).stem)}"
    rep = data.get("report", {})
    compare = rep.get("compare_with")
    if compare is not None:
        compare_path = Path(compare) if Path(compare).is_absolute() else Path(path).parent / compare
        if not compare_path.is_file():
            raise err("report", "compare_with", f"file {compare_path} not found")
        compare = str(compare_path)
    return StudyConfig(
        name=study.get("name", Path(path).stem), output=out, seeds=tuple(seeds), dataset=dataset,
        scenarios=tuple(scenarios), methods=tuple(methods), backends=tuple(backends), shots=tuple(shots),
        data_dir=dat.get("data_dir"), per_class=dat.get("per_class"), angle_range=dat.get("angle_range", "half-pi"),
        model=mod.get("name"), n_qubits=mod.get("n_qubits"), n_layers=mod.get("n_layers"),
        entangler=mod.get("entangler", "ring"), epochs=tr.get("epochs", 100), patience=tr.get("patience", 25),
        lr=float(tr.get("lr", 0.01)), batch_size=tr.get("batch_size", 32), n_oracles=tr.get("n_oracles", 5),
        train_backend=tr.get("train_backend", "exact"), gradient=gradient, grad_shots=grad_shots,
        surrogates=dict(grid.get("surrogates", {})), hyperparameters=hp,
        max_total_shots=bud.get("max_total_shots"), max_cost=bud.get("max_cost"),
        per_phase=dict(bud.get("per_phase", {})), compare_with=compare, title=rep.get("title"), path=path,
    )
