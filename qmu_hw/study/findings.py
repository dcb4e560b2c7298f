"""The ``## Findings`` section: what the paired noise effects support, in sentences.

It leads with the noise effect on UNLEARNING (Δ_unlearning, the difference in differences
relative to ``identity``), starting with the study's pre-declared primary endpoint; the
noise effect on the model (Δ_model, which moves for ``identity`` too) follows, labelled as
such. Every number carries its n, its labelled 95 % CI and its adjusted p with the
adjustment named; the smallest p each design can attain is stated, so "not significant"
at 5 seeds is never read as "no effect". Invalid cells (teacher or oracles at chance on
their backend) are excluded and listed with the reason. Only the headline metrics become
sentences; the CSV holds every metric.
"""

from __future__ import annotations

import math

from ..metrics.stats import CI_LABEL, min_attainable_p
from .endpoints import primary_key
from .noise_effect import Effect, Exclusion, Slope

ALPHA = 0.05
FINDING_METRICS = {
    ("js_forget", "same"): "forget-set JS to the same-noise oracles",
    ("js_forget", "exact"): "forget-set JS to the exact-trained oracles",
    ("excess_rel", "same"): "forget-set JS excess over the oracle floor (relative)",
    ("acc_forget_gap", "same"): "forget-accuracy gap to the same-noise oracles",
    ("acc_forget_gap", "exact"): "forget-accuracy gap to the exact-trained oracles",
    ("acc_forget", "none"): "forget accuracy",
    ("acc_test_retained", "none"): "test accuracy on retained classes",
    ("mia_pop_auc", "none"): "membership-inference AUC",
}
MAX_SENTENCES = 30
ADJUSTMENT = {"holm-primary": "Holm across methods (primary endpoint)", "bh": "Benjamini–Hochberg, study-wide"}


def _shots(s) -> str:
    return "exact" if s is None else f"{int(s)}"


def _label(metric: str, reference: str) -> str:
    return FINDING_METRICS.get((metric, reference), f"{metric} ({reference} reference)"
                               if reference != "none" else metric)


def _axes(axes) -> str:
    return "".join(f", {k} = {v}" for k, v in axes)


def ci_text(lo: float, hi: float, n: int) -> str:
    """``95 % CI [lo, hi]``, or why there is none (too few seeds for the level)."""
    if math.isinf(lo) or math.isinf(hi):
        return f"{CI_LABEL} unbounded at n = {n}"
    if math.isnan(lo) or math.isnan(hi):
        return f"no {CI_LABEL}"
    return f"{CI_LABEL} [{lo:+.3f}, {hi:+.3f}]"


def _significant(x) -> bool:
    return not math.isnan(x.p_adj) and x.p_adj < ALPHA


def _test(x) -> str:
    return f"p_adj = {x.p_adj:.2g}, {ADJUSTMENT.get(x.adjustment, x.adjustment)}; n = {x.n_seeds} seeds"


def effect_sentence(e: Effect) -> str:
    where = f"On {e.backend} @ {_shots(e.shots)} shots ({e.scenario}{_axes(e.axes)})"
    label = _label(e.metric, e.reference)
    if e.estimand == "unlearning":
        what = (f"noise changes {e.method}'s {label} relative to {e.baseline} by {e.delta:+.3f} "
                f"(Δ_unlearning; {e.method} − {e.baseline}: {e.exact_mean:+.3f} on exact, {e.mean:+.3f} noisy)")
    else:
        what = f"{e.method}'s {label} moves by {e.delta:+.3f} (Δ_model; {e.exact_mean:.3f} on exact, {e.mean:.3f} noisy)"
    return f"{where}, {what}; {ci_text(e.ci_low, e.ci_high, e.n_seeds)}, {_test(e)}."


def _compact(e: Effect) -> str:
    return (f"{e.method} on {e.backend} @ {_shots(e.shots)} ({e.scenario}{_axes(e.axes)}) Δ = {e.delta:+.3f}, "
            f"{ci_text(e.ci_low, e.ci_high, e.n_seeds)}, p_adj = {e.p_adj:.2g}")


def slope_sentence(s: Slope) -> str:
    rel = f" relative to {s.baseline} (Δ_unlearning)" if s.estimand == "unlearning" else " (the model)"
    return (f"Along the depolarizing ladder (p1 = {s.levels}, exact as p1 = 0) at {_shots(s.shots)} shots "
            f"({s.scenario}{_axes(s.axes)}), {s.method}'s {_label(s.metric, s.reference)}{rel} changes by "
            f"{s.slope:+.3g} per unit p1; {ci_text(s.ci_low, s.ci_high, s.n_seeds)}, {_test(s)}.")


def _sizes(items) -> str:
    ns = sorted({i.n_seeds for i in items})
    return f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"


def _headline(x) -> bool:
    return (x.metric, x.reference) in FINDING_METRICS


def _bullets(items, sentence) -> list[str]:
    shown = items[:MAX_SENTENCES]
    out = [f"- {sentence(x)}" for x in shown]
    if len(items) > len(shown):
        out.append(f"- … and {len(items) - len(shown)} more in the CSV.")
    return out


def _design_lines(effects: list[Effect], slopes: list[Slope]) -> list[str]:
    ns = sorted({x.n_seeds for x in [*effects, *slopes] if x.n_seeds > 0})
    if not ns:
        return []
    parts = [f"n = {n} seeds: p ≥ {min_attainable_p(n):.2g}" + ("" if min_attainable_p(n) < ALPHA else
                                                               " (can never reach 0.05)") for n in ns]
    return [f"\n**Design.** Exact two-sided sign-flip tests on paired seeds; the smallest attainable p is "
            f"2^(1−n): {'; '.join(parts)}. The {CI_LABEL} inverts the same test and is unbounded below n = 6."]


def _exclusion_lines(excluded: list[Exclusion] | None) -> list[str]:
    if excluded is None:
        return []
    if not excluded:
        return ["\n**Validity.** Every cell's teacher and same-noise oracles work on its backend "
                "(no cell excluded)."]
    total = sum(x.n_excluded for x in excluded)
    lines = [f"\n**Validity.** {total} (scenario, backend, shots, seed) cell sets are excluded from every test "
             "because their teacher or same-noise oracles are at chance on that backend "
             "(threshold `[analysis] min_teacher_accuracy`; default halfway between chance and the exact value):"]
    for x in excluded:
        lines.append(f"- {x.scenario} on {x.backend} @ {_shots(x.shots)}{_axes(x.axes)}: {x.n_excluded} of "
                     f"{x.n_seeds} seeds; {'; '.join(x.reasons)}.")
    return lines


def findings_lines(effects: list[Effect], slopes: list[Slope], excluded: list[Exclusion] | None = None,
                   primary: str | None = None) -> list[str]:
    """Markdown lines of the Findings section (heading included). ``excluded``: the validity
    gate's exclusions (:func:`qmu_hw.study.noise_effect.exclusions`); ``primary``: the
    ``[analysis] primary`` metric (default: the adjustment labels of ``effects`` decide)."""
    lines = ["## Findings\n"]
    valid = [e for e in effects if e.valid]
    if not valid:
        lines.append("No paired noise effects: the study has no valid noisy cells with an exact twin of the same seed "
                     "(run the `exact` backend next to the noisy ones to get them).\n")
        return lines + _exclusion_lines(excluded)
    unl = [e for e in valid if e.estimand == "unlearning" and e.baseline == "identity"]
    prim = [e for e in unl if e.adjustment == "holm-primary"]
    pm = primary_key(primary) if primary else ((prim[0].metric, prim[0].reference) if prim else None)
    if not unl:
        lines.append("**No noise effect on unlearning can be estimated:** Δ_unlearning = (method − identity)_noisy − "
                     "(method − identity)_exact needs `identity` in `[grid] methods` next to the other methods. "
                     "Only the noise effects on the model follow.\n")
    elif pm is not None:
        lines.append(f"**Primary endpoint** (declared before the run, `[analysis] primary`): the noise effect on "
                     f"unlearning of the {_label(*pm)}, Δ_unlearning = (method − identity)_noisy − "
                     "(method − identity)_exact per seed, Holm-adjusted across methods.\n")
        ps = sorted(prim, key=lambda e: (e.p_adj, -abs(e.delta)))
        rest = sorted((e for e in ps if not _significant(e)), key=lambda e: -abs(e.delta))
        lines += _bullets([e for e in ps if _significant(e)], effect_sentence)
        if rest:
            lines.append(f"- Not significant (p_adj ≥ {ALPHA}): {len(rest)} of {len(ps)} tests ({_sizes(rest)}); "
                         "the largest: " + "; ".join(_compact(e) for e in rest[:3]) + ".")
    other = [e for e in unl if e.adjustment != "holm-primary" and _headline(e)]
    sig = sorted((e for e in other if _significant(e)), key=lambda e: (e.p_adj, -abs(e.delta)))
    lines.append("\n### Noise effects on unlearning (Δ_unlearning, relative to identity)\n")
    lines += _bullets(sig, effect_sentence)
    if not sig:
        lines.append(f"No other noise effect on unlearning is significant on the headline metrics "
                     f"(p_adj ≥ {ALPHA}, Benjamini–Hochberg; {len(other)} tests, {_sizes(other) if other else 'n = 0'}).")
    sig_s = sorted((s for s in slopes if s.estimand == "unlearning" and s.baseline == "identity" and _headline(s)
                    and _significant(s)), key=lambda s: s.p_adj)
    lines += _bullets(sig_s, slope_sentence)
    model = [e for e in valid if e.estimand == "model" and _headline(e)]
    # identity first: its Δ_model is the noise effect on a model that unlearned nothing
    sig_m = sorted((e for e in model if _significant(e)), key=lambda e: (e.method != "identity", e.p_adj,
                                                                          -abs(e.delta)))
    lines.append("\n### Noise effects on the model (Δ_model = noisy − exact; not about unlearning)\n")
    lines.append(f"{len(sig_m)} of {len(model)} headline-metric effects on the model are significant "
                 f"(p_adj < {ALPHA}, Benjamini–Hochberg). They include `identity`, which unlearns nothing: "
                 "they describe how noise changes a fixed model's outputs.")
    lines += _bullets(sig_m[:5], effect_sentence)
    model_s = [s for s in slopes if s.estimand == "model" and _headline(s)]
    if model_s:
        lines.append(f"Along the depolarizing ladder, {sum(_significant(s) for s in model_s)} of {len(model_s)} "
                     "headline-metric slopes of the model are significant (`noise_slope.csv`).")
    lines += _design_lines(valid, slopes)
    lines += _exclusion_lines(excluded)
    lines.append("\nEvery effect (both estimands, every metric, both references; baseline `retrain` too) is in "
                 "`noise_effect.csv`; slopes along the depolarizing ladder in `noise_slope.csv`.\n")
    return lines


def criterion_lines(rows: list[dict]) -> list[str]:
    """The oracle-spread criterion's own sanity check: per scenario and backend, how often
    ``retrain`` (should be within: it is one more oracle) and ``identity`` (should not be,
    in a class scenario) are within the same-noise oracles' spread."""
    cells: dict[tuple, dict[str, list[float]]] = {}
    for r in rows:
        if r.get("method") not in ("retrain", "identity"):
            continue
        w = r.get("within_oracle_spread")
        if w is None or (isinstance(w, float) and math.isnan(w)):
            continue
        s = r.get("shots")
        s = None if s is None or (isinstance(s, float) and math.isnan(s)) else int(s)
        cells.setdefault((str(r["scenario"]), str(r["backend"]), s), {}).setdefault(r["method"], []).append(float(w))
    if not cells:
        return []
    lines = ["\n## The criterion's sanity check\n",
             "How often `retrain` (one more oracle: should be within) and `identity` (the teacher unchanged: should "
             "not be, in a class scenario) are within the same-noise oracle spread (model's mean distance to the K "
             "oracles vs each oracle's leave-one-out mean distance to the others; forget-set JS).\n",
             "| scenario | backend @ shots | retrain within | identity within |", "|---|---|---|---|"]

    def share(v):
        return "–" if not v else f"{sum(v):.0f} of {len(v)} seeds ({sum(v) / len(v):.0%})"

    for (sc, b, s), by in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        lines.append(f"| {sc} | {b} @ {_shots(s)} | {share(by.get('retrain'))} | {share(by.get('identity'))} |")
    return lines
