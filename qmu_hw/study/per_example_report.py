"""The report's per-example section: the challenge's ε per method and backend, U-LiRA, the
per-example noise effects, the built-in sanity check (``retrain`` ≈ 0, ``identity`` high)
and one ECDF plot of ε per backend for each method. Appended to the report by
:mod:`.per_example_outputs` (called by ``finish_study``).

Inputs are plain rows: ``summary_rows`` (one per (scenario, method, backend, shots, seed),
the columns of :func:`qmu_hw.study.populations.population_metrics`), ``example_rows``
(``per_example.csv``, :data:`qmu_hw.study.per_example_effect.PER_EXAMPLE_COLUMNS`) and
``effect_rows`` (:func:`qmu_hw.study.per_example_effect.example_noise_effects`).
matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..metrics.stats import CI_LABEL

SANITY = ("retrain", "identity")
ALPHA = 0.05


def _arm(backend: str, shots) -> str:
    return f"{backend}@{'exact' if shots is None or (isinstance(shots, float) and math.isnan(shots)) else int(shots)}"


def _fmt(x: float, nd: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _ci(lo: float, hi: float) -> str:
    return f"[{_fmt(lo)}, {_fmt(hi)}]"


def _pooled_eps(example_rows: list[dict]) -> dict[tuple, np.ndarray]:
    out: dict[tuple, list] = defaultdict(list)
    for r in example_rows:
        out[(r["scenario"], _arm(r["backend"], r.get("shots")), r["method"])].append(float(r["epsilon"]))
    return {k: np.asarray(v) for k, v in out.items()}


def _summaries(summary_rows: list[dict]) -> dict[tuple, dict]:
    groups: dict[tuple, list] = defaultdict(list)
    for r in summary_rows:
        groups[(r["scenario"], _arm(r["backend"], r.get("shots")), r["method"])].append(r)
    out = {}
    for k, rs in groups.items():
        mean = {c: float(np.nanmean([float(r.get(c, float("nan"))) for r in rs]))
                for c in ("forgetting_score", "challenge_score", "ulira_balanced_accuracy", "ulira_ci_low",
                          "ulira_ci_high", "epsilon_max", "epsilon_calibration_median")}
        mean["n_seeds"] = len(rs)
        mean["n_models"] = int(min(r.get("epsilon_n_models", 0) for r in rs))
        out[k] = mean
    return out


def identity_detected(summary: dict, eps: np.ndarray | None, retrain_eps: np.ndarray | None) -> bool:
    """``identity`` counts as detected when its median ε is above retraining's and U-LiRA's
    95 % CI lies above chance."""
    if eps is None:
        return False
    # Without a `retrain` row, retraining's ε is 0 by construction (a population against itself).
    base = float(np.median(retrain_eps)) if retrain_eps is not None else 0.0
    return bool(np.median(eps) > base and summary.get("ulira_ci_low", 0.0) > 0.5)


def per_example_section(summary_rows: list[dict], example_rows: list[dict], effect_rows: list[dict],
                        *, plots: dict[str, str] | None = None) -> list[str]:
    """Markdown lines of the section. ``plots``: {method: relative image path} to embed."""
    eps = _pooled_eps(example_rows)
    summ = _summaries(summary_rows)
    lines = ["## Per-example forgetting quality (unlearning challenge ε, U-LiRA)", "",
             "ε per forget example from populations of unlearned and retrained models (Triantafillou et al. 2024, "
             "arXiv 2406.09073: threshold attacks, Clopper–Pearson 95 % bounds, δ = 0.01); F is the challenge's "
             "bucketed forgetting score (1 = indistinguishable from retraining), score = F · RA/RA_retrain · "
             "TA/TA_retrain. U-LiRA (Hayes et al. 2024, arXiv 2403.01218): balanced accuracy of the per-example "
             f"likelihood-ratio attack, 0.5 = chance, {CI_LABEL} over target models. ε̃ = median over forget "
             "examples (pooled over seeds); ε_max = the largest ε the population size can certify.", ""]
    findings: list[str] = []
    # exact arms first: the reference every noisy arm is read against
    for scenario, arm in sorted({(s, a) for s, a, _ in summ}, key=lambda k: (k[0], k[1] != "exact@exact", k[1])):
        methods = sorted(m for s, a, m in summ if (s, a) == (scenario, arm))
        lines += [f"### {scenario}, {arm}", "",
                  "| method | n models | n examples | ε̃ | ε p90 | F | score | U-LiRA bal. acc. " + f"{CI_LABEL} |"
                  " ε̃ retrain | ε̃ identity |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        sanity = {m: eps.get((scenario, arm, m)) for m in SANITY}
        for m in methods:
            e, s = eps.get((scenario, arm, m)), summ[(scenario, arm, m)]
            cells = [m, str(s["n_models"]), str(0 if e is None else e.size),
                     _fmt(None if e is None else float(np.median(e))),
                     _fmt(None if e is None else float(np.percentile(e, 90))), _fmt(s["forgetting_score"], 3),
                     _fmt(s["challenge_score"], 3),
                     f"{_fmt(s['ulira_balanced_accuracy'])} {_ci(s['ulira_ci_low'], s['ulira_ci_high'])}"]
            cells += [_fmt(None if sanity[k] is None else float(np.median(sanity[k]))) for k in SANITY]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if "identity" in methods:
            ok = identity_detected(summ[(scenario, arm, "identity")], sanity["identity"], sanity["retrain"])
            if not ok:
                findings.append(f"- {scenario}, {arm}: `identity` (no unlearning) is NOT detected by the per-example "
                                "evaluation (its median ε is not above retraining's, or U-LiRA's CI includes "
                                "chance); its numbers for other methods cannot certify forgetting.")
            else:
                retrain_txt = "–" if sanity["retrain"] is None else _fmt(float(np.median(sanity["retrain"])))
                findings.append(f"- {scenario}, {arm}: `identity` is detected (median ε "
                                f"{_fmt(float(np.median(sanity['identity'])))} vs retrain "
                                f"{retrain_txt}; ε_max "
                                f"{_fmt(summ[(scenario, arm, 'identity')]['epsilon_max'])}).")
        elif "retrain" not in methods:
            findings.append(f"- {scenario}, {arm}: neither `retrain` nor `identity` ran, so the evaluation is unchecked.")
    if effect_rows:
        lines += ["### Noise effect per example (paired by forget example)", "",
                  "Δε per example (noisy − exact on the same example; `unlearning` = the change of (method − identity)); "
                  f"median with its order-statistic {CI_LABEL}, exact sign test; examples are the units, conditional "
                  "on one population of models per arm.", "",
                  "| scenario | method | backend | estimand | n examples | ε̃ exact | ε̃ noisy | median Δ "
                  f"{CI_LABEL} | p (sign) | min p |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in effect_rows:
            lines.append(f"| {r['scenario']} | {r['method']} | {_arm(r['backend'], r['shots'])} | {r['estimand']} | "
                         f"{r['n_units']} | {_fmt(r['exact_mean'])} | {_fmt(r['mean'])} | {_fmt(r['delta'])} "
                         f"{_ci(r['ci_low'], r['ci_high'])} | {r['p_value']:.3g} | {r['min_p']:.2g} |")
            adjusted = not math.isnan(r.get("p_adj", float("nan")))
            p = r["p_adj"] if adjusted else r["p_value"]
            if r["estimand"] == "unlearning" and p < ALPHA:
                word = "raises (worse forgetting)" if r["delta"] > 0 else "lowers (better forgetting)"
                findings.append(f"- {r['scenario']}: noise ({_arm(r['backend'], r['shots'])}) {word} `{r['method']}`'s "
                                f"per-example ε relative to identity by {_fmt(r['delta'])} "
                                f"{CI_LABEL} {_ci(r['ci_low'], r['ci_high'])} (median over {r['n_units']} examples, "
                                f"sign test {'adjusted ' if adjusted else ''}p = {p:.3g}).")
        lines.append("")
    for m, path in sorted((plots or {}).items()):
        lines += [f"![ECDF of per-example ε per backend, {m}]({path})", ""]
    if findings:
        lines += ["### Findings (per-example)", "", *findings, ""]
    return lines


def plot_epsilon_ecdf(example_rows: list[dict], method: str, path: str | Path, *, scenario: str | None = None):
    """One figure: the ECDF of ε over forget examples, one step curve per backend arm, for
    ``method`` (and ``scenario``, else every scenario pooled). Returns the path written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps: dict[str, list] = defaultdict(list)
    for r in example_rows:
        if r["method"] == method and (scenario is None or r["scenario"] == scenario):
            eps[_arm(r["backend"], r.get("shots"))].append(float(r["epsilon"]))
    if not eps:
        raise ValueError(f"no per-example rows for method {method!r}" + (f" on {scenario}" if scenario else ""))
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for arm in sorted(eps):
        v = np.sort(np.asarray(eps[arm]))
        ax.step(np.concatenate([[0.0], v]), np.arange(v.size + 1) / v.size, where="post",
                label=f"{arm} (n = {v.size})")
    ax.set_xlabel("per-example ε (challenge, CP 95 %)")
    ax.set_ylabel("fraction of forget examples ≤ ε")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{method}" + (f", {scenario}" if scenario else ""))
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
