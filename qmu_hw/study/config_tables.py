"""The study config's tables: one frozen dataclass per TOML table, each key's check next to it.

A field made with :func:`key` carries, in its ``metadata``, the TOML type(s) it accepts and
a ``check`` returning what was expected when the value is wrong; :mod:`.config` reads the
file and parses each table from these fields (``_parse_table``), then runs the checks that
need more than one key. Kept apart from the reading code so a new key is one line here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.contract import MAX_SHOTS
from ..core.exceptions import InvalidRequestError
from ..data.datasets import DATASETS
from ..data.splits import parse_scenario
from .endpoints import DEFAULT_PRIMARY, ORACLE_METRICS, PLAIN_METRICS
from .per_example_settings import PerExampleSettings

# Models by the inputs they take; [model] name is checked against both, the match with
# the dataset's kind in config._check_across.
TABULAR_MODELS = ("hqml-iris", "hqml-iris-deep")
IMAGE_MODELS = ("hqml-cnn",)
# What the config check needs to know of each dataset without loading it:
# (kind, features per sample for tabular sets, classes).
DATASET_SHAPES: dict[str, tuple[str, int | None, int]] = {
    "iris": ("tabular", 4, 3), "digits": ("image", None, 10), "mnist": ("image", None, 10),
    "fashion-mnist": ("image", None, 10),
}


# -- one key: its TOML type(s), default and check ---------------------------------------------
def key(default: Any = None, types: type | tuple = str, check: Callable[[Any], str | None] | None = None,
        factory: Callable[[], Any] | None = None):
    """A table field. ``check(value)`` returns the error (what was expected, what was got), or
    None if the value is fine."""
    meta = {"types": types if isinstance(types, tuple) else (types,), "check": check}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive_int(v: Any) -> str | None:
    return None if _is_int(v) and v >= 1 else f"expected a positive integer, got {v!r}"


# A study seed is scaled into model and oracle seeds (seed * 1000 + ...); this keeps them int64-safe.
MAX_STUDY_SEED = 2 ** 32 - 1


def _shot_count(v: Any) -> str | None:
    """Shots and shot caps: positive and at most MAX_SHOTS (int64-safe totals)."""
    return None if _is_int(v) and 1 <= v <= MAX_SHOTS else f"expected an integer in [1, {MAX_SHOTS:,}], got {v!r}"


def _one_of(options, what: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in tuple(options) else f"unknown {what} {v!r}; expected one of {tuple(options)}"


def _unique_list(what: str, item_check: Callable[[Any], bool], *, empty_ok: bool = False):
    def check(v):
        if not v and not empty_ok:
            return f"expected a non-empty list of {what}, got {v!r}"
        bad = [x for x in v if not item_check(x)]
        if bad:
            return f"expected a list of {what}, got {bad[0]!r}"
        dup = sorted({repr(x) for x in v if list(v).count(x) > 1})
        if dup:  # a repeated entry would run (and be averaged) twice
            return f"expected a list of distinct {what}; {', '.join(dup)} appears more than once"
        return None

    return check


def _scenario_ok(s: Any) -> bool:
    try:
        parse_scenario(s)
    except InvalidRequestError:
        return False
    return True


# A subset scenario below this fraction forgets about one sample per class, whatever it says;
# such a study measures something else than its name (README, "Scenarios").
MIN_SUBSET_FRACTION = 0.01
SEED_LIMIT = 2 ** 32  # seeds feed numpy/torch generators and cell ids as uint32
MAX_LR = 10.0  # Adam steps above this diverge at once: surely a typo (1e300)


def _scenarios_check(v: Any) -> str | None:
    problem = _unique_list("scenarios ('subset:FRACTION' or 'class:K')", _scenario_ok)(v)
    if problem:
        return problem
    for s in v:
        kind, frac = parse_scenario(s)
        if kind == "subset" and frac < MIN_SUBSET_FRACTION:
            return (f"scenario {s!r} forgets less than {MIN_SUBSET_FRACTION:.0%} of the training set (in practice "
                    f"one sample per class); use subset:{MIN_SUBSET_FRACTION} or more, or class:K")
    return None


def _lr_check(v: Any) -> str | None:
    if not (math.isfinite(float(v)) and v > 0):
        return f"expected a positive number, got {v!r}"
    return None if v <= MAX_LR else f"expected a learning rate of at most {MAX_LR:g}, got {v!r}"


def _shots_entry_ok(s: Any) -> bool:
    return s == "exact" or _shot_count(s) is None


def _non_negative(v: Any) -> str | None:
    return None if math.isfinite(float(v)) and v >= 0 else f"expected a number >= 0, got {v!r}"


# -- the tables --------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyTable:
    name: str | None = key(None, str)  # default: the config file's stem
    output: str | None = key(None, str)  # default: runs/<name>; relative to the working directory
    seeds: tuple[int, ...] = key((0,), list, _unique_list(
        f"integers in [0, {MAX_STUDY_SEED}] (uint32 seeds)", lambda s: _is_int(s) and 0 <= s <= MAX_STUDY_SEED))


@dataclass(frozen=True)
class DataTable:
    dataset: str = key("iris", str, _one_of(DATASETS, "dataset"))
    data_dir: str | None = key(None, str)  # relative paths resolve against the config's folder
    per_class: int | None = key(None, int, _positive_int)
    angle_range: str = key("half-pi", str, _one_of(("half-pi", "pi"), "angle_range"))


@dataclass(frozen=True)
class ModelTable:
    name: str | None = key(None, str, _one_of(TABULAR_MODELS + IMAGE_MODELS, "model"))  # default per dataset
    n_qubits: int | None = key(None, int, _positive_int)
    n_layers: int | None = key(None, int, _positive_int)
    entangler: str = key("ring", str, _one_of(("ring", "linear", "all", "none"), "entangler"))
    # A user model instead of a built-in one (qmu_hw.models.custom): a factory callable
    # "pkg.module:build" returning a torch module with a QuantumLayer, or an OpenQASM 3 file
    # (relative to the config's folder) with the built-in head; its per-sample parameters are
    # `inputs`, its trained ones `weights` (default: every other parameter).
    factory: str | None = key(None, str, lambda v: None if re.fullmatch(r"[\w.]+:[\w.]+", v) else
                              f"expected \"pkg.module:callable\", got {v!r}")
    circuit: str | None = key(None, str)
    inputs: tuple[str, ...] | None = key(None, list, _unique_list("parameter names", lambda x: isinstance(x, str)))
    weights: tuple[str, ...] | None = key(None, list, _unique_list("parameter names", lambda x: isinstance(x, str)))


@dataclass(frozen=True)
class TrainingTable:
    epochs: int = key(100, int, _positive_int)
    patience: int = key(25, int, _positive_int)
    lr: float = key(0.01, (float, int), _lr_check)
    batch_size: int = key(32, int, _positive_int)
    n_oracles: int = key(5, int, _positive_int)
    train_backend: str = key("exact", str)  # a profile, or "same" (train on each cell's backend)
    gradient: str = key("parameter-shift", str, lambda v: None if v in ("parameter-shift", "spsa") else
                        f"expected 'parameter-shift' or 'spsa' (the exact backend uses backprop), got {v!r}")
    grad_shots: int | str = key("same", (int, str), lambda v: None if v == "same" or _shot_count(v) is None
                                else f"expected an integer in [1, {MAX_SHOTS:,}] or \"same\", got {v!r}")


@dataclass(frozen=True)
class GridTable:
    scenarios: tuple[str, ...] = key(("subset:0.02", "class:0"), list, _scenarios_check)
    methods: tuple[str, ...] | str = key("all", (list, str))  # checked against the method registry
    backends: tuple[str, ...] = key(("exact",), list, _unique_list("backend profile names or paths",
                                                                   lambda b: isinstance(b, str) and b != ""))
    shots: tuple[int | None, ...] = key(("exact",), list,
                                        _unique_list("positive integers or \"exact\"", _shots_entry_ok))
    surrogates: dict[str, str] = key(types=dict, factory=dict)  # cell backend -> backend doing the unlearning
    # backend -> its own shots list, replacing `shots` for that backend (e.g. sampled exact-shots
    # cells next to exact-expectation noisy ones in one study)
    shots_for: dict[str, tuple] = key(types=dict, factory=dict, check=lambda d: next(
        (f"expected a list of positive integers or \"exact\" for {k!r}, got {v!r}" for k, v in d.items()
         if not isinstance(v, list) or not v or not all(_shots_entry_ok(x) for x in v) or len(set(map(str, v))) != len(v)),
        None))
    # Study axes: (("model.n_layers", (1, 2, 4)), ...) from [grid.model] / [grid.data] /
    # [grid.training] sub-tables (and [grid] train_backend), read by config._axes, not a TOML key.
    axes: tuple[tuple[str, tuple], ...] = field(default=(), metadata={"types": (), "check": None, "toml": False})


@dataclass(frozen=True)
class BudgetTable:
    max_total_shots: int | None = key(None, int, _shot_count)
    max_cost: float | None = key(None, (float, int), _non_negative)
    per_phase: dict[str, int] = key(types=dict, factory=dict,
                                    check=lambda d: next((f"expected positive integer shot caps, got {k} = {v!r}"
                                                          for k, v in d.items() if _shot_count(v)), None))


@dataclass(frozen=True)
class ReportTable:
    compare_with: str | None = key(None, str)  # a CSV; relative paths resolve against the config's folder
    title: str | None = key(None, str)


# Tables whose keys can be study axes (``[grid.<table>] key = [v1, v2, ...]``), and the
# [grid] keys that are shorthands for one of them.
AXIS_TABLES = ("model", "data", "training")
AXIS_SHORTHANDS = {"train_backend": ("training", "train_backend")}


@dataclass(frozen=True)
class AnalysisTable:
    """How the noise effects are tested (decides no cell result, so not in the digest)."""

    # the metric of the pre-declared primary endpoint: its noise effect on unlearning
    # (relative to identity, against the same-noise oracles) is Holm-tested across methods
    primary: str = key(DEFAULT_PRIMARY, str, _one_of(ORACLE_METRICS + PLAIN_METRICS, "primary endpoint metric"))
    # a cell whose teacher or same-noise oracles score below this on its backend is invalid;
    # default (None): halfway between chance and the same seed's exact value
    min_teacher_accuracy: float | None = key(None, (float, int), lambda v: None if 0 < v <= 1 else
                                             f"expected an accuracy in (0, 1], got {v!r}")


@dataclass(frozen=True)
class ExecutionTable:
    # Intra-op threads of this study's processes: a positive integer, or "auto" (single-threaded
    # below the register size where threads pay; qmu_hw.adapters.threads). When set it wins over
    # the QMU_HW_THREADS environment variable. Not part of the results digest.
    threads: int | str | None = key(None, (int, str), lambda v: None if v == "auto" or (_is_int(v) and v > 0)
                                    else f"expected a positive integer or \"auto\", got {v!r}")


@dataclass(frozen=True)
class EvaluationTable:
    """``[evaluation.per_example]``: populations of ``n_models`` retrained models and method
    runs per cell (:mod:`.populations`); absent (None): no populations. Decides results (the
    per-example columns of every cell), so it is in the digest. The sub-table is read by
    config._per_example with :class:`.per_example_settings.PerExampleSettings`'s check."""

    per_example: PerExampleSettings | None = field(default=None, metadata={"types": (), "check": None,
                                                                             "toml": False})


TABLES: dict[str, type] = {"study": StudyTable, "data": DataTable, "model": ModelTable, "training": TrainingTable,
                           "grid": GridTable, "budget": BudgetTable, "report": ReportTable,
                           "analysis": AnalysisTable, "execution": ExecutionTable, "evaluation": EvaluationTable}


@dataclass(frozen=True)
class Tables:
    study: StudyTable = field(default_factory=StudyTable)
    data: DataTable = field(default_factory=DataTable)
    model: ModelTable = field(default_factory=ModelTable)
    training: TrainingTable = field(default_factory=TrainingTable)
    grid: GridTable = field(default_factory=GridTable)
    budget: BudgetTable = field(default_factory=BudgetTable)
    report: ReportTable = field(default_factory=ReportTable)
    analysis: AnalysisTable = field(default_factory=AnalysisTable)
    execution: ExecutionTable = field(default_factory=ExecutionTable)
    evaluation: EvaluationTable = field(default_factory=EvaluationTable)
    methods: dict[str, dict] = field(default_factory=dict)  # [methods.NAME] hyperparameter overrides
