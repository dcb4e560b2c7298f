"""The Python study API: ``qmu_hw.study.run(config)`` and ``qmu_hw.study.load(folder)``.

``run`` does what ``qmu-hw run`` does — resumable grid, results store, ``results.csv`` and
``report.md`` — from a config file or from a dict shaped like the TOML, and returns a
:class:`StudyResult` for analysis in Python (pandas is imported only by ``.dataframe()`` /
``.noise_effect()``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..core.deps import require
from ..core.exceptions import BudgetExceededError, InvalidRequestError, QmuHwError
from ..core.toml_write import toml_key as _toml_key
from ..core.toml_write import toml_value as _toml_value
from .config import ConfigError, StudyConfig, load_config, parse_config

EXECUTORS = ("local", "processes", "ray")
STORE_FILE = "results.sqlite"


class NotAStudyError(QmuHwError, FileNotFoundError):
    """A folder that holds no study results was given where a study was expected."""


# -- dict configs ------------------------------------------------------------------------


def config_to_toml(data: dict[str, Any]) -> str:
    """A dict shaped like a study TOML (``{"study": {...}, "grid": {...}, "methods": {"scrub":
    {...}}}``) as TOML text; ``[methods.NAME]`` tables nest one level."""
    if not isinstance(data, dict):
        raise ConfigError(f"study config must be a path or a dict, got {type(data).__name__}")
    lines: list[str] = []
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"study config dict: [{section}] must be a table (dict), got {table!r}")
        if section == "methods":
            for name, hp in table.items():
                if not isinstance(hp, dict):
                    raise ConfigError(f"study config dict: [methods.{name}] must be a table, got {hp!r}")
                lines.append(f"[methods.{_toml_key(name)}]")
                lines += [f"{_toml_key(k)} = {_toml_value(v, f'[methods.{name}] {k}')}" for k, v in hp.items()]
                lines.append("")
            continue
        lines.append(f"[{_toml_key(section)}]")
        lines += [f"{_toml_key(k)} = {_toml_value(v, f'[{section}] {k}')}" for k, v in table.items()]
        lines.append("")
    return "\n".join(lines)


def _device_backends(data: dict[str, Any], output: str | None) -> dict[str, Any]:
    """Native device objects in ``[grid] backends`` / ``surrogates`` / ``[training]
    train_backend`` → profile files under ``<output>/devices/`` (see
    :func:`qmu_hw.adapters.devices.device_profile_toml`), referenced by path."""
    grid, tr = dict(data.get("grid", {})), dict(data.get("training", {}))
    values = list(grid.get("backends", [])) + list(grid.get("surrogates", {}).values()) + [tr.get("train_backend")]
    if all(v is None or isinstance(v, str) for v in values):
        return data
    from ..adapters.devices import device_profile_toml

    study = data.get("study", {})
    folder = Path(output or study.get("output") or f"runs/{study.get('name', 'study')}") / "devices"
    folder.mkdir(parents=True, exist_ok=True)

    def as_path(v):
        if v is None or isinstance(v, str):
            return v
        stem, text = device_profile_toml(v)
        path = folder / f"{stem}.toml"
        path.write_text(text)
        return str(path)

    if "backends" in grid:
        grid["backends"] = [as_path(v) for v in grid["backends"]]
    if "surrogates" in grid:
        grid["surrogates"] = {k: as_path(v) for k, v in grid["surrogates"].items()}
    if "train_backend" in tr:
        tr["train_backend"] = as_path(tr["train_backend"])
    return {**data, "grid": grid, "training": tr} if "training" in data else {**data, "grid": grid}


def config_from_dict(data: dict[str, Any], output: str | None = None,
                     base: str | Path = ".") -> tuple[StudyConfig, str]:
    """``(StudyConfig, TOML text)`` of a dict config, validated by the same parser as files.

    The text is what the study folder keeps as ``config.toml`` (so ``qmu-hw report`` and
    :func:`load` see the config); relative paths in it resolve against ``base``. Native
    device objects (``FakeSherbrooke()``, an ``IBMBackend``, an ``AwsDevice``, ...) may stand
    in ``[grid] backends``: each is written as a profile under ``<output>/devices/``.
    """
    data = _device_backends(data, output)
    try:
        text = config_to_toml(data)
    except ConfigError:
        raise
    except InvalidRequestError as exc:
        raise ConfigError(f"study config dict: {exc}") from None
    parsed = tomllib.loads(text)
    path = str(Path(base) / "<dict>.toml")
    cfg = parse_config(parsed, text, path, output)
    if "name" not in data.get("study", {}):
        raise ConfigError("study config dict: [study] name is required for a dict config (it names the study)")
    return cfg, text


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyResult:
    """A study folder: its results store, ``report.md`` and ``noise_effect.csv``.

    ``summary`` is the run's :class:`~qmu_hw.study.runner.RunSummary` (None after :func:`load`).
    """

    output: Path
    config: StudyConfig | None = None
    summary: Any = None

    def _store(self):
        from .store import ResultsStore

        return ResultsStore(self.output)

    def _cells(self) -> set[str] | None:
        cells = self._store().get_meta("current_cells")
        return set(cells) if cells else None

    def dataframe(self):
        """One row per finished cell of the current grid: key columns, metrics, ``cost_*``."""
        require("pandas", None, "StudyResult.dataframe()")
        return self._store().dataframe(self._cells())

    def noise_effect(self):
        """The paired noise effects (``noise_effect.csv``) as a pandas DataFrame."""
        path = self.output / "noise_effect.csv"
        if not path.is_file():
            raise NotAStudyError(
                f"{path} does not exist: noise effects need noisy cells paired with exact cells of the "
                f"same seeds (a grid with an exact backend and at least one noisy one); then rerun the "
                f"report (qmu-hw report {self.output})"
            )
        pd = require("pandas", None, "StudyResult.noise_effect()")
        return pd.read_csv(path)

    @property
    def report_path(self) -> Path:
        """``report.md`` of the study (written by :func:`run` and ``qmu-hw report``)."""
        path = self.output / "report.md"
        if not path.is_file():
            raise NotAStudyError(f"{self.output} has no report.md yet; run `qmu-hw report {self.output}`")
        return path

    def __repr__(self) -> str:
        """One screen: the folder, cells done/failed, and each method's mean accuracies."""
        from .summary import summary_data, summary_text

        return summary_text(summary_data(self.output, self.config.name if self.config else None))

    def _repr_html_(self) -> str:
        from .summary import summary_data, summary_html

        return summary_html(summary_data(self.output, self.config.name if self.config else None))


def run(config: str | Path | dict, *, output: str | Path | None = None, executor: str = "local",
        workers: int | None = None, address: str | None = None, max_cells: int | None = None,
        confirm_billed: bool = False, progress: bool | None = None, report: bool = True) -> StudyResult:
    """Run (or resume) a study and write its report.

    Args:
        config: a study TOML path, or a dict shaped like the TOML.
        output: the study folder (default: the config's ``[study] output``).
        executor: ``"local"`` (this process, or ``workers`` local processes), ``"processes"``
            (local processes, ``workers`` default 2) or ``"ray"`` (Ray tasks: a private local
            Ray with ``workers`` CPUs, default 2, or the cluster at ``address``); the same
            numbers either way (``qmu-hw run --executor``).
        workers: processes or local Ray CPUs.
        address: a running Ray cluster (``executor="ray"`` only).
        max_cells: run at most this many unfinished cells (the rest on a later call).
        confirm_billed: required when a backend is billed (real devices, cloud simulators);
            the estimate's shots/tasks/cost are in the refusal message.
        progress: progress bars and the run's messages (teacher, oracles, failed cells) on
            stderr: ``True``, ``False``, or ``None`` (default) for "when interactive" (a
            terminal or a notebook), as ``qmu-hw run`` does.
        report: write ``results.csv``, ``noise_effect.csv``, ``noise_slope.csv``, ``report.md``
            and plots after the run (:func:`qmu_hw.study.finish.finish_study`, as the CLI).

    Raises:
        ConfigError: a malformed config, naming the key.
        BudgetExceededError: a billed study without ``confirm_billed``, or over its budget.
    """
    from .runner import StudyRunner

    if executor not in EXECUTORS:
        raise InvalidRequestError(f"unknown executor {executor!r}; expected one of {EXECUTORS}")
    out = None if output is None else str(output)
    if isinstance(config, dict):
        cfg, text = config_from_dict(config, out)
    elif isinstance(config, (str, Path)):
        cfg, text = load_config(config, output=out), None
    else:
        raise ConfigError(f"study config must be a path or a dict, got {type(config).__name__}")
    _check_billed(cfg, confirm_billed)
    from ..adapters.threads import apply_thread_policy

    apply_thread_policy(cfg.tables.execution.threads)  # before any work; workers inherit it
    show = _interactive() if progress is None else bool(progress)
    runner = StudyRunner(cfg, progress=show,
                         log=(lambda m: print(m, file=sys.stderr)) if show else (lambda *_: None))
    # The runner copies a file config, and writes a dict config's text, under the study lock:
    # a run refused because another holds the folder leaves its config.toml untouched.
    runner.config_text = text
    if address is not None and executor != "ray":
        raise InvalidRequestError(f"address is for executor='ray', got executor={executor!r}")
    n = workers if workers is not None else (1 if executor == "local" else 2)
    summary = runner.run(max_cells=max_cells, workers=n, executor="ray" if executor == "ray" else "local",
                         address=address)
    result = StudyResult(Path(cfg.output), cfg, summary)
    if report:
        _write_report(result)
    return result


def _interactive() -> bool:
    """A person is watching: stderr is a terminal, or this runs in a Jupyter/IPython kernel."""
    if sys.stderr is not None and sys.stderr.isatty():
        return True
    shell = sys.modules.get("IPython")
    ip = getattr(shell, "get_ipython", lambda: None)() if shell else None
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _check_billed(cfg: StudyConfig, confirmed: bool) -> None:
    from .grid import profile_of

    billed = [b for b in cfg.backends if profile_of(b).requires_confirmation]
    if not billed or confirmed:
        return
    from .dry_run import dry_run_estimate

    est = dry_run_estimate(cfg, measure_time=False, progress=False)  # as `run` checks billed studies
    raise BudgetExceededError(
        f"this study submits to billed backends {billed}: up to {est.totals['shots']:,} shots, "
        f"{est.totals['tasks']:,} tasks/jobs, estimated cost {est.totals['cost']:.2f}; "
        f"pass confirm_billed=True to run it"
    )


def _write_report(result: StudyResult) -> Path:
    """The study's outputs, written by the same finish step as ``qmu-hw run``."""
    from .finish import finish_study

    return finish_study(result.output, result.config).report


def load(path: str | Path) -> StudyResult:
    """A finished (or partial) study folder; refuses a folder that is not a study."""
    folder = Path(path)
    if not folder.is_dir():
        raise NotAStudyError(f"{folder} is not a folder; expected a study output folder")
    if not (folder / STORE_FILE).is_file():
        raise NotAStudyError(
            f"{folder} is not a study: it has no {STORE_FILE} (run one with qmu_hw.study.run or qmu-hw run)"
        )
    cfg_path = folder / "config.toml"
    cfg = load_config(cfg_path, output=str(folder)) if cfg_path.is_file() else None
    return StudyResult(folder, cfg)
