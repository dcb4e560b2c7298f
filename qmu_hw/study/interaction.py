"""Does noise sensitivity grow with depth / entanglement? The noise effect as a function of a
study axis.

For every noisy backend and every seed, the paired noise effect of a combination is
Δ = metric(noisy) - metric(exact twin), both cells sharing the seed and every axis value.
Along a numeric axis (``model.n_layers``) each seed gives the least-squares slope of Δ over
the axis values; along a categorical one (``model.entangler``) each seed gives the contrast
Δ(level) - Δ(first level). The seeds' slopes or contrasts are tested with the exact sign-flip
test and its inverted 95 % CI (:mod:`qmu_hw.metrics.stats`: never p = 0, and an unbounded CI
when the seeds cannot bound the effect), Holm-adjusted across the methods of one (scenario,
backend, shots, metric, reference, axis, contrast, other axes' values). Written to
``noise_interaction.csv`` and the report section of the same question by the finish step.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..metrics.stats import holm, paired_test, per_unit_slopes
from .config_tables import AnalysisTable
from .noise_effect import metric_columns, write_rows
from .pairing import _Index

COLUMNS = ("scenario", "method", "backend", "shots", "estimand", "metric", "reference", "axis", "fixed", "contrast", "n_seeds",
           "estimate", "ci_low", "ci_high", "p_value", "p_holm")
REPORT_METRICS = (("js_forget", "same"), ("acc_forget_gap", "same"), ("acc_forget", "none"),
                  ("acc_test_retained", "none"))


@dataclass(frozen=True)
class Interaction:
    scenario: str
    method: str
    backend: str
    shots: int | None
    estimand: str  # "model" (noisy - exact) or "unlearning" (the same of method - identity)
    metric: str
    reference: str
    axis: str
    fixed: str  # the other axes' values, "model.entangler=ring"
    contrast: str  # "slope" (per unit of the axis) or "LEVEL - BASE"
    n_seeds: int
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    p_holm: float = float("nan")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isnan(float(x))


def _shots(s):
    return None if s is None or (isinstance(s, float) and math.isnan(s)) else int(s)


def _per_seed_deltas(rows: list[dict], order: dict | None, analysis: AnalysisTable | None):
    """For every (axis, scenario, method, backend, shots, other axes' values, estimand, metric):
    the axis levels, whether they are numeric, and the seeds' noise effects at each level,
    ``D`` of shape (n_seeds, n_levels) (seeds with every level valid). Δ for the estimand
    ``model`` is noisy - exact twin; for ``unlearning`` the same of method - identity. Cells
    failing the validity gate (:mod:`.validity`) are left out, as in :mod:`.noise_effect`."""
    ix = _Index(rows, analysis or AnalysisTable())
    axes = ix.axes
    if not axes or ix.twin is None:
        return

    def cell(scenario, method, backend, shots, axv, seed):
        got = ix.cells.get((scenario, method, backend, shots, axv, seed))
        return got[0] if got is not None and not got[1] else None  # a valid cell, or None

    def delta(scenario, method, backend, shots, axv, seed, col, baseline):
        tw = ix.twin_axes(scenario, axv)
        pair = [cell(scenario, method, backend, shots, axv, seed), cell(scenario, method, ix.twin, None, tw, seed)]
        if baseline is not None:
            pair += [cell(scenario, baseline, backend, shots, axv, seed), cell(scenario, baseline, ix.twin, None, tw, seed)]
        if any(c is None or not _finite(c.get(col)) for c in pair):
            return None
        v = [float(c[col]) for c in pair]
        return v[0] - v[1] if baseline is None else (v[0] - v[2]) - (v[1] - v[3])

    seeds = sorted({key[5] for key in ix.cells})
    for k, axis in enumerate(axes):
        others = [j for j in range(len(axes)) if j != k]
        seen = list(dict.fromkeys(ix.axv(r)[k] for r in ix.rows))  # the order the cells ran in
        given = [v for v in (order or {}).get(axis, ()) if v in seen]
        levels = given + [v for v in seen if v not in given]
        if len(levels) < 2:
            continue
        numeric = all(_finite(v) for v in levels)
        groups: dict[tuple, set] = defaultdict(set)
        for scenario, method, backend, shots, axv in ix.groups:
            if not (backend == ix.twin and shots is None):
                groups[(scenario, method, backend, shots, tuple(axv[j] for j in others))].add(axv)
        for (scenario, method, backend, shots, fixed), present in sorted(groups.items(), key=lambda kv: str(kv[0])):
            by_level = {axv[k]: axv for axv in present}
            if not all(v in by_level for v in levels):
                continue
            where = ", ".join(f"{axes[j]}={v}" for j, v in zip(others, fixed, strict=True))
            estimands = [("model", None)] + ([("unlearning", "identity")] if method != "identity" else [])
            for metric, reference, col in metric_columns():
                for estimand, baseline in estimands:
                    D = [[delta(scenario, method, backend, shots, by_level[v], s, col, baseline) for v in levels]
                         for s in seeds]
                    D = np.array([d for d in D if all(x is not None for x in d)], dtype=float)
                    if len(D):
                        yield (axis, scenario, method, backend, shots, where, estimand, metric, reference,
                               levels, numeric, D)


def interaction_effects(rows: list[dict], order: dict | None = None,
                        analysis: AnalysisTable | None = None) -> list[Interaction]:
    """Every axis interaction of the finished cells ``rows`` (store rows with axis columns),
    for both estimands: ``model`` (Δ = noisy - exact twin) and ``unlearning`` (the same Δ of
    method - identity: what noise does to unlearning, not to how a fixed model's outputs
    look). ``order``: axis -> its values as the config lists them (the first level of a
    categorical axis is the baseline of its contrasts); default: the order the cells ran in."""
    out: list[Interaction] = []
    for (axis, scenario, method, backend, shots, where, estimand, metric, reference, levels, numeric,
         D) in _per_seed_deltas(rows, order, analysis):
        tests = [("slope", per_unit_slopes([float(v) for v in levels], D))] if numeric else \
            [(f"{v} - {levels[0]}", D[:, j] - D[:, 0]) for j, v in enumerate(levels) if j]
        for contrast, d in tests:
            t = paired_test(d)
            out.append(Interaction(scenario, method, backend, shots, estimand, metric, reference, axis,
                                   where, contrast, t.n, t.mean, t.ci_low, t.ci_high, t.p_value))
    return _with_holm(out)


def plot_interactions(rows: list[dict], folder: str | Path, order: dict | None = None,
                      analysis: AnalysisTable | None = None, metric: tuple[str, str] = ("js_forget", "same")):
    """``<folder>/noise_interaction.png``: the noise effect on unlearning (headline metric)
    at each level of each study axis, one panel per (axis, scenario, noisy backend @ shots,
    other axes' values), one line per method: mean over seeds with its 95 % CI (sign-flip
    inversion; no bar where the seeds cannot bound it). None when there is nothing to plot."""
    panels: dict[tuple, list] = defaultdict(list)
    for (axis, scenario, method, backend, shots, where, estimand, m, ref, levels, _numeric,
         D) in _per_seed_deltas(rows, order, analysis):
        if estimand == "unlearning" and (m, ref) == metric:
            panels[(axis, scenario, backend, shots, where)].append((method, levels, D))
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(panels, key=str)[:12]  # a readable page; every number is in noise_interaction.csv
    cols = min(3, len(keys))
    nrows = -(-len(keys) // cols)
    fig, axs = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False, layout="constrained")
    for ax, key in zip(list(axs.flat)[:len(keys)], keys, strict=True):
        axis, scenario, backend, shots, where = key
        for method, levels, D in sorted(panels[key], key=lambda t: t[0]):
            x = np.arange(len(levels))
            tests = [paired_test(D[:, j]) for j in range(len(levels))]
            mean = np.array([t.mean for t in tests])
            lo = np.array([t.mean - t.ci_low if math.isfinite(t.ci_low) else 0.0 for t in tests])
            hi = np.array([t.ci_high - t.mean if math.isfinite(t.ci_high) else 0.0 for t in tests])
            ax.errorbar(x, mean, yerr=[lo, hi], marker="o", ms=4, capsize=2, label=method)
            ax.set_xticks(x)
            ax.set_xticklabels([str(v) for v in levels])
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel(axis)
        ax.set_title(f"{scenario}, {backend} @{'exact' if shots is None else shots}"
                     + (f"\n{where}" if where else ""), fontsize=9)
    for ax in list(axs.flat)[len(keys):]:
        ax.set_visible(False)
    axs.flat[0].set_ylabel(f"Δ_unlearning {metric[0]} (vs identity)")
    handles, labels = axs.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    fig.suptitle("Noise effect on unlearning by study axis: mean over seeds, 95 % CI", fontsize=10)
    path = Path(folder) / "noise_interaction.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _with_holm(items: list[Interaction]) -> list[Interaction]:
    fams: dict[tuple, list[int]] = defaultdict(list)
    for i, e in enumerate(items):
        fams[(e.scenario, e.backend, e.shots, e.estimand, e.metric, e.reference, e.axis, e.fixed, e.contrast)].append(i)
    out = list(items)
    for idx in fams.values():
        for i, ph in zip(idx, holm([items[i].p_value for i in idx]), strict=True):
            out[i] = Interaction(**{**asdict(items[i]), "p_holm": float(ph)})
    return out


def write_interactions(folder: str | Path, rows: list[dict], order: dict | None = None,
                       analysis: AnalysisTable | None = None) -> list[Interaction]:
    """``<folder>/noise_interaction.csv`` (header only when the study has no axis or no pair)."""
    items = interaction_effects(rows, order, analysis)
    write_rows(Path(folder) / "noise_interaction.csv", COLUMNS, (asdict(it) for it in items))
    return items


def _ci(lo: float, hi: float) -> str:
    return "[-inf, inf]" if math.isinf(lo) and math.isinf(hi) else f"[{lo:.3g}, {hi:.3g}]"


def report_lines(items: list[Interaction]) -> list[str]:
    """The report section (markdown lines); empty when the study has no axis interaction."""
    # the noise effect on unlearning leads (the noise effect on the model moves identity too)
    shown = [i for i in items if (i.metric, i.reference) in REPORT_METRICS and i.estimand == "unlearning"]
    if not items:
        return []
    axes = sorted({i.axis for i in items})
    title = f"\n## Does noise sensitivity grow with {' / '.join(a.split('.', 1)[1] for a in axes)}?\n"
    if not shown:
        return [title, "No method other than `identity` ran on both exact and noisy backends, so there is no "
                       "noise effect on unlearning to relate to the axes; the noise effect on the model "
                       "(estimand `model`) is in `noise_interaction.csv`.\n"]
    lines = [title,
             "Per seed: the paired noise effect on unlearning, Δ = (method - identity)_noisy - "
             "(method - identity)_exact, within each axis combination (cells whose teacher or oracles are at "
             "chance on their backend left out); along a numeric "
             "axis its slope per unit of the axis, along a categorical one its contrast with the first level. "
             "Mean over seeds, exact sign-flip test and its 95 % CI (unbounded when the seeds cannot bound it), "
             "Holm across methods. Every metric, and the noise effect on the model (estimand `model`), is in "
             "`noise_interaction.csv`.\n",
             "| axis | other axes | scenario | backend @ shots | method | metric | contrast | n seeds | estimate | "
             "95 % CI | p | p_holm |", "|---" * 12 + "|"]
    for i in sorted(shown, key=lambda i: (i.axis, i.fixed, i.scenario, i.backend, i.metric, i.method, i.contrast)):
        shots = "exact" if i.shots is None else i.shots
        metric = i.metric + ("" if i.reference == "none" else f" ({i.reference} ref)")
        lines.append(f"| {i.axis} | {i.fixed or '-'} | {i.scenario} | {i.backend} @ {shots} | {i.method} | {metric} | "
                     f"{i.contrast} | {i.n_seeds} | {i.estimate:+.4f} | {_ci(i.ci_low, i.ci_high)} | "
                     f"{i.p_value:.2g} | {i.p_holm:.2g} |")
    return lines
