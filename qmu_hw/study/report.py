"""report.md and PNG plots from the results store (matplotlib imported here only)."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..metrics import catalog
from .grid import axis_columns, noise_level

METRICS = [
    ("acc_forget", "forget accuracy", "acc_forget_oracle"),
    ("acc_test_retained", "test accuracy on retained classes", None),
    ("uqi", "UQI (the paper's index)", None),
    ("js_forget", "JS to the same-noise oracles, forget set (nats)", "js_forget"),
    ("mia_pop_auc", "population MIA AUC (forget vs class-matched non-members)", None),
]
LIMITS = {"acc_forget": (-0.02, 1.02), "acc_test_retained": (-0.02, 1.02), "uqi": (-1.02, 1.02),
          "js_forget": (-0.01, math.log(2) + 0.01), "mia_pop_auc": (-0.02, 1.02)}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p", "d", "8", "H")


def method_styles(methods) -> dict[str, dict]:
    """A distinct (colour, marker) per method, assigned in sorted order: the ten saturated
    tab20 colours first, then their light twins, each with its own marker, so ten or more
    methods never share a look (tab10 alone repeats after ten)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return {m: {"color": cmap((2 * i) % 20 + (i // 10) % 2), "marker": MARKERS[i % len(MARKERS)]}
            for i, m in enumerate(sorted(methods))}


# One legend entry per meaning: the oracles' own value is one black dashed line whether it is
# an accuracy (the oracles' mean) or a distance (the mean oracle-vs-oracle distance, the floor).
ORACLE_LINE = "retrained oracles (mean; distances: oracle vs oracle)"
ORACLE_BAND = "oracle-vs-oracle spread (up to the 95th percentile)"
REFERENCES = (ORACLE_LINE, ORACLE_BAND)


def _floor_band(ax, x, rows_at, metric: str) -> None:
    """The oracle-vs-oracle floor of a distance: its mean (dashed) and the band up to the
    within-spread threshold (95th percentile, or max when K < 8), averaged over seeds."""
    mean = [mean_ci([r.get(f"{metric}_floor_mean") for r in rows_at(i)])[0] for i in range(len(x))]
    thr = [mean_ci([r.get(f"{metric}_floor_threshold") for r in rows_at(i)])[0] for i in range(len(x))]
    if all(math.isnan(v) for v in mean):
        return
    ax.fill_between(x, 0, thr, color="grey", alpha=0.2, label=ORACLE_BAND)
    ax.plot(x, mean, "k--", lw=1.2, label=ORACLE_LINE)


def _panels(plt, title: str):
    """A 2×3 grid: five metric panels and one for the legend."""
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), constrained_layout=True)
    axes = axes.ravel()
    fig.suptitle(title)
    return fig, axes[:5], axes[5]


def _finish(ax, key: str) -> None:
    lo, hi = LIMITS[key]
    ax.set_ylim(lo, hi)  # bounded metrics: a wide CI (few seeds) must not hide the means
    ax.grid(alpha=0.3)


def _legend(fig_axes, legend_ax) -> None:
    """The methods and the reference lines of every panel in the spare panel (never over the
    data), one entry per label: methods under "method", oracle lines/bands under "reference"."""
    handles, labels = [], []
    for ax in fig_axes:  # methods from the first panel, reference lines/bands from any
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    legend_ax.axis("off")
    methods = [(h, lab) for h, lab in zip(handles, labels, strict=True) if lab not in REFERENCES]
    refs = [(h, lab) for h, lab in zip(handles, labels, strict=True) if lab in REFERENCES]
    if methods:
        first = legend_ax.legend(*zip(*methods, strict=True), loc="upper center" if refs else "center",
                                 fontsize=9, title="method", ncol=2 if len(methods) > 12 else 1)
        legend_ax.add_artist(first)
    if refs:
        legend_ax.legend(*zip(*refs, strict=True), loc="lower center", fontsize=8, title="reference")


PAPER_NAMES = {"ga": "GA", "fisher-ewc": "Fisher", "neggrad+": "NegGradPlus", "cf-k": "CF-k1", "eu-k": "EU-k1",
               "scrub": "SCRUB", "scrub+r": "SCRUB(+R)", "certified": "Certified", "q-mul": "Q-MUL",
               "lca": "LCA", "adv-uniform": "ADV-UNIFORM"}
PAPER_SCENARIOS = {"subset2pct": "subset:0.02", "fullclass": "class:0"}
# Methods whose name promises more than they do: marked in every table, explained below it.
FOOTNOTES = {"certified": "`certified` is noisy fine-tuning on the retain set (clipped gradients plus Gaussian "
                          "noise), named after the paper; it carries no unlearning certificate: certified removal "
                          "needs a convex loss or a sensitivity bound, and these hybrid models are non-convex."}


def _label(method: str) -> str:
    return f"{method}¹" if method in FOOTNOTES else method


def mean_ci(values) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval (0 for a single value)."""
    v = np.asarray([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))], float)
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) == 1:
        return float(v[0]), 0.0
    from scipy import stats

    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def _shots_label(s) -> str:
    return "exact" if s is None or (isinstance(s, float) and math.isnan(s)) else str(int(s))


def _group(rows, *keys):
    out = defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in keys)].append(r)
    return out


def _fmt(m: float, h: float, digits: int = 3) -> str:
    if math.isnan(m):
        return "–"
    return f"{m:.{digits}f} ± {h:.{digits}f}" if h else f"{m:.{digits}f}"


def _norm_shots(rows):
    for r in rows:
        s = r.get("shots")
        r["shots"] = None if s is None or (isinstance(s, float) and math.isnan(s)) else int(s)
    return rows


def _plot_vs_noise(rows, scenario, out: Path, plt) -> Path | None:
    # One point per backend at its largest shot count (exact where that is all it has).
    per_backend = {}
    for r in rows:
        best = per_backend.get(r["backend"])
        key = math.inf if r["shots"] is None else r["shots"]
        if best is None or key > best:
            per_backend[r["backend"]] = key
    backends = sorted(per_backend, key=lambda b: (noise_level(b), b))
    if len(backends) < 2:
        return None
    sel = [r for r in rows if (math.inf if r["shots"] is None else r["shots"]) == per_backend[r["backend"]]]
    methods = sorted({r["method"] for r in sel})
    style = method_styles(methods)
    fig, axes, leg = _panels(plt, f"{scenario}: metrics vs noise level (mean ± 95% CI over seeds)")
    x = np.arange(len(backends))
    for ax, (key, label, floor) in zip(axes, METRICS, strict=True):
        g = _group(sel, "method", "backend")
        for m in methods:
            stats_ = [mean_ci([r.get(key) for r in g.get((m, b), [])]) for b in backends]
            ys, es = np.array([s[0] for s in stats_]), np.array([s[1] for s in stats_])
            ax.errorbar(x, ys, yerr=es, ms=4, capsize=3, label=m, **style[m])
        if floor and key.startswith("acc"):
            fl = [mean_ci([r.get(floor) for r in sel if r["backend"] == b])[0] for b in backends]
            ax.plot(x, fl, "k--", lw=1.5, label=ORACLE_LINE)
        elif floor:
            _floor_band(ax, x, lambda i: [r for r in sel if r["backend"] == backends[i]], floor)
        if key == "mia_pop_auc":
            ax.axhline(0.5, color="grey", lw=1, ls=":")
        ax.set_xticks(x)
        ax.set_xticklabels([f"{b} @{_shots_label(per_backend[b] if per_backend[b] != math.inf else None)}"
                            for b in backends], rotation=30, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("backend @ shots (noise increases →)", fontsize=9)
        _finish(ax, key)
    _legend(axes, leg)
    path = out / f"noise_{scenario.replace(':', '_')}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_vs_shots(rows, scenario, out: Path, plt) -> list[Path]:
    paths = []
    for backend, brows in sorted(_group(rows, "backend").items()):
        shots = sorted({r["shots"] for r in brows if r["shots"] is not None})
        if len(shots) < 2:
            continue
        methods = sorted({r["method"] for r in brows})
        style = method_styles(methods)
        fig, axes, leg = _panels(plt, f"{scenario} on {backend[0]}: metrics vs shots (mean ± 95% CI over seeds)")
        g = _group(brows, "method", "shots")
        for ax, (key, label, floor) in zip(axes, METRICS, strict=True):
            for m in methods:
                st = [mean_ci([r.get(key) for r in g.get((m, s), [])]) for s in shots]
                ax.errorbar(shots, [s[0] for s in st], yerr=[s[1] for s in st], ms=3, capsize=2, label=m, **style[m])
            if floor and key.startswith("acc"):
                ax.plot(shots, [mean_ci([r.get(floor) for r in brows if r["shots"] == s])[0] for s in shots],
                        "k--", lw=1.5, label=ORACLE_LINE)
            elif floor:
                _floor_band(ax, shots, lambda i, shots=shots, brows=brows: [r for r in brows if r["shots"] == shots[i]], floor)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("shots per circuit", fontsize=9)
            ax.set_title(label, fontsize=10)
            _finish(ax, key)
        _legend(axes, leg)
        path = out / f"shots_{scenario.replace(':', '_')}_{backend[0]}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


DELTA_PANELS = [("unlearning", "js_forget", "same", "Δ_unlearning: forget-set JS, same-noise oracles"),
                ("unlearning", "excess_rel", "same", "Δ_unlearning: relative JS excess over the oracle floor"),
                ("unlearning", "acc_forget_gap", "same", "Δ_unlearning: forget-accuracy gap, same-noise oracles"),
                ("unlearning", "acc_forget", "none", "Δ_unlearning: forget accuracy"),
                ("model", "js_forget", "same", "Δ_model: forget-set JS, same-noise oracles (identity too)")]


def _plot_delta(effects, scenario, out: Path, plt) -> Path | None:
    """Paired noise effects per method against the noise level: four panels of Δ_unlearning
    (relative to identity) and one of Δ_model, each with its 95 % CI (sign-flip inversion;
    no bar where n is too small to bound it)."""
    eff = [e for e in effects if e.scenario == scenario and e.valid and e.baseline in ("", "identity")]
    if not eff:
        return None
    points = sorted({(e.backend, e.shots, e.axes) for e in eff},
                    key=lambda k: (noise_level(k[0]), k[0], k[1] or 0, str(k[2])))
    methods = sorted({e.method for e in eff})
    style = method_styles(methods)
    by = {(e.estimand, e.method, e.backend, e.shots, e.axes, e.metric, e.reference): e for e in eff}
    fig, axes, leg = _panels(plt, f"{scenario}: paired noise effects (same seed), mean and 95 % CI over seeds "
                                  "(no bar where n is too small to bound it)")
    x = np.arange(len(points))
    width = 0.6 / max(len(methods), 1)

    def bar(e, side):
        if e is None or not math.isfinite(e.ci_low) or not math.isfinite(e.ci_high):
            return 0.0
        return e.delta - e.ci_low if side == "lo" else e.ci_high - e.delta

    for ax, (estimand, metric, ref, label) in zip(axes, DELTA_PANELS, strict=True):
        for i, m in enumerate(methods):
            es = [by.get((estimand, m, b, s, a, metric, ref)) for b, s, a in points]
            if all(e is None for e in es):
                continue
            ys = np.array([e.delta if e else np.nan for e in es])
            ax.errorbar(x + (i - (len(methods) - 1) / 2) * width, ys,
                        yerr=[[bar(e, "lo") for e in es], [bar(e, "hi") for e in es]], ms=4, capsize=2, ls="none",
                        label=m, **style[m])
        ax.axhline(0, color="k", lw=1)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{b} @{_shots_label(s)}" + "".join(f"\n{k}={v}" for k, v in a) for b, s, a in points],
                           rotation=30, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    _legend(axes, leg)
    path = out / f"delta_{scenario.replace(':', '_')}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_cost(rows, scenario, out: Path, plt) -> Path | None:
    """Cost vs forgetting quality, one point per cell. The x axis is symmetric-log (linear
    below 1), so a method that spends nothing (``identity``: 0 circuits) stays on the plot at
    0 instead of vanishing from a log axis; the legend sits outside the axes."""
    gap = lambda r: r.get("acc_forget_gap", float("nan"))  # noqa: E731
    pts = [r for r in rows if not math.isnan(float(gap(r)))]
    if not pts:  # no oracle comparison (e.g. K = 0 rows from an old store): nothing to plot
        return None
    fig, ax = plt.subplots(figsize=(9, 5), constrained_layout=True)
    use_shots = any(r.get("cost_shots", 0) for r in pts)
    xkey = "cost_shots" if use_shots else "cost_circuits"
    style = method_styles({r["method"] for r in pts})
    xmax = 1.0
    for m, mrows in sorted(_group(pts, "method").items()):
        xs = [float(r.get(xkey) or 0) for r in mrows]
        xmax = max([xmax, *xs])
        ys = [gap(r) for r in mrows]
        ax.scatter(xs, ys, s=22, label=m[0], alpha=0.8, **style[m[0]])
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(-0.3, xmax * 3)
    ax.set_xlabel(("shots spent on unlearning" if use_shots else "circuits evaluated for unlearning")
                  + " (symlog: 0 = none)")
    ax.set_ylabel("forget-accuracy gap to the same-noise oracles (lower = closer)")
    ax.set_title(f"{scenario}: cost vs forgetting quality (one point per cell)")
    ax.grid(alpha=0.3)
    n = len({r["method"] for r in pts})
    fig.legend(loc="outside right upper", fontsize=7, ncol=2 if n > 14 else 1, title="method")
    path = out / f"cost_{scenario.replace(':', '_')}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _summary_table(rows) -> list[str]:
    from .evaluation import overlap_ranks

    lines = []
    is_class = any(str(r["scenario"]).startswith("class:") for r in rows)
    for (backend, shots), brows in sorted(_group(rows, "backend", "shots").items(),
                                          key=lambda kv: (noise_level(kv[0][0]), kv[0][0], kv[0][1] or 0)):
        n_seeds = len({r["seed"] for r in brows})
        k = brows[0].get("n_oracles", float("nan"))
        lines.append(f"\n**{backend} @ {_shots_label(shots)} shots** — ranked by JS divergence to the same-noise "
                     "oracle ensemble on the forget set in excess of the oracle-vs-oracle floor, then by the "
                     "forget-accuracy gap; methods whose 95% CIs overlap share a rank "
                     f"(n = {n_seeds} seeds, K = {_int(k)} oracles per reference)\n")
        # column names from the metric catalog (one label per metric everywhere)
        test_cols = f"{catalog.label('acc_test_retained')} | {catalog.label('acc_test_forgotten')}" if is_class else catalog.label("acc_test")
        lines.append(f"| rank | method | {catalog.label('acc_forget')} | {test_cols} | {catalog.label('excess')} | "
                     f"{catalog.label('within_oracle_spread')} | {catalog.label('excess')} (exact ref) | {catalog.label('acc_forget_gap')} | "
                     f"{catalog.label('uqi')} | {catalog.label('mia_pop_auc')} | shots | circuits vs retrain |")
        lines.append("|---" * (12 + is_class) + "|")
        keys = ("acc_forget", "acc_test_retained", "acc_test_forgotten", "excess", "within_oracle_spread",
                "excess_exact", "acc_forget_gap", "uqi", "mia_pop_auc", "cost_shots", "circuits_vs_retrain")
        stats_ = []
        for m, mrows in _group(brows, "method").items():
            st = {key: mean_ci([r.get(key) for r in mrows]) for key in keys}
            sizes = [(r.get("mia_pop_n_members"), r.get("mia_pop_n_nonmembers")) for r in mrows]
            stats_.append((m[0], st, sizes[0] if sizes else (None, None)))
        ranks = overlap_ranks([s["excess"] for _, s, _ in stats_], [s["acc_forget_gap"] for _, s, _ in stats_])
        order = sorted(range(len(stats_)), key=lambda i: (ranks[i], _nan_last(stats_[i][1]["excess"][0]),
                                                          _nan_last(stats_[i][1]["acc_forget_gap"][0])))
        for i in order:
            m, st, (n_mem, n_non) = stats_[i]
            test = f"{_fmt(*st['acc_test_retained'])} | {_fmt(*st['acc_test_forgotten'])}" if is_class \
                else _fmt(*st["acc_test_retained"])
            within = st["within_oracle_spread"][0]
            lines.append(
                f"| {ranks[i]} | {_label(m)} | {_fmt(*st['acc_forget'])} | {test} | {_fmt(*st['excess'])} | "
                f"{'–' if math.isnan(within) else f'{within:.0%}'} | {_fmt(*st['excess_exact'])} | "
                f"{_fmt(*st['acc_forget_gap'])} | {_fmt(*st['uqi'])} | {_fmt(*st['mia_pop_auc'])} "
                f"({_int(n_mem)} vs {_int(n_non)}) | {st['cost_shots'][0]:,.0f} | "
                f"{_fmt(*st['circuits_vs_retrain'], digits=2)} |")
    lines.append("\n*within spread*: share of seeds whose forget-set JS to the same-noise oracles is within the "
                 "oracle-vs-oracle spread; MIA AUC is followed by (members vs class-matched non-members).")
    return lines


def _int(v) -> str:
    return "?" if v is None or (isinstance(v, float) and math.isnan(v)) else str(int(v))


def _nan_last(v: float) -> float:
    return math.inf if math.isnan(v) else v


def _paper_comparison(rows, reference: Path) -> list[str]:
    with open(reference) as f:
        paper = list(csv.DictReader(f))
    lines = [f"\n## Ours vs the paper ({reference.name})\n",
             "The paper selected epochs on the test split, fitted scaling on all data, used one seed and "
             "a shuffled-loader KL; compare orderings and shapes, not decimals.\n",
             "| scenario | method | forget acc (paper) | forget acc (ours) | test acc (paper) | test acc (ours) | "
             "UQI (paper) | UQI (ours) |", "|---|---|---|---|---|---|---|---|"]
    ours = _group(rows, "scenario", "method")
    for p in paper:
        scenario = PAPER_SCENARIOS.get(p["scenario"])
        method = next((k for k, v in PAPER_NAMES.items() if v == p["method"]), None)
        if scenario is None or method is None or (scenario, method) not in ours:
            continue
        o = ours[(scenario, method)]
        lines.append(
            f"| {scenario} | {_label(method)} | {float(p['acc_forget_unlearn']):.3f} | {_fmt(*mean_ci([r['acc_forget'] for r in o]))} | "
            f"{float(p['acc_test_unlearn']):.3f} | {_fmt(*mean_ci([r['acc_test'] for r in o]))} | "
            f"{float(p['UQI']):.3f} | {_fmt(*mean_ci([r['uqi'] for r in o]))} |")
    return lines


def build_report(folder: str | Path, rows: list[dict], title: str = "qmu-hw study",
                 reference: Path | None = None, note: str = "", effects=None, slopes=None, analysis=None) -> Path:
    """Write ``report.md`` and the plots into ``folder``; returns the report path.

    ``effects``/``slopes`` are the paired noise effects of ``rows`` (computed here when not
    given, see :func:`qmu_hw.study.noise_effect.write_noise_effects`); the report opens with
    the findings they support. ``analysis``: the study's ``[analysis]`` table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .findings import criterion_lines, findings_lines
    from .noise_effect import analyse, exclusions

    out = Path(folder)
    if effects is None or slopes is None:
        effects, slopes = analyse(rows, analysis)
    findings = findings_lines(effects, slopes, exclusions(rows, analysis),
                              primary=analysis.primary if analysis is not None else None)
    rows = _norm_shots([dict(r) for r in rows])
    _add_ratios(rows)
    lines = [f"# {title}\n", *findings, note, f"{len(rows)} finished cells.\n", *criterion_lines(rows)]
    for scenario, srows in sorted(_group(rows, "scenario").items()):
        scenario = scenario[0]
        lines.append(f"\n## Scenario {scenario}\n")
        for path in [_plot_delta(effects, scenario, out, plt), _plot_vs_noise(srows, scenario, out, plt),
                     *_plot_vs_shots(srows, scenario, out, plt), _plot_cost(srows, scenario, out, plt)]:
            if path is not None:
                lines.append(f"![{path.stem}]({path.name})\n")
        axes = axis_columns(srows)
        if not axes:
            lines += _summary_table(srows)
        for combo, crows in sorted(_group(srows, *axes).items(), key=lambda kv: tuple(map(str, kv[0]))) if axes else ():
            # one table per study-axis combination: methods are ranked within it
            lines.append("\n### " + ", ".join(f"{k} = {v}" for k, v in zip(axes, combo, strict=True)) + "\n")
            lines += _summary_table(crows)
    if reference is not None and Path(reference).is_file():
        lines += _paper_comparison(rows, Path(reference))
    used = sorted({r["method"] for r in rows} & set(FOOTNOTES))
    if used:
        lines += ["\n---\n"] + [f"¹ {FOOTNOTES[m]}\n" for m in used]
    path = out / "report.md"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def _add_ratios(rows: list[dict]) -> None:
    ref = {(r["scenario"], r["seed"], r["backend"], r["shots"]): r for r in rows if r["method"] == "retrain"}
    for r in rows:
        base = ref.get((r["scenario"], r["seed"], r["backend"], r["shots"]))
        denom = base.get("cost_circuits", 0) if base else 0
        r["circuits_vs_retrain"] = r.get("cost_circuits", 0) / denom if denom else float("nan")
