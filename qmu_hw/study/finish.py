"""The one finish step of a study: from the results store to every output file.

``qmu-hw run``, ``qmu-hw report`` and :func:`qmu_hw.study.run` all end here, so the CLI and
the Python API write the same files: ``results.csv`` (the current grid's finished cells),
``noise_effect.csv`` and ``noise_slope.csv`` (with the store's derived tables),
``noise_interaction.csv`` (the noise effect along each study axis, :mod:`.interaction`) and
``report.md`` with its plots; with ``[evaluation.per_example]`` also ``per_example.csv``,
the per-example rows of ``noise_effect.csv`` and the report's per-example section
(:mod:`.per_example_outputs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .interaction import plot_interactions, report_lines, write_interactions
from .noise_effect import write_noise_effects
from .per_example_outputs import write_per_example
from .store import ResultsStore

OUTPUTS = ("results.csv", "noise_effect.csv", "noise_slope.csv", "noise_interaction.csv", "report.md")


@dataclass
class Finished:
    """What :func:`finish_study` wrote: the rows it read, the effects and slopes, the report."""

    rows: list[dict]
    report: Path
    effects: list = field(default_factory=list)
    slopes: list = field(default_factory=list)
    example_effects: list = field(default_factory=list)  # per-example noise effects (unit = example)


def finish_study(folder: str | Path, cfg=None, *, store: ResultsStore | None = None,
                 note: str | None = None) -> Finished:
    """Write ``results.csv``, ``noise_effect.csv``, ``noise_slope.csv`` and ``report.md`` of
    the study in ``folder`` from its store (the cells of the current grid, as the last run
    recorded them). ``cfg`` gives the title, the paper comparison and the config hash;
    ``note`` replaces the default line under the title."""
    from .report import build_report  # matplotlib: only when a report is written

    folder = Path(folder)
    store = store or ResultsStore(folder)
    cells = store.get_meta("current_cells")
    ids = set(cells) if cells else None
    rows = store.rows(ids)
    analysis = cfg.tables.analysis if cfg is not None else None
    effects, slopes = write_noise_effects(folder, rows, store, analysis=analysis)
    if cfg is not None:
        title = cfg.title or f"qmu-hw study: {cfg.name}"
        reference = Path(cfg.compare_with) if cfg.compare_with else None
        note = f"Config hash {cfg.digest()[:12]}.\n" if note is None else note
    else:
        title, reference = f"qmu-hw study: {folder.name}", None
    report = build_report(folder, rows, title=title, reference=reference, note=note or "", effects=effects,
                          slopes=slopes, analysis=analysis)
    interactions = write_interactions(folder, rows, dict(cfg.axes) if cfg is not None else None, analysis)
    extra = report_lines(interactions)  # "Does noise sensitivity grow with depth / entanglement?"
    if extra:
        plot = plot_interactions(rows, folder, dict(cfg.axes) if cfg is not None else None, analysis)
        if plot is not None:
            extra.append(f"\n![noise effect on unlearning by study axis]({plot.name})\n")
        with open(report, "a") as f:
            f.write("\n".join(extra) + "\n")
    example_effects = write_per_example(folder, store, rows, ids, report)
    store.to_csv(folder / "results.csv", ids)
    return Finished(rows, report, effects, slopes, example_effects)
