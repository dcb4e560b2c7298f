"""Per-example noise effects: the same forget example on exact and on a noisy backend.

Input: per-example rows (the ``per_example.csv`` layout, :data:`PER_EXAMPLE_COLUMNS`), one
per (scenario, method, backend, shots, seed, example_id) with that example's ε̂. Pairing
unit: (seed, example_id) — the same data split and forget example on both backend arms of
one (scenario, method). Two estimands per noisy arm, as the seed-level noise effects:

* ``model``: Δε_x = ε_x(noisy) − ε_x(exact);
* ``unlearning``: the difference in differences against ``identity``,
  (ε_x(method) − ε_x(identity))_noisy − (ε_x(method) − ε_x(identity))_exact — how noise
  changes what the method achieves over doing nothing, on the same example.

Per (scenario, method, backend, shots, estimand): the median Δ over examples with its
order-statistic 95 % CI and the exact sign test (:mod:`qmu_hw.metrics.sign_test`). Rows
follow ``noise_effect.csv`` (``unit = "example"``, ``metric = "epsilon"``, ``reference =
"same"`` — ε is measured against the same-noise retrained population); ``p_adj`` is left
NaN for the study's multiplicity step. Caveat stated with the rows: the examples share
one population of models per arm, so the test is conditional on those populations; the
seed-level rows carry the model-to-model variation.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from ..core.exceptions import InvalidRequestError
from ..metrics.sign_test import median_test

PER_EXAMPLE_COLUMNS = ("scenario", "method", "backend", "shots", "seed", "example_id", "epsilon", "bucket",
                       "bucket_score", "n_models")
EFFECT_KEYS = ("scenario", "method", "backend", "shots", "metric", "reference", "unit", "estimand", "n_units",
               "exact_mean", "mean", "delta", "ci_low", "ci_high", "p_value", "p_adj", "min_p", "statistic")
EXACT_ARM = ("exact", None)
ROUNDING = 1e-12


def _arm(row: dict) -> tuple[str, int | None]:
    shots = row.get("shots")
    shots = None if shots is None or (isinstance(shots, float) and math.isnan(shots)) or shots == "" else int(shots)
    return str(row["backend"]), shots


def per_example_table(rows: list[dict]) -> dict[tuple, dict[tuple, float]]:
    """{(scenario, method, backend, shots): {(seed, example_id): ε}}; a repeated unit is an error."""
    out: dict[tuple, dict[tuple, float]] = defaultdict(dict)
    for r in rows:
        missing = [k for k in ("scenario", "method", "backend", "seed", "example_id", "epsilon") if k not in r]
        if missing:
            raise InvalidRequestError(f"per-example row lacks {missing}; expected the columns {PER_EXAMPLE_COLUMNS}")
        key = (str(r["scenario"]), str(r["method"]), *_arm(r))
        unit = (int(r["seed"]), int(r["example_id"]))
        if unit in out[key]:
            raise InvalidRequestError(f"example {unit[1]} of seed {unit[0]} appears twice for {key}")
        out[key][unit] = float(r["epsilon"])
    return dict(out)


def pair_by_example(exact: dict[tuple, float], noisy: dict[tuple, float], what: str = "") -> tuple[list, np.ndarray,
                                                                                                      np.ndarray]:
    """Align two arms by (seed, example_id): ``(units, ε_exact, ε_noisy)`` in sorted unit order.
    The two arms must hold the SAME units: different ids mean different forget sets, and
    pairing them would compare different examples."""
    a, b = set(exact), set(noisy)
    if a != b:
        only_a, only_b = sorted(a - b)[:3], sorted(b - a)[:3]
        raise InvalidRequestError(f"cannot pair {what or 'the two arms'} by example: (seed, example_id) only on "
                                  f"exact {only_a}, only on the noisy arm {only_b}; both arms must measure the same "
                                  "forget examples")
    units = sorted(a)
    return units, np.array([exact[u] for u in units]), np.array([noisy[u] for u in units])


def _row(scenario, method, arm, estimand, e_exact, e_noisy, d) -> dict:
    # Differences of differences of equal numbers are not exactly 0 in floating point; the
    # sign test would count those as signs. Below ROUNDING (relative) they are ties.
    scale = max(1.0, float(np.max(np.abs(np.concatenate([e_exact, e_noisy])))))
    d = np.where(np.abs(d) <= ROUNDING * scale, 0.0, d)
    t = median_test(d)
    return {"scenario": scenario, "method": method, "backend": arm[0], "shots": arm[1], "metric": "epsilon",
            "reference": "same", "unit": "example", "estimand": estimand, "n_units": t.n,
            "exact_mean": float(np.median(e_exact)), "mean": float(np.median(e_noisy)), "delta": t.median,
            "ci_low": t.ci_low, "ci_high": t.ci_high, "p_value": t.p_value, "p_adj": float("nan"),
            "min_p": t.min_p, "statistic": "median"}


def example_noise_effects(rows: list[dict], *, identity: str = "identity",
                          exact_arm: tuple[str, int | None] = EXACT_ARM) -> list[dict]:
    """Noise-effect rows (one dict each, keys :data:`EFFECT_KEYS`) from per-example rows.
    ``exact_mean``/``mean`` hold the MEDIAN ε on the exact/noisy arm and ``delta`` the median
    of the per-example differences (``statistic = "median"``)."""
    table = per_example_table(rows)
    out = []
    for (scenario, method, backend, shots), noisy in sorted(table.items(), key=lambda kv: repr(kv[0])):
        arm = (backend, shots)
        if arm == exact_arm:
            continue
        exact = table.get((scenario, method, *exact_arm))
        if exact is None:
            continue  # no exact arm for this method: nothing to pair with
        what = f"{method} on {scenario}, {backend}@{'exact' if shots is None else shots} vs exact"
        units, ex, no = pair_by_example(exact, noisy, what)
        out.append(_row(scenario, method, arm, "model", ex, no, no - ex))
        id_ex, id_no = table.get((scenario, identity, *exact_arm)), table.get((scenario, identity, *arm))
        if method != identity and id_ex is not None and id_no is not None:
            _, iex, ino = pair_by_example(id_ex, id_no, f"{identity} on {scenario}")
            if sorted(id_ex) != units:
                raise InvalidRequestError(f"{method} and {identity} on {scenario} measured different forget examples")
            out.append(_row(scenario, method, arm, "unlearning", ex - iex, no - ino, (no - ino) - (ex - iex)))
    return out


def per_example_rows(scenario: str, method: str, backend: str, shots: int | None, seed: int, example_ids,
                     epsilons, n_models: int) -> list[dict]:
    """The ``per_example.csv`` rows of one population pair."""
    from ..metrics.per_example import bucket_index, bucket_scores

    ids = np.asarray(example_ids).reshape(-1)
    eps = np.asarray(epsilons, dtype=np.float64).reshape(-1)
    if ids.size != eps.size:
        raise InvalidRequestError(f"expected one epsilon per example id, got {eps.size} for {ids.size} ids")
    b, h = bucket_index(eps), bucket_scores(eps)
    return [{"scenario": scenario, "method": method, "backend": backend, "shots": shots, "seed": int(seed),
             "example_id": int(i), "epsilon": float(e), "bucket": int(bi), "bucket_score": float(hi),
             "n_models": int(n_models)} for i, e, bi, hi in zip(ids, eps, b, h, strict=True)]
