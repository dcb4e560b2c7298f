"""Declarative backend profiles (TOML, schema-versioned), validated on load."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from importlib import resources

try:
    from importlib.resources.abc import Traversable
except ImportError:  # pragma: no cover - Python 3.10
    from importlib.abc import Traversable
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .adapter_registry import ADAPTER_NAME
from .contract import check_shots
from .exceptions import ProfileError
from .names import unknown_name_message

SCHEMA_VERSION = 1
TOP_KEYS = {
    "schema_version", "name", "description", "adapter", "options", "defaults", "noise",
    "limits", "budget", "cost", "requires_confirmation", "credentials",
}
SECTION_KEYS = {
    "defaults": {"shots", "grad_shots", "seed"},
    "noise": {"kind", "p1", "p2", "readout", "t1_us", "t2_us", "gate_time_ns", "device", "qubits"},
    "limits": {"max_qubits", "max_circuits_per_job", "max_shots"},
    "budget": {"total_shots", "max_cost"},
    "cost": {"currency", "per_task", "per_shot", "per_second", "seconds_per_shot", "min_billed_seconds",
             "task_latency_s"},
    "credentials": {"env", "channel", "instance_env", "token_env", "region_env"},
}
NOISE_KINDS = ("none", "depolarizing", "fake-device", "calibrated")


@dataclass(frozen=True)
class Profile:
    """A validated backend profile. ``sha256`` hashes the file's bytes."""

    name: str
    adapter: str
    path: str
    sha256: str
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    shots: int | None = None
    grad_shots: int | None = None
    seed: int | None = None
    noise: dict[str, Any] = field(default_factory=lambda: {"kind": "none"})
    limits: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    requires_confirmation: bool = False
    credentials: dict[str, Any] = field(default_factory=dict)

    @property
    def noise_kind(self) -> str:
        return self.noise.get("kind", "none")

    @property
    def is_cloud(self) -> bool:
        """Submits to a provider's service, as its adapter declares (``adapter_info``)."""
        from .adapter_registry import adapter_class

        return bool(adapter_class(self.adapter).is_remote(self))

    def parametric_noise(self, engine: str) -> tuple[float, float, float]:
        """``(p1, p2, readout)`` for engines that model only depolarizing + readout noise;
        any other noise in the profile is refused by name."""
        kind = self.noise_kind
        if kind not in ("none", "depolarizing"):
            raise ProfileError(
                f"backend profile {self.path}: the {engine} engine supports noise kinds 'none' and "
                f"'depolarizing', got {kind!r}"
            )
        if self.noise.get("t1_us"):
            raise ProfileError(
                f"backend profile {self.path}: key 'noise.t1_us': thermal relaxation is not modelled by "
                f"the {engine} engine; use an 'aer' profile"
            )
        return tuple(float(self.noise.get(k, 0.0)) for k in ("p1", "p2", "readout"))  # type: ignore[return-value]

    def describe_noise(self) -> str:
        n = self.noise
        kind = self.noise_kind
        if kind == "none":
            return "none"
        if kind == "depolarizing":
            parts = [f"depol p1={n.get('p1', 0)} p2={n.get('p2', 0)}"]
            if n.get("readout"):
                parts.append(f"readout={n['readout']}")
            if n.get("t1_us"):
                parts.append(f"T1={n['t1_us']}us T2={n.get('t2_us')}us")
            return ", ".join(parts)
        return f"calibrated from {n.get('device')}"


def _shots_value(raw: Any, where: str) -> int | None:
    if raw in (None, "exact"):
        return None
    try:
        return check_shots(raw, where)
    except ValueError as exc:
        raise ProfileError(f"{where}: {exc} (use a positive integer or \"exact\")") from None


def parse_profile(data: dict[str, Any], path: str, digest: str) -> Profile:
    """Validate a profile's TOML table; every error names the file and the key."""

    def err(key: str, msg: str) -> ProfileError:
        return ProfileError(f"backend profile {path}: key {key!r}: {msg}")

    unknown = set(data) - TOP_KEYS
    if unknown:
        raise err(sorted(unknown)[0], f"unknown key; expected one of {sorted(TOP_KEYS)}")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise err("schema_version", f"expected {SCHEMA_VERSION}, got {data.get('schema_version')!r}")
    for key in ("name", "adapter"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise err(key, f"required non-empty string, got {data.get(key)!r}")
    if not ADAPTER_NAME.match(data["adapter"]):  # checked here so that validating a profile imports nothing
        raise err("adapter", f"{data['adapter']!r} is not an adapter name; name a registered adapter (a shipped "
                  "one or a package's 'qmu_hw.adapters' entry point), never a module path")
    for section, allowed in SECTION_KEYS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise err(section, f"must be a table, got {type(table).__name__}")
        bad = set(table) - allowed
        if bad:
            raise err(f"{section}.{sorted(bad)[0]}", f"unknown key; expected one of {sorted(allowed)}")
    if not isinstance(data.get("options", {}), dict):
        raise err("options", "must be a table")
    defaults = data.get("defaults", {})
    noise = dict(data.get("noise", {}) or {"kind": "none"})
    noise.setdefault("kind", "none")
    if noise["kind"] not in NOISE_KINDS:
        raise err("noise.kind", f"expected one of {NOISE_KINDS}, got {noise['kind']!r}")
    for p in ("p1", "p2", "readout"):
        if p in noise and not (isinstance(noise[p], (int, float)) and 0 <= noise[p] <= 1):
            raise err(f"noise.{p}", f"must be a probability in [0, 1], got {noise[p]!r}")
    if noise["kind"] in ("fake-device", "calibrated") and not isinstance(noise.get("device"), str):
        raise err("noise.device", "a fake-device profile names its device, e.g. \"FakeManilaV2\"")
    limits = data.get("limits", {})
    for k, v in limits.items():
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise err(f"limits.{k}", f"must be a positive integer, got {v!r}")
    cost = data.get("cost", {})
    for k in ("per_task", "per_shot", "per_second", "seconds_per_shot", "task_latency_s"):
        if k in cost and not (isinstance(cost[k], (int, float)) and cost[k] >= 0):
            raise err(f"cost.{k}", f"must be a non-negative number, got {cost[k]!r}")
    creds = data.get("credentials", {})
    if "env" in creds and not (isinstance(creds["env"], list) and all(isinstance(x, str) for x in creds["env"])):
        raise err("credentials.env", "must be a list of environment-variable NAMES (never secrets)")
    rc = data.get("requires_confirmation", False)
    if not isinstance(rc, bool):
        raise err("requires_confirmation", f"must be true or false, got {rc!r}")
    return Profile(
        name=data["name"],
        adapter=data["adapter"],
        path=path,
        sha256=digest,
        description=str(data.get("description", "")),
        options=dict(data.get("options", {})),
        shots=_shots_value(defaults.get("shots"), f"backend profile {path}: key 'defaults.shots'"),
        grad_shots=_shots_value(defaults.get("grad_shots"), f"backend profile {path}: key 'defaults.grad_shots'"),
        seed=defaults.get("seed"),
        noise=noise,
        limits=dict(limits),
        budget=dict(data.get("budget", {})),
        cost=dict(cost),
        requires_confirmation=rc,
        credentials=dict(creds),
    )


def load_profile_file(path: str | Path | Traversable) -> Profile:
    """Load and validate one profile: a path, or a ``Traversable`` from :func:`builtin_profiles`
    (a shipped profile may live inside a zip, where no real file path exists)."""
    p = Path(path) if isinstance(path, str) else path
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ProfileError(f"backend profile {p}: cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"backend profile {p}: not valid TOML: {exc}") from None
    return parse_profile(data, str(p), hashlib.sha256(raw).hexdigest())


def _has_profiles(d: Traversable) -> bool:
    try:
        return d.is_dir() and any(e.name.endswith(".toml") for e in d.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return False


def builtin_profile_dir() -> Traversable:
    """The shipped profiles, as a ``Traversable`` (not necessarily a real folder):

    * a wheel or zip install: ``qmu_hw/_profiles/`` inside the installed package, reached from
      the regular package ``qmu_hw`` (zipimport cannot import the namespace package
      ``qmu_hw._profiles``, and its ``files()`` would be a ``MultiplexedPath``, whose ``str()``
      is not a path);
    * an editable install: ``qmu_hw._profiles``, which setuptools' editable finder maps to
      ``backends/``;
    * a checkout run through ``PYTHONPATH``: ``backends/`` beside the package.
    """
    candidates = [lambda: resources.files("qmu_hw").joinpath("_profiles"),
                  lambda: resources.files("qmu_hw._profiles")]
    for candidate in candidates:
        try:
            d = candidate()
        except ModuleNotFoundError:
            continue
        if _has_profiles(d):
            return d
    return Path(__file__).resolve().parents[2] / "backends"


def builtin_profiles() -> dict[str, Traversable]:
    """Profile name → file (a ``Traversable``; ``importlib.resources.as_file`` gives a real
    path where one is needed), for every shipped profile."""
    found = [e for e in builtin_profile_dir().iterdir() if e.is_file() and e.name.endswith(".toml")]
    return {e.name[: -len(".toml")]: e for e in sorted(found, key=lambda e: e.name)}


def resolve_profile(name_or_path: str | Path) -> Profile:
    """A profile by built-in name (``"aer-depol-0.01"``) or by path to a TOML file."""
    s = str(name_or_path)
    if s.endswith(".toml") or "/" in s or Path(s).is_file():
        return load_profile_file(s)
    known = builtin_profiles()
    if s not in known:
        raise ProfileError(unknown_name_message("backend", s, known, "a profile path or one of"))
    return load_profile_file(known[s])
