"""The grid: axis combination × seed × scenario × backend × shots × method, and cell
identities. A study's axes (``[grid.model] n_layers = [1, 2]`` ...) are in
:meth:`StudyConfig.combinations`; a cell carries its combination's values (``axes``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache

from ..core.profiles import Profile, resolve_profile
from .config_tables import AXIS_TABLES  # axis columns are named <table>.<key>


def axis_columns(rows: list[dict]) -> list[str]:
    """The study-axis columns (``model.n_layers`` ...) present in ``rows``, in first-seen order."""
    out: dict[str, None] = {}
    for r in rows:
        for k in r:
            if "." in k and k.split(".", 1)[0] in AXIS_TABLES:
                out.setdefault(k, None)
    return list(out)


@lru_cache(maxsize=128)
def profile_of(name: str) -> Profile:
    return resolve_profile(name)


@dataclass(frozen=True)
class Cell:
    dataset: str
    scenario: str
    seed: int
    backend: str
    shots: int | None
    method: str
    # ``(("model.n_layers", 2), ...)``: the study-axis values of this cell's combination.
    axes: tuple[tuple[str, object], ...] = ()

    def key(self) -> dict:
        out = {"dataset": self.dataset, "scenario": self.scenario, "seed": self.seed, "backend": self.backend,
               "profile_sha256": profile_of(self.backend).sha256, "shots": self.shots, "method": self.method}
        if self.axes:  # only then: cells of a study without axes keep their ids
            out["axes"] = dict(self.axes)
        return out

    def cell_id(self, cfg) -> str:
        """Changes whenever anything that determines this cell's result changes: the config's
        result-relevant content, the backend profile's bytes (and a surrogate's), the cell.
        ``cfg`` may be the study or the cell's combination; the combination's digest is used,
        so adding a value to an axis keeps the ids (and results) of the cells already run."""
        cfg = cfg.combination(dict(self.axes)) if self.axes and cfg.axes else cfg
        surrogate = cfg.surrogates.get(self.backend)
        parts = {
            "config": cfg.digest(),
            "cell": self.key(),
            "surrogate": None if surrogate is None else profile_of(surrogate).sha256,
            "train_backend": None if cfg.train_backend == "same" else profile_of(cfg.train_backend).sha256,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]

    @property
    def label(self) -> str:
        shots = "exact" if self.shots is None else self.shots
        axes = "".join(f" {k}={v}" for k, v in self.axes)
        return f"{self.scenario} seed={self.seed} {self.backend}@{shots} {self.method}{axes}"


def backend_shots(cfg, backend: str) -> list[int | None]:
    """Shots values a backend runs at: its ``[grid] shots_for`` list if it has one; else an
    exact-only profile (default shots "exact" and noiseless) runs once, exactly, and every
    other profile runs at each configured shots value."""
    if backend in cfg.shots_for:  # [grid] shots_for: this backend's own list
        return list(cfg.shots_for[backend])
    prof = profile_of(backend)
    if prof.shots is None and prof.noise_kind == "none":
        return [None]
    return list(cfg.shots)


def expand(cfg) -> list[Cell]:
    """Cells in run order: one axis combination after another, seed-major within it so one
    seed's teacher and oracles serve a block."""
    cells = []
    for values, c in cfg.combinations():
        axes = tuple(values.items())
        for seed in c.seeds:
            for scenario in c.scenarios:
                for backend in c.backends:
                    for shots in backend_shots(c, backend):
                        for method in c.methods:
                            cells.append(Cell(c.dataset, scenario, seed, backend, shots, method, axes))
    return cells


def noise_level(backend: str) -> float:
    """A sortable noise level for plots: p1 of depolarizing profiles, 0 for noiseless,
    and +inf for calibrated devices (placed last)."""
    prof = profile_of(backend)
    if prof.noise_kind == "depolarizing":
        return float(prof.noise.get("p1", 0.0))
    return float("inf") if prof.noise_kind == "fake-device" else 0.0
