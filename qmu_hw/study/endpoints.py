"""Which result columns the noise analysis compares, and the study's default primary endpoint.

Kept apart from :mod:`.noise_effect` so that the config check of ``[analysis] primary``
can name the valid metrics without importing the analysis (which imports the grid, which
imports the config).
"""

from __future__ import annotations

# Oracle-comparison metrics exist per reference (``<metric>`` = same, ``<metric>_exact``);
# the others describe the model alone (reference "none").
ORACLE_METRICS = ("js_forget", "js_test", "kl_forget", "disagree_forget", "acc_forget_gap", "excess",
                  "excess_rel", "within_oracle_spread")
PLAIN_METRICS = ("acc_forget", "acc_retain", "acc_test", "acc_test_retained", "mia_pop_auc", "uqi")
# The pre-declared primary endpoint: the noise effect on unlearning (relative to identity)
# of the headline distance, forget-set JS to the same-noise oracles.
DEFAULT_PRIMARY = "js_forget"


def metric_columns() -> list[tuple[str, str, str]]:
    """``(metric, reference, column in the results)`` for every compared metric."""
    out = [(m, "same", m) for m in ORACLE_METRICS] + [(m, "exact", f"{m}_exact") for m in ORACLE_METRICS]
    return out + [(m, "none", m) for m in PLAIN_METRICS]


def primary_key(metric: str) -> tuple[str, str]:
    """``(metric, reference)`` of a primary endpoint named by its metric: an oracle metric is
    compared with the same-noise oracles, a plain one with nothing."""
    return (metric, "same") if metric in ORACLE_METRICS else (metric, "none")
