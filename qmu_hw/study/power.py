"""Can a study's design detect the noise effect it is after? ``qmu-hw estimate --power``.

Two facts decide it. The exact sign-flip test over n paired seeds cannot give a two-sided p
below 2^(1-n), so with 5 seeds no effect, however large, reaches p < 0.05 (and with Holm
across M methods the smallest Holm-adjusted p is M·2^(1-n)). And the seeds needed to detect
an effect Δ with per-seed standard deviation σ at two-sided α with the stated power follow
the normal approximation ((z_{1-α/2} + z_power)·σ/Δ)^2
(:func:`qmu_hw.metrics.stats.units_needed`). σ is either given or read from a pilot study:
the pooled standard deviation of its per-seed Δ_unlearning on the primary endpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..core.exceptions import InvalidRequestError
from ..metrics.stats import min_attainable_p, units_needed

KEYS = ("delta", "sigma", "alpha", "power")


@dataclass(frozen=True)
class PowerRequest:
    delta: float
    sigma: float | None = None
    alpha: float = 0.05
    power: float = 0.8

    def __post_init__(self) -> None:
        if not (math.isfinite(self.delta) and self.delta > 0):
            raise InvalidRequestError(f"--power: expected delta > 0 (the effect to detect), got {self.delta!r}")
        if self.sigma is not None and not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise InvalidRequestError(f"--power: expected sigma >= 0, got {self.sigma!r}")
        if not 0 < self.alpha < 1:
            raise InvalidRequestError(f"--power: expected 0 < alpha < 1, got {self.alpha!r}")
        if not 0 < self.power < 1:
            raise InvalidRequestError(f"--power: expected 0 < power < 1, got {self.power!r}")


def parse_power(text: str) -> PowerRequest:
    """``delta=0.05[,sigma=0.1][,alpha=0.05][,power=0.8]`` -> :class:`PowerRequest`."""
    values: dict[str, float] = {}
    for part in (p.strip() for p in str(text).split(",") if p.strip()):
        k, sep, v = part.partition("=")
        k = k.strip()
        if not sep or k not in KEYS:
            raise InvalidRequestError(f"--power: expected key=value pairs with keys {KEYS}, e.g. "
                                      f"\"delta=0.05,sigma=0.1\"; got {part!r}")
        if k in values:
            raise InvalidRequestError(f"--power: {k} is given twice in {text!r}")
        try:
            values[k] = float(v)
        except ValueError:
            raise InvalidRequestError(f"--power: expected a number for {k}, got {v.strip()!r}") from None
    if "delta" not in values:
        raise InvalidRequestError(f"--power: expected delta=<effect size>, e.g. \"delta=0.05\"; got {text!r}")
    return PowerRequest(**values)


def pilot_sigma(folder: str | Path, analysis=None) -> tuple[float, int, int]:
    """``(σ, seeds, groups)`` from a finished pilot study's results: the pooled standard
    deviation (ddof = 1) of the per-seed Δ_unlearning of the primary endpoint over every
    (scenario, method, backend, shots, axis values) with at least two seeds."""
    from .noise_effect import primary_deltas
    from .store import ResultsStore

    folder = Path(folder)
    if not (folder / "results.sqlite").is_file():
        raise InvalidRequestError(f"--pilot: {folder} holds no results.sqlite; give a finished study's output folder")
    store = ResultsStore(folder)
    cells = store.get_meta("current_cells")
    groups = [d for d in primary_deltas(store.rows(set(cells) if cells else None), analysis) if len(d) >= 2]
    if not groups:
        raise InvalidRequestError(f"--pilot: {folder} has no valid noisy cells paired with exact twins and identity "
                                  "over two or more seeds; its spread cannot be measured")
    dof = sum(len(d) - 1 for d in groups)
    pooled = math.sqrt(sum(float(((d - d.mean()) ** 2).sum()) for d in groups) / dof)
    return pooled, int(max(len(d) for d in groups)), len(groups)


def power_lines(n_seeds: int, n_methods: int, req: PowerRequest, sigma: float | None = None,
                source: str = "") -> list[str]:
    """What ``qmu-hw estimate --power`` prints for a design of ``n_seeds`` seeds and
    ``n_methods`` methods tested against identity on the primary endpoint."""
    p_min = min_attainable_p(n_seeds)
    m = max(n_methods, 1)
    out = [f"power: {n_seeds} seeds -> smallest attainable two-sided p = {p_min:.2g} (exact sign-flip test, "
           f"2^(1-n)); with Holm across {m} method(s) on the primary endpoint, {min(1.0, m * p_min):.2g}; "
           + ("can reach" if m * p_min < req.alpha else "can NEVER reach") + f" alpha = {req.alpha:g}"]
    sigma = req.sigma if req.sigma is not None else sigma
    if sigma is None:
        out.append("power: give sigma (--power delta=...,sigma=...) or a pilot study (--pilot FOLDER) for the "
                   "seeds needed")
        return out
    need = units_needed(req.delta, sigma, alpha=req.alpha, power=req.power)
    need_holm = units_needed(req.delta, sigma, alpha=req.alpha / m, power=req.power)
    src = "given" if req.sigma is not None else source
    out.append(f"power: to detect delta = {req.delta:g} with sigma = {sigma:.3g} ({src}) at two-sided alpha = "
               f"{req.alpha:g} with power {req.power:g}: {need} seeds (normal approximation, never fewer than the "
               f"sign-flip test needs); {need_holm} with Holm across {m} method(s) (alpha / {m}, conservative); "
               f"this study has {n_seeds}")
    return out


def study_power(cfg, spec: str, pilot: str | None = None) -> list[str]:
    """The lines for ``qmu-hw estimate CONFIG --power SPEC [--pilot FOLDER]``."""
    req = parse_power(spec)
    sigma, source = None, ""
    if req.sigma is None and pilot is not None:
        s, n, g = pilot_sigma(pilot, cfg.tables.analysis)
        sigma, source = s, f"pooled SD of per-seed Δ_unlearning in pilot {pilot}: {g} groups, up to {n} seeds"
    methods = [m for m in cfg.methods if m != "identity"]
    return power_lines(len(cfg.seeds), len(methods), req, sigma, source)


__all__ = ["PowerRequest", "parse_power", "pilot_sigma", "power_lines", "study_power"]
