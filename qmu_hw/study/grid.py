"""The grid: dataset × scenario × seed × backend × shots × method, and cell identities."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache

from ..core.profiles import Profile, resolve_profile
from .config import StudyConfig


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

    def key(self) -> dict:
        return {"dataset": self.dataset, "scenario": self.scenario, "seed": self.seed, "backend": self.backend,
                "profile_sha256": profile_of(self.backend).sha256, "shots": self.shots, "method": self.method}

    def cell_id(self, cfg: StudyConfig) -> str:
        """Changes whenever anything that determines this cell's result changes: the config's
        result-relevant content, the backend profile's bytes (and a surrogate's), the cell."""
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
        return f"{self.scenario} seed={self.seed} {self.backend}@{shots} {self.method}"


def backend_shots(cfg: StudyConfig, backend: str) -> list[int | None]:
    """Shots values a backend runs at: its ``[grid] shots_for`` list if it has one; else an
    exact-only profile (default shots "exact" and noiseless) runs once, exactly, and every
    other profile runs at each configured shots value."""
    if backend in cfg.shots_for:  # [grid] shots_for: this backend's own list
        return list(cfg.shots_for[backend])
    prof = profile_of(backend)
    if prof.shots is None and prof.noise_kind == "none":
        return [None]
    return list(cfg.shots)


def expand(cfg: StudyConfig) -> list[Cell]:
    """Cells in run order: seed-major so one seed's teacher and oracles serve a block."""
    cells = []
    for seed in cfg.seeds:
        for scenario in cfg.scenarios:
            for backend in cfg.backends:
                for shots in backend_shots(cfg, backend):
                    for method in cfg.methods:
                        cells.append(Cell(cfg.dataset, scenario, seed, backend, shots, method))
    return cells


def noise_level(backend: str) -> float:
    """A sortable noise level for plots: p1 of depolarizing profiles, 0 for noiseless,
    and +inf for calibrated devices (placed last)."""
    prof = profile_of(backend)
    if prof.noise_kind == "depolarizing":
        return float(prof.noise.get("p1", 0.0))
    return float("inf") if prof.noise_kind == "fake-device" else 0.0
