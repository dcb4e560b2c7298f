"""The ``## Findings`` section: what the paired noise effects support, in sentences.

Only the headline metrics are turned into sentences (the CSV holds every metric); an effect
is a finding when its Holm-corrected p is below 0.05. Everything else is summarised with the
sample sizes it was tested at, so "not significant" is never read as "no effect".
"""

from __future__ import annotations

import math

from .noise_effect import Effect, Slope

ALPHA = 0.05
FINDING_METRICS = {
    ("js_forget", "same"): "forget-set JS to the same-noise oracles",
    ("js_forget", "exact"): "forget-set JS to the exact-trained oracles",
    ("acc_forget_gap", "same"): "forget-accuracy gap to the same-noise oracles",
    ("acc_forget_gap", "exact"): "forget-accuracy gap to the exact-trained oracles",
    ("acc_forget", "none"): "forget accuracy",
    ("acc_test_retained", "none"): "test accuracy on retained classes",
    ("mia_pop_auc", "none"): "membership-inference AUC",
}
MAX_SENTENCES = 40


def _shots(s) -> str:
    return "exact" if s is None else f"{int(s)}"


def _change(delta: float, lo: float, hi: float) -> str:
    if delta >= 0:
        return f"rises by {delta:.3f} [{lo:.3f}, {hi:.3f}]"
    return f"falls by {-delta:.3f} [{-hi:.3f}, {-lo:.3f}]"


def _significant(p: float) -> bool:
    return not math.isnan(p) and p < ALPHA


def effect_sentence(e: Effect) -> str:
    label = FINDING_METRICS[(e.metric, e.reference)]
    return (f"On {e.backend} @ {_shots(e.shots)} shots ({e.scenario}), {e.method}'s {label} "
            f"{_change(e.delta, e.ci_low, e.ci_high)} over exact (p_holm = {e.p_holm:.2g}, n = {e.n_seeds} seeds).")


def slope_sentence(s: Slope) -> str:
    label = FINDING_METRICS[(s.metric, s.reference)]
    way = "rises" if s.slope >= 0 else "falls"
    return (f"Along the depolarizing ladder (p1 = {s.levels}) at {_shots(s.shots)} shots ({s.scenario}), "
            f"{s.method}'s {label} {way} with p1: slope {s.slope:.3g} per unit p1 [{s.ci_low:.3g}, {s.ci_high:.3g}] "
            f"(p_holm = {s.p_holm:.2g}, n = {s.n_seeds} seeds).")


def _sizes(items) -> str:
    ns = sorted({i.n_seeds for i in items})
    return f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"


def findings_lines(effects: list[Effect], slopes: list[Slope]) -> list[str]:
    """Markdown lines of the Findings section (heading included)."""
    lines = ["## Findings\n"]
    eff = [e for e in effects if (e.metric, e.reference) in FINDING_METRICS]
    slo = [s for s in slopes if (s.metric, s.reference) in FINDING_METRICS]
    if not eff:
        lines.append("No paired noise effects: the study has no noisy cells with an exact twin of the same seed "
                     "(run the `exact` backend next to the noisy ones to get them).\n")
        return lines
    sig = sorted((e for e in eff if _significant(e.p_holm)), key=lambda e: (e.p_holm, -abs(e.delta)))
    sig_s = sorted((s for s in slo if _significant(s.p_holm)), key=lambda s: s.p_holm)
    shown = sig[:MAX_SENTENCES]
    for e in shown:
        lines.append(f"- {effect_sentence(e)}")
    if len(sig) > len(shown):
        lines.append(f"- … and {len(sig) - len(shown)} more significant effects in `noise_effect.csv`.")
    for s in sig_s[:MAX_SENTENCES]:
        lines.append(f"- {slope_sentence(s)}")
    tested = [e for e in eff if not math.isnan(e.p_holm)]
    untested = [e for e in eff if math.isnan(e.p_holm)]
    rest = [e for e in tested if not _significant(e.p_holm)]
    if not sig and not sig_s:
        lines.append(f"No paired noise effect on the headline metrics is significant (p_holm < {ALPHA}).")
    if rest:
        lines.append(f"\nNot significant (p_holm ≥ {ALPHA}): {len(rest)} of {len(tested)} tested effects on the "
                     f"headline metrics ({_sizes(rest)} paired seeds per comparison; Holm across the "
                     f"{len({e.method for e in eff})} methods of each backend, shots and metric).")
        worst = sorted(rest, key=lambda e: -abs(e.delta))[:3]
        if worst:
            lines.append("The largest of them: " + "; ".join(
                f"{e.method} on {e.backend} @ {_shots(e.shots)} ({e.scenario}), "
                f"{FINDING_METRICS[(e.metric, e.reference)]} Δ = {e.delta:+.3f} [{e.ci_low:.3f}, {e.ci_high:.3f}], "
                f"p_holm = {e.p_holm:.2g}" for e in worst) + ".")
    if untested:
        lines.append(f"\n{len(untested)} effects could not be tested ({_sizes(untested)} paired seeds: "
                     "a p-value needs at least two).")
    lines.append("\nEvery effect, on every metric and both references, is in `noise_effect.csv`; slopes "
                 "along the depolarizing ladder are in `noise_slope.csv`.\n")
    return lines
