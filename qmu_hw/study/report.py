"""report.md and PNG plots from the results store (matplotlib imported here only)."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from .grid import noise_level

METRICS = [
    ("acc_forget", "forget accuracy", "acc_forget_oracle"),
    ("acc_test", "test accuracy", "acc_test_oracle"),
    ("uqi", "UQI (paper's index)", None),
    ("js_forget", "JS divergence to oracle, forget set (nats)", "js_forget_oracle_floor"),
    ("mia_pop_auc", "population MIA AUC (forget vs held-out)", None),
]
LIMITS = {"acc_forget": (-0.02, 1.02), "acc_test": (-0.02, 1.02), "uqi": (-1.02, 1.02),
          "js_forget": (-0.01, math.log(2) + 0.01), "mia_pop_auc": (-0.02, 1.02)}


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
    handles, labels = fig_axes[0].get_legend_handles_labels()
    legend_ax.axis("off")
    legend_ax.legend(handles, labels, loc="center", fontsize=9, title="method")
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
    fig, axes, leg = _panels(plt, f"{scenario}: metrics vs noise level (mean ± 95% CI over seeds)")
    x = np.arange(len(backends))
    for ax, (key, label, floor) in zip(axes, METRICS, strict=True):
        g = _group(sel, "method", "backend")
        for m in methods:
            stats_ = [mean_ci([r.get(key) for r in g.get((m, b), [])]) for b in backends]
            ys, es = np.array([s[0] for s in stats_]), np.array([s[1] for s in stats_])
            ax.errorbar(x, ys, yerr=es, marker="o", ms=4, capsize=3, label=m)
        if floor:
            fl = [mean_ci([r.get(floor) for r in sel if r["backend"] == b])[0] for b in backends]
            ax.plot(x, fl, "k--", lw=1.5, label="oracle" if "acc" in key else "oracle-vs-oracle floor")
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
        fig, axes, leg = _panels(plt, f"{scenario} on {backend[0]}: metrics vs shots (mean ± 95% CI over seeds)")
        g = _group(brows, "method", "shots")
        for ax, (key, label, floor) in zip(axes, METRICS, strict=True):
            for m in methods:
                st = [mean_ci([r.get(key) for r in g.get((m, s), [])]) for s in shots]
                ax.errorbar(shots, [s[0] for s in st], yerr=[s[1] for s in st], marker="o", ms=3, capsize=2, label=m)
            if floor:
                ax.plot(shots, [mean_ci([r.get(floor) for r in brows if r["shots"] == s])[0] for s in shots],
                        "k--", lw=1.5, label="oracle" if "acc" in key else "oracle-vs-oracle floor")
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


def _plot_cost(rows, scenario, out: Path, plt) -> Path | None:
    pts = [r for r in rows if r["method"] != "identity"]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    use_shots = any(r.get("cost_shots", 0) for r in pts)
    xkey = "cost_shots" if use_shots else "cost_circuits"
    for m, mrows in sorted(_group(pts, "method").items()):
        xs = [max(r.get(xkey, 0), 1) for r in mrows]
        ys = [abs(r["acc_forget"] - r["acc_forget_oracle"]) for r in mrows]
        ax.scatter(xs, ys, s=18, label=m[0], alpha=0.75)
    ax.set_xscale("log")
    ax.set_xlabel("shots spent on unlearning" if use_shots else "circuits evaluated for unlearning")
    ax.set_ylabel("|forget accuracy − oracle's| (lower = closer to retraining)")
    ax.set_title(f"{scenario}: cost vs forgetting quality (one point per cell)")
    ax.legend(fontsize=7, ncol=2)
    path = out / f"cost_{scenario.replace(':', '_')}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _summary_table(rows) -> list[str]:
    lines = []
    for (backend, shots), brows in sorted(_group(rows, "backend", "shots").items(),
                                          key=lambda kv: (noise_level(kv[0][0]), kv[0][0], kv[0][1] or 0)):
        lines.append(f"\n**{backend} @ {_shots_label(shots)} shots** — ranked by JS divergence to the oracle on "
                     "the forget set (lower is closer to retraining)\n")
        lines.append("| rank | method | forget acc | test acc | UQI | JS forget | MIA AUC | shots | circuits vs retrain |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        stats_ = []
        for m, mrows in _group(brows, "method").items():
            s = {k: mean_ci([r.get(k) for r in mrows]) for k in ("acc_forget", "acc_test", "uqi", "js_forget",
                                                                  "mia_pop_auc", "cost_shots", "circuits_vs_retrain")}
            stats_.append((m[0], s))
        stats_.sort(key=lambda t: (math.inf if math.isnan(t[1]["js_forget"][0]) else t[1]["js_forget"][0]))
        for i, (m, s) in enumerate(stats_, 1):
            lines.append(f"| {i} | {_label(m)} | {_fmt(*s['acc_forget'])} | {_fmt(*s['acc_test'])} | {_fmt(*s['uqi'])} | "
                         f"{_fmt(*s['js_forget'])} | {_fmt(*s['mia_pop_auc'])} | {s['cost_shots'][0]:,.0f} | "
                         f"{_fmt(*s['circuits_vs_retrain'], digits=2)} |")
    return lines


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
                 reference: Path | None = None, note: str = "") -> Path:
    """Write ``report.md`` and the plots into ``folder``; returns the report path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(folder)
    rows = _norm_shots([dict(r) for r in rows])
    _add_ratios(rows)
    lines = [f"# {title}\n", note, f"{len(rows)} finished cells.\n"]
    for scenario, srows in sorted(_group(rows, "scenario").items()):
        scenario = scenario[0]
        lines.append(f"\n## Scenario {scenario}\n")
        for path in [_plot_vs_noise(srows, scenario, out, plt), *_plot_vs_shots(srows, scenario, out, plt),
                     _plot_cost(srows, scenario, out, plt)]:
            if path is not None:
                lines.append(f"![{path.stem}]({path.name})\n")
        lines += _summary_table(srows)
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
