"""The study plan: every task a study runs, computed once from the config.

A :class:`StudyPlan` holds the cells (axis combination x seed x scenario x backend x shots x
method, :func:`.grid.expand`), the teacher tasks (one per combination, seed and train
target), the oracle-ensemble tasks (one per combination, seed, scenario and reference
backend: the exact-trained and the same-noise ensemble, :mod:`.references`), which of them
each cell waits for, and each task's hyperparameters (training settings, a method's
hyperparameters, the combination's config). The sequential runner, the process and Ray
executors (:mod:`.executors`), the estimate and the Python API all read this one plan, so
what is counted is what runs.

With ``[evaluation.per_example]`` the plan also holds the population model tasks
(:mod:`.populations`): per cell (= seed, scenario, backend arm, axis combination, method) a
:class:`~.populations.PopulationSpec`, and the distinct :class:`~.populations.ModelTask`
values they need (retrained models shared by the methods of a group); a method run waits
for its cell's teacher, a retrained model for nothing.
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


def population_spec(cfg, cell: Cell):
    """The :class:`~.populations.PopulationSpec` of a cell: the method runs where the cell's
    does (its surrogate, from the cell's teacher), the retrained models train on the cell's
    same-noise reference (as its oracles), every model is evaluated on the target."""
    from .populations import PopulationSpec

    teacher_backend, teacher_shots = train_target(cfg, cell)
    prep = {"data_dir": cfg.data_dir, "per_class": cfg.per_class, "model": cfg.model, "n_qubits": cfg.n_qubits,
            "n_layers": cfg.n_layers, "entangler": cfg.entangler, "angle_range": cfg.angle_range}
    if cfg.model_extra:  # (name, tuple) pairs: the spec is hashable (populations._prepared undoes it)
        prep["model_extra"] = tuple(sorted((k, tuple(v)) for k, v in cfg.model_extra.items()))
    work = cfg.surrogates.get(cell.backend)
    return PopulationSpec(
        dataset=cfg.dataset, data_seed=cell.seed, scenario=cell.scenario, method=cell.method, backend=cell.backend,
        shots=cell.shots, reference_backend=same_noise_reference(cfg, cell.backend), work_backend=work,
        teacher_backend=teacher_backend, teacher_shots=teacher_shots,
        hyperparameters=method_hyperparameters(cfg, cell.method), settings=train_settings(cfg),
        gradient=cfg.gradient, grad_shots=cfg.grad_shots, prepare_kw=prep)


@dataclass
class StudyPlan:
    """Cells, teacher tasks, oracle tasks and their dependencies (see the module doc)."""

    cfg: object
    cells: list[Cell]
    teacher_tasks: list[TeacherTask] = field(default_factory=list)
    oracle_tasks: list[OracleTask] = field(default_factory=list)
    needs: dict[Cell, list] = field(default_factory=dict)  # cell -> the tasks it waits for
    ids: dict[Cell, str] = field(default_factory=dict)  # cell -> its cell id
    # [evaluation.per_example]: the cells whose populations are to run, their specs, the
    # distinct model tasks (by key) and, per task key, the teacher task it waits for (or None)
    population_cells: list[Cell] = field(default_factory=list)
    population_specs: dict[Cell, object] = field(default_factory=dict)
    population_tasks: list = field(default_factory=list)
    population_needs: dict[str, TeacherTask | None] = field(default_factory=dict)
    population_owner: dict[str, Cell] = field(default_factory=dict)  # task key -> a cell it belongs to

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
        plan = cls(cfg, cells, list(teachers), list(oracles), needs, {c: c.cell_id(cfg) for c in cells})
        if cfg.per_example is not None:
            plan._add_populations(cells)
        return plan

    def _add_populations(self, cells: list[Cell]) -> None:
        """The population specs of ``cells`` and the distinct model tasks they need."""
        from .populations import population_tasks  # torch: only for studies with populations

        self.population_cells = list(cells)
        self.population_specs = {c: population_spec(self.config_of(c), c) for c in cells}
        tasks: dict[str, object] = {}
        for c in cells:
            teacher = next(t for t in self.needs[c] if t.kind == "teacher")
            for t in population_tasks(self.population_specs[c], self.config_of(c).per_example.n_models):
                if t.key not in tasks:
                    tasks[t.key] = t
                    self.population_needs[t.key] = teacher if t.kind == "unlearned" else None
                    self.population_owner[t.key] = c
        self.population_tasks = list(tasks.values())
        for t in self.population_needs.values():  # a population's teacher, even if its cell is done
            if t is not None and t not in self.teacher_tasks:
                self.teacher_tasks.append(t)

    def for_cells(self, cells: list[Cell], population_cells: list[Cell] | None = None) -> StudyPlan:
        """The part of the plan that ``cells`` need (e.g. the unfinished ones), and the
        populations of ``population_cells`` (default: those of ``cells``)."""
        keep = set(cells)
        cells = [c for c in self.cells if c in keep]
        used = {t for c in cells for t in self.needs[c]}
        plan = StudyPlan(self.cfg, cells, [t for t in self.teacher_tasks if t in used],
                         [t for t in self.oracle_tasks if t in used], {c: self.needs[c] for c in cells},
                         {c: self.ids[c] for c in cells})
        if self.cfg.per_example is not None:
            pop = set(cells if population_cells is None else population_cells)
            pop_cells = [c for c in self.cells if c in pop]
            plan.needs.update({c: self.needs[c] for c in pop_cells})
            plan.ids.update({c: self.ids[c] for c in pop_cells})
            plan._add_populations(pop_cells)
        return plan

    @property
    def tasks(self) -> list:
        """Teacher and oracle tasks, in the order the cells (then the populations) first need them."""
        out: dict = {}
        for c in self.cells:
            for t in self.needs[c]:
                out.setdefault(t, None)
        for t in self.population_needs.values():
            if t is not None:
                out.setdefault(t, None)
        return list(out)

    def population_keys(self, cell: Cell) -> list[str]:
        """The model task keys of a cell's population pair (retrained and method runs)."""
        from .populations import population_tasks

        return [t.key for t in population_tasks(self.population_specs[cell], self.config_of(cell).per_example.n_models)]

    def config_of(self, item):
        """The config of a cell's or task's axis combination."""
        return self.cfg.combination(dict(item.axes)) if item.axes else self.cfg

    def task_counts(self) -> dict[str, int]:
        """``{"teacher": n, "oracle": n, "cell": n}``: teacher trainings, oracle ensembles (of
        ``[training] n_oracles`` models each) and cells, as the runner counts what it ran; with
        ``[evaluation.per_example]`` also ``"population"``: distinct population models."""
        out = {"teacher": len(self.teacher_tasks), "oracle": len(self.oracle_tasks), "cell": len(self.cells)}
        if self.cfg.per_example is not None:
            out["population"] = len(self.population_tasks)
        return out

    def oracle_trainings(self) -> int:
        """Single oracle models trained: ensembles x K."""
        return sum(max(self.config_of(t).n_oracles, 1) for t in self.oracle_tasks)

    def settings(self, item):
        return train_settings(self.config_of(item))

    def hyperparameters(self, cell: Cell) -> dict:
        return method_hyperparameters(self.config_of(cell), cell.method)
