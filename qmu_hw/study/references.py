"""Which backends the reference oracles train on, and how many trainings a study needs.

Two oracle ensembles per (seed, scenario, noise level), K = ``[training] n_oracles`` each:

* ``exact``: retrained on the exact engine (``[training] train_backend``, or ``exact`` when
  that is ``same``), shared by every noise level of a seed and scenario;
* ``same``: retrained UNDER the cell's noise level, with exact (noisy) expectations: on the
  surrogate configured for the target (calibrated devices, cloud targets), on the exact
  engine for noiseless profiles, on the noisy local engine itself otherwise. Shots change
  evaluation, not the reference, so every shot budget of a backend shares one ensemble.

A billed or cloud target without a surrogate has no affordable same-noise reference: its
``same`` ensemble falls back to the exact-trained one (the cell's cost says so), rather
than training oracles on a paid device.
"""

from __future__ import annotations

from dataclasses import dataclass

from .grid import Cell, expand, profile_of

EXACT_ENGINE = "exact"


def train_target(cfg, cell: Cell) -> tuple[str, int | None]:
    """The backend and shots a cell's teacher trains on (runner and executors alike)."""
    return (cell.backend, cell.shots) if cfg.train_backend == "same" else (cfg.train_backend, None)


def exact_reference(cfg) -> str:
    """The backend of the exact-trained references (and of teachers unless ``same``)."""
    return EXACT_ENGINE if cfg.train_backend == "same" else cfg.train_backend


def same_noise_reference(cfg, backend: str) -> str:
    """The backend the ``same`` oracles of a cell on ``backend`` train on (exact mode)."""
    if backend in cfg.surrogates:
        return cfg.surrogates[backend]
    prof = profile_of(backend)
    if prof.is_cloud or prof.requires_confirmation:
        return exact_reference(cfg)  # never train references on a billed device
    if prof.noise_kind == "none":
        return exact_reference(cfg)  # noiseless: the exact engine gives the same expectations
    return backend


@dataclass(frozen=True)
class OracleTraining:
    """One oracle to train: ``k`` of ``n_oracles`` for (seed, scenario) on ``backend``, exact."""

    seed: int
    scenario: str
    backend: str
    k: int
    axes: tuple = ()  # the study-axis combination it belongs to


def oracle_trainings(cfg, cells: list[Cell] | None = None) -> list[OracleTraining]:
    """Every distinct oracle training the cells need (exact and same-noise ensembles; a
    same-noise ensemble that coincides with the exact one is counted once). ``qmu-hw
    estimate`` multiplies these by the cost of one retraining on their backend."""
    cells = cells if cells is not None else expand(cfg)
    out: dict[tuple, OracleTraining] = {}
    for c in cells:
        combo = cfg.combination(dict(c.axes)) if c.axes and cfg.axes else cfg
        for name in (exact_reference(combo), same_noise_reference(combo, c.backend)):
            for k in range(max(combo.n_oracles, 1)):
                out.setdefault((c.axes, c.seed, c.scenario, name, k),
                               OracleTraining(c.seed, c.scenario, name, k, c.axes))
    return list(out.values())


def method_hyperparameters(cfg, method: str) -> dict:
    """A method's hyperparameters as the study runs it (the runner) and counts it (the
    estimate): ``retrain`` follows the [training] table (as the oracles do) unless
    [methods.retrain] says otherwise, so that it is one more oracle and not a differently
    trained model."""
    base = {"epochs": cfg.epochs, "patience": cfg.patience, "lr": cfg.lr} if method == "retrain" else {}
    return {**base, **cfg.hyperparameters.get(method, {})}
