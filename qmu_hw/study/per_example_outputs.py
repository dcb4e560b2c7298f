"""The finish step of ``[evaluation.per_example]``: from the store's per-example ε to
``per_example.csv``, the per-example noise effects (rows of ``noise_effect.csv`` with
``unit = example``) and the report's per-example section with its ECDF plots.

Called by :func:`.finish.finish_study` (CLI and API alike); a study without populations has
no per-example rows and this writes nothing.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

from .noise_effect import COLUMNS
from .per_example_effect import PER_EXAMPLE_COLUMNS, example_noise_effects
from .per_example_report import per_example_section, plot_epsilon_ecdf

FILE = "per_example.csv"


def _axes_of(row: dict, axis_cols: list[str]) -> tuple:
    return tuple((c, row.get(c)) for c in axis_cols)


def write_per_example_csv(folder: Path, rows: list[dict], axis_cols: list[str]) -> Path:
    cols = [*PER_EXAMPLE_COLUMNS[:4], *axis_cols, *PER_EXAMPLE_COLUMNS[4:]]
    path = folder / FILE
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "shots": "exact" if r["shots"] is None else r["shots"]})
    tmp.replace(path)
    return path


def example_effects(rows: list[dict], axis_cols: list[str]) -> list[dict]:
    """Per-example noise effects (:func:`.per_example_effect.example_noise_effects`), per axis
    combination (its values added as columns)."""
    groups: dict[tuple, list] = defaultdict(list)
    for r in rows:
        groups[_axes_of(r, axis_cols)].append(r)
    return [{**dict(axes), **e} for axes, rs in groups.items() for e in example_noise_effects(rs)]


def as_noise_effect_rows(effects: list[dict]) -> list[dict]:
    """In ``noise_effect.csv``'s columns: ``unit = example``, ``n_seeds`` = the number of
    paired examples (the units), ``exact_mean``/``mean``/``delta`` medians with the
    order-statistic CI, the exact sign test; ``p_adj`` NaN (the seed-level Holm families do
    not include these rows)."""
    out = []
    for e in effects:
        out.append({**e, "shots": "exact" if e["shots"] is None else e["shots"],
                    "baseline": "identity" if e["estimand"] == "unlearning" else "", "n_seeds": e["n_units"],
                    "n_excluded": 0, "valid": True, "reason": "", "adjustment": "none (per-example, median)"})
    return out


def append_effects(folder: Path, effects: list[dict]) -> None:
    """Append to ``noise_effect.csv`` under its own header (axis columns included)."""
    path = folder / "noise_effect.csv"
    if not effects:
        return
    if path.exists() and path.stat().st_size:
        with open(path, newline="") as f:
            header = next(csv.reader(f))
        mode = "a"
    else:
        header, mode = list(COLUMNS), "w"
    with open(path, mode, newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore", restval="")
        if mode == "w":
            w.writeheader()
        w.writerows(effects)


def write_per_example(folder: str | Path, store, rows: list[dict], ids: set | None, report: Path) -> list[dict]:
    """``per_example.csv``, the per-example rows of ``noise_effect.csv`` and the report section
    (appended to ``report``, with one ECDF plot per method). Returns the effect rows."""
    folder = Path(folder)
    examples = store.per_example_rows(ids)
    if not examples:
        return []
    axis_cols = sorted({k for r in examples for k in r if "." in k})
    write_per_example_csv(folder, examples, axis_cols)
    effects = example_effects(examples, axis_cols)
    append_effects(folder, as_noise_effect_rows(effects))
    summary = [r for r in rows if isinstance(r.get("epsilon_median"), (int, float))
               and not math.isnan(float(r["epsilon_median"]))]
    plots = {}
    for method in sorted({r["method"] for r in examples}):
        name = f"per_example_ecdf_{method}.png"
        plot_epsilon_ecdf(examples, method, folder / name)
        plots[method] = name
    lines = per_example_section(summary, examples, effects, plots=plots)
    text = report.read_text() if report.exists() else ""
    report.write_text(_headline(text, lines) + "\n" + "\n".join(lines) + "\n")
    return effects


def _headline(text: str, lines: list[str]) -> str:
    """The report with the per-example sanity failures ("`identity` ... is NOT detected") also
    at the top of its Findings: a study whose evaluation cannot see a model that did not
    unlearn must say so first, not only in its per-example section."""
    bad = [ln for ln in lines if "is NOT detected" in ln]
    head = "## Findings\n\n"
    if not bad or head not in text:
        return text
    i = text.index(head) + len(head)
    return text[:i] + "\n".join(bad) + "\n\n" + text[i:]
