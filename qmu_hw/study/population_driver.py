"""The driver's side of ``[evaluation.per_example]`` populations: which population models are
still to train, storing each model's outputs as it arrives, and a cell's population metrics
and per-example ε once its pair of populations is complete. The executors
(:mod:`.executors`) run the models; this module keeps the book of what is done."""

from __future__ import annotations

from ..core.exceptions import QmuHwError
from .accounting import charge_worker
from .plan import StudyPlan


def teacher_state(runner, teacher) -> dict | None:
    """The weights of a population's teacher (its checkpoint, written by the teacher task)."""
    if teacher is None:
        return None
    model = runner.teacher(runner.prep(teacher.seed), teacher.seed, teacher.backend, teacher.shots)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class PopulationDriver:
    """The driver's side of ``[evaluation.per_example]``: which population models are still to
    train (stored keys are skipped, so a killed run resumes without training a model twice),
    storing each model's outputs as it arrives, and a cell's population metrics and
    per-example ε once its population pair is complete."""

    def __init__(self, runner, plan: StudyPlan, state: dict) -> None:
        self.runner, self.plan, self.state = runner, plan, state
        if not plan.population_tasks:
            self.todo, self.waiting = [], {}
            return
        stored = runner.store.population_keys()
        self.todo = [t for t in plan.population_tasks if t.key not in stored]
        self.waiting = {c: set(plan.population_keys(c)) - stored for c in plan.population_cells}
        for c in [c for c, keys in self.waiting.items() if not keys]:  # complete, but not summarised yet
            self._finish(c)

    def teacher(self, task):
        return self.plan.population_needs[task.key]

    def run_here(self, task) -> None:
        """A population model in the driver (the inline executor)."""
        from .populations import run_model_task

        cell = self.plan.population_owner[task.key]
        try:
            work = self.runner.work(cell)
            rec = run_model_task(task, teacher_state(work, self.teacher(task))).as_record()
        except QmuHwError:
            raise
        except Exception as exc:
            self._failed(task, f"{type(exc).__name__}: {exc}")
            return
        self._stored(task, rec, "inline")

    def record(self, task, handle, executor) -> None:
        try:
            rec = executor.result(handle)
        except Exception as exc:
            self._failed(task, f"{type(exc).__name__}: {exc}")
            return
        self._stored(task, rec, executor.name)

    def _failed(self, task, why: str) -> None:
        self.state["failures"].append((task.label, why))
        self.runner.log(f"population model failed: {task.label}: {why} (rerun to retry it)")

    def _stored(self, task, rec: dict, where: str) -> None:
        charge_worker(self.runner, {"phases": rec.get("phases", {})}, where, label=task.label)
        self.runner.store.put_population_output(rec)
        self.state["tasks"]["population"] += 1
        for c, keys in self.waiting.items():
            if task.key in keys:
                keys.discard(task.key)
                if not keys:
                    self._finish(c)

    def _finish(self, cell) -> None:
        """Stack a complete population pair, compute its metrics and store them with the cell."""
        from .per_example_effect import per_example_rows
        from .populations import ModelOutputs, collect, population_metrics

        keys = self.plan.population_keys(cell)
        recs = self.runner.store.population_outputs(keys)
        pops = collect([ModelOutputs.from_record(recs[k]) for k in keys])
        metrics, eps = population_metrics(pops, seed=cell.seed)
        n = self.plan.config_of(cell).per_example.n_models
        rows = per_example_rows(cell.scenario, cell.method, cell.backend, cell.shots, cell.seed, pops.forget_ids, eps, n)
        self.runner.store.put_population(self.plan.ids[cell], metrics, rows, dict(cell.axes) or None)
