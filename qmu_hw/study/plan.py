"""The study plan: every task a study runs, computed once from the config.

A :class:`StudyPlan` holds the cells (axis combination x seed x scenario x backend x shots x
method, :func:`.grid.expand`), the teacher tasks (one per combination, seed and train
target), the oracle-ensemble tasks (one per combination, seed, scenario and reference
backend: the exact-trained and the same-noise ensemble, :mod:`.references`), which of them
each cell waits for, and each task's hyperparameters (training settings, a method's
hyperparameters, the combination's config). The sequential runner, the process and Ray
executors (:mod:`.executors`), the estimate and the Python API all read this one plan, so
what is counted is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .grid import Cell, expand
from .references import exact_reference, method_hyperparameters, same_noise_reference, train_target  # noqa: F401


def _axes_label(axes) -> str:
    return "".join(f" {k}={v}" for k, v in axes)


@dataclass(frozen=True)
class TeacherTask:
    """The teacher of one (axis combination, seed) on its train target (backend, shots)."""

    axes: tuple
    seed: int
    backend: str
    shots: int | None
    kind = "teacher"

    @property
    def label(self) -> str:
        return (f"teacher seed={self.seed} {self.backend}@{'exact' if self.shots is None else self.shots}"
                f"{_axes_label(self.axes)}")


@dataclass(frozen=True)
class OracleTask:
    """The K oracles (``[training] n_oracles``) of one (axis combination, seed, scenario),
    retrained on ``backend`` in exact mode."""

    axes: tuple
    seed: int
    scenario: str
    backend: str
    shots: int | None = None  # references are trained with exact expectations
    kind = "oracle"

    @property
    def label(self) -> str:
        return f"oracles {self.scenario} seed={self.seed} {self.backend}@exact{_axes_label(self.axes)}"


def train_settings(cfg):
    """What ``fit`` trains a teacher or an oracle with (``[training]`` of the combination)."""
    from .protocol import TrainSettings  # torch: only where a model is trained

    return TrainSettings(cfg.epochs, cfg.patience, cfg.lr, cfg.batch_size)


@dataclass
class StudyPlan:
    """Cells, teacher tasks, oracle tasks and their dependencies (see the module doc)."""

    cfg: object
    cells: list[Cell]
    teacher_tasks: list[TeacherTask] = field(default_factory=list)
    oracle_tasks: list[OracleTask] = field(default_factory=list)
    needs: dict[Cell, list] = field(default_factory=dict)  # cell -> the tasks it waits for
    ids: dict[Cell, str] = field(default_factory=dict)  # cell -> its cell id

    @classmethod
    def of(cls, cfg, cells: list[Cell] | None = None) -> StudyPlan:
        """The plan of ``cells`` (default: every cell of the study)."""
        cells = list(expand(cfg) if cells is None else cells)
        teachers: dict[TeacherTask, None] = {}
        oracles: dict[OracleTask, None] = {}
        needs: dict[Cell, list] = {}
        for cell in cells:
            c = cfg.combination(dict(cell.axes)) if cell.axes else cfg
            name, shots = train_target(c, cell)
            t = TeacherTask(cell.axes, cell.seed, name, shots)
            teachers.setdefault(t, None)
            # The two ensembles run_cell compares with: retrained exactly and retrained under
            # the cell's noise level (references.py); one task when they coincide.
            refs = dict.fromkeys((exact_reference(c), same_noise_reference(c, cell.backend)))
            os_ = [OracleTask(cell.axes, cell.seed, cell.scenario, ref) for ref in refs]
            for o in os_:
                oracles.setdefault(o, None)
            needs[cell] = [t, *os_]
        return cls(cfg, cells, list(teachers), list(oracles), needs, {c: c.cell_id(cfg) for c in cells})

    def for_cells(self, cells: list[Cell]) -> StudyPlan:
        """The part of the plan that ``cells`` need (e.g. the unfinished ones)."""
        keep = set(cells)
        cells = [c for c in self.cells if c in keep]
        used = {t for c in cells for t in self.needs[c]}
        return StudyPlan(self.cfg, cells, [t for t in self.teacher_tasks if t in used],
                         [t for t in self.oracle_tasks if t in used], {c: self.needs[c] for c in cells},
                         {c: self.ids[c] for c in cells})

    @property
    def tasks(self) -> list:
        """Teacher and oracle tasks, in the order the cells first need them."""
        out: dict = {}
        for c in self.cells:
            for t in self.needs[c]:
                out.setdefault(t, None)
        return list(out)

    def config_of(self, item):
        """The config of a cell's or task's axis combination."""
        return self.cfg.combination(dict(item.axes)) if item.axes else self.cfg

    def task_counts(self) -> dict[str, int]:
        """``{"teacher": n, "oracle": n, "cell": n}``: teacher trainings, oracle ensembles (of
        ``[training] n_oracles`` models each) and cells, as the runner counts what it ran."""
        return {"teacher": len(self.teacher_tasks), "oracle": len(self.oracle_tasks), "cell": len(self.cells)}

    def oracle_trainings(self) -> int:
        """Single oracle models trained: ensembles x K."""
        return sum(max(self.config_of(t).n_oracles, 1) for t in self.oracle_tasks)

    def settings(self, item):
        return train_settings(self.config_of(item))

    def hyperparameters(self, cell: Cell) -> dict:
        return method_hyperparameters(self.config_of(cell), cell.method)
