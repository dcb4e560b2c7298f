"""The metric catalog: one entry per metric a study reports, with everything other code needs
to know about it (its label, bounds, which direction is better, whether it is compared with
an oracle ensemble, what it means).

Evaluation, the CLI summary, the report and the column dictionary of ``results.csv``
(:func:`column_dictionary`) read metric facts from here instead of repeating them. A new
metric is its function plus one :func:`register` call: an entry with ``compute`` (``fn(probs,
labels) -> float``, where both map a data part -- ``retain``, ``forget``, ``test``, ``pool``,
``holdout`` -- to the unlearned model's ``(N, C)`` probabilities and the ``(N,)`` labels) is
computed for every cell and stored as a column of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..core.exceptions import InvalidRequestError

DIRECTIONS = ("lower", "higher", "match")  # match: closer to the retrained oracles is better
INF = math.inf


@dataclass(frozen=True)
class Metric:
    name: str  # the results column (reference metrics also have ``<name>_exact``)
    label: str  # how tables and sentences name it
    bounds: tuple[float, float]  # the values it can take
    direction: str  # which way is better for unlearning: lower, higher, or match (the oracles)
    reference: bool  # compared with an oracle ensemble: one column per reference (same, exact)
    description: str
    compute: Callable | None = None  # fn(probs, labels) -> float; None: computed by evaluation itself
    # the config table a metric needs ("" = every cell has it; "evaluation.per_example": only
    # studies with populations have the column)
    requires: str = ""

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise InvalidRequestError(f"metric {self.name!r}: direction must be one of {DIRECTIONS}, "
                                      f"got {self.direction!r}")
        lo, hi = self.bounds
        if not lo <= hi:
            raise InvalidRequestError(f"metric {self.name!r}: bounds must be (low, high), got {self.bounds!r}")

    def columns(self) -> list[str]:
        """The results columns of this metric."""
        return [self.name, f"{self.name}_exact"] if self.reference else [self.name]


CATALOG: dict[str, Metric] = {}


def register(metric: Metric, *, replace: bool = False) -> Metric:
    """Add a metric to the catalog (a name may be registered once unless ``replace``)."""
    if metric.name in CATALOG and not replace:
        raise InvalidRequestError(f"metric {metric.name!r} is already in the catalog")
    CATALOG[metric.name] = metric
    return metric


def unregister(name: str) -> None:
    CATALOG.pop(name, None)


def metric(name: str) -> Metric:
    """The catalog entry of ``name`` (a ``_exact`` column names its metric)."""
    base = name[: -len("_exact")] if name.endswith("_exact") and name[: -len("_exact")] in CATALOG else name
    if base not in CATALOG:
        raise InvalidRequestError(f"unknown metric {name!r}; expected one of {sorted(CATALOG)}")
    return CATALOG[base]


def label(name: str) -> str:
    """The metric's label; an unknown column keeps its name."""
    try:
        return metric(name).label
    except InvalidRequestError:
        return name


def metrics(*, reference: bool | None = None) -> list[Metric]:
    return [m for m in CATALOG.values() if reference is None or m.reference == reference]


def computed() -> list[Metric]:
    """Entries with their own function (evaluation calls them for every cell)."""
    return [m for m in CATALOG.values() if m.compute is not None]


def _m(name, label_, bounds, direction, reference, description, requires: str = "") -> None:
    register(Metric(name, label_, bounds, direction, reference, description, requires=requires))


LN2 = math.log(2)
for _part, _what in (("retain", "retain set"), ("forget", "forget set"), ("test", "test split")):
    _m(f"acc_{_part}", f"{_part} acc", (0.0, 1.0), "match" if _part == "forget" else "higher", False,
       f"Accuracy of the unlearned model on the {_what}.")
    _m(f"{_part}_drop", f"{_part} drop", (-1.0, 1.0), "match" if _part == "forget" else "lower", False,
       f"Teacher's accuracy minus the unlearned model's on the {_what}.")
    _m(f"js_{_part}", f"JS {_part}", (0.0, LN2), "lower", True,
       f"Mean Jensen-Shannon divergence (nats) of the model's outputs on the {_what} to each oracle's.")
    _m(f"kl_{_part}", f"KL {_part}", (0.0, INF), "lower", True,
       f"Mean KL divergence (nats) of the model's outputs on the {_what} from each oracle's.")
    _m(f"disagree_{_part}", f"disagreement {_part}", (0.0, 1.0), "lower", True,
       f"Share of {_what} samples whose predicted class differs from an oracle's (mean over oracles).")
    _m(f"agree_{_part}", f"agreement {_part}", (0.0, 1.0), "higher", True,
       f"1 - disagreement on the {_what}.")
_m("acc_forget_gap", "forget-acc gap", (0.0, 1.0), "lower", True,
   "|forget accuracy of the model - forget accuracy of an oracle|, mean over oracles.")
_m("excess", "JS forget excess", (-LN2, LN2), "lower", True,
   "Forget-set JS to the oracles (mean over the K) minus the oracle floor: the mean of each "
   "oracle's leave-one-out mean JS to the other K-1 (the headline distance).")
_m("excess_rel", "JS forget excess / floor", (-1.0, math.inf), "lower", True,
   "The headline excess divided by the oracle floor of the same reference: scale-free, so "
   "comparable across noise levels whose outputs differ in entropy.")
_m("within_oracle_spread", "within oracle spread", (0.0, 1.0), "higher", True,
   "1 when the model's mean forget-set JS to the K oracles is at most the oracles' own "
   "leave-one-out means (their max below 8 oracles, else their 95th percentile), else 0; "
   "NaN with fewer than 2 oracles.")
_m("acc_test_retained", "test acc (retained classes)", (0.0, 1.0), "higher", False,
   "Test accuracy on the classes that are kept (all classes in subset scenarios).")
_m("acc_test_forgotten", "test acc (forgotten class)", (0.0, 1.0), "match", False,
   "Test accuracy on the forgotten class (class scenarios; NaN otherwise).")
_m("uqi", "UQI (paper's)", (-2.0, 2.0), "higher", False,
   "The seed paper's Unlearning Quality Index: forget drop - (retain drop + test drop) / 2.")
_m("mia_conf_auc", "MIA confidence AUC", (0.0, 1.0), "match", False,
   "AUC of the model's confidence separating forget samples from class-matched non-members "
   "(0.5: indistinguishable, as for a model that never saw them).")
_m("mia_pop_auc", "MIA AUC", (0.0, 1.0), "match", False,
   "AUC of a population membership-inference attack on forget samples vs class-matched non-members.")
# [evaluation.per_example]: from populations of method runs and retrained models (study.populations).
PE = "evaluation.per_example"
_m("epsilon_median", "ε̃ (challenge)", (0.0, INF), "lower", False,
   "Median over forget examples of the unlearning challenge's per-example ε (Triantafillou et al. 2024): "
   "threshold attacks on logit-scaled confidences of method runs vs retrained models, Clopper-Pearson 95 % "
   "bounds; 0 = indistinguishable from retraining, capped at epsilon_max.", PE)
_m("epsilon_p90", "ε p90 (challenge)", (0.0, INF), "lower", False,
   "90th percentile over forget examples of the challenge's per-example ε.", PE)
_m("forgetting_score", "F (challenge)", (0.0, 1.0), "higher", False,
   "The challenge's bucketed forgetting score: mean over forget examples of 2/2^bucket(ε); 1 = every "
   "example indistinguishable from retraining.", PE)
_m("challenge_score", "challenge score", (0.0, INF), "higher", False,
   "F · RA/RA_retrain · TA/TA_retrain (the challenge's final score, utilities as population means).", PE)
_m("epsilon_calibration_median", "ε̃ calibration", (0.0, INF), "lower", False,
   "Median ε on held-out examples no model trained on: the evaluation's own control, ≈ 0 expected.", PE)
_m("ulira_balanced_accuracy", "U-LiRA bal. acc.", (0.0, 1.0), "match", False,
   "Balanced accuracy of U-LiRA (Hayes et al. 2024): per-example Gaussian likelihood ratio telling method "
   "runs from retrained models; 0.5 = chance (as for retraining).", PE)
_m("ulira_ci_low", "U-LiRA CI low", (0.0, 1.0), "match", False,
   "Lower end of the 95 % CI of ulira_balanced_accuracy over target models.", PE)
_m("ulira_ci_high", "U-LiRA CI high", (0.0, 1.0), "match", False,
   "Upper end of the 95 % CI of ulira_balanced_accuracy over target models.", PE)

# Columns that are not metrics: the cell's key and what it cost (results.csv).
KEY_COLUMNS = {
    "cell_id": "Identity of the cell: changes with anything that decides its result.",
    "config_hash": "Digest of the result-deciding config of the cell's axis combination.",
    "status": "done (only finished cells are exported).",
    "dataset": "Dataset of the cell.",
    "scenario": "Forgetting scenario: subset:FRACTION or class:K.",
    "seed": "Seed of the data split, teacher and oracles (paired across backends).",
    "backend": "Backend profile the cell is evaluated on.",
    "profile_sha256": "Digest of the backend profile file.",
    "shots": "Shots per circuit (empty: exact expectations).",
    "method": "Unlearning method.",
    "started": "Unix time the cell started.", "finished": "Unix time the cell finished.", "error": "Empty.",
}
FAMILIES = {
    "<metric>_exact": "The same comparison against the oracles retrained on the exact engine "
                      "(unsuffixed: against the oracles retrained under the cell's own noise).",
    "<metric>_floor_mean": "Mean of the metric over oracle pairs (the oracle-vs-oracle floor).",
    "<metric>_floor_threshold": "The largest value still within the oracle spread.",
    "<metric>_excess": "The metric minus its floor mean.",
    "<metric>_within": "1 when the metric is within the oracle spread, else 0.",
    "acc_<part>_oracle": "Mean accuracy of the oracles on the part.",
    "acc_<part>_teacher": "Teacher's accuracy on the part.",
    "n_oracles": "Oracles per reference ensemble (K).",
    "mia_pop_*": "Further outputs of the population attack (TPR at fixed FPR, sample sizes).",
    "detail_*": "Numbers a method reports about its own run.",
    "ulira_tpr_at_fpr_*": "U-LiRA's TPR at the FPRs the population size resolves (per-example evaluation).",
    "epsilon_n_* / ulira_n_*": "Forget examples and models per population behind the per-example columns.",
    "epsilon_max": "The largest ε the population size can certify (the ceiling of epsilon_median).",
    "population_wall_s": "Summed wall time of the cell's population models (seconds).",
    "cost_*": "What the cell spent: circuits, shots, submissions, cost, wall time of unlearning "
              "(unsuffixed) and evaluation (eval_), steps, surrogate and reference backends.",
    "<table>.<key>": "A study-axis value of the cell's combination (e.g. model.n_layers).",
}


def column_dictionary() -> str:
    """Markdown: every column of ``results.csv``, from this catalog."""
    lines = ["| column | meaning |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in KEY_COLUMNS.items()]
    lines += ["", "| metric | label | range | better | per reference | meaning |", "|---|---|---|---|---|---|"]
    for m in CATALOG.values():
        lo, hi = (("-inf" if math.isinf(b) and b < 0 else "inf" if math.isinf(b) else f"{b:.3g}") for b in m.bounds)
        better = {"match": "closer to the oracles"}.get(m.direction, m.direction)
        when = f" Only with [{m.requires}]." if m.requires else ""
        lines.append(f"| `{m.name}` | {m.label} | [{lo}, {hi}] | {better} | {'yes' if m.reference else 'no'} | "
                     f"{m.description}{when} |")
    lines += ["", "| column family | meaning |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in FAMILIES.items()]
    return "\n".join(lines) + "\n"
