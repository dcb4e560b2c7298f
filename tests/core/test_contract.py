import numpy as np
import pytest

from qmu_hw import (
    BudgetExceededError,
    EstimateRequest,
    EstimateResult,
    InvalidRequestError,
    PauliTerm,
    ProfileError,
    QmuHwError,
    ShotBudget,
    ShotLedger,
    get_backend,
)
from qmu_hw.circuits import hqml


@pytest.fixture
def circ():
    return hqml(3, 1)


def test_request_normalises_and_freezes(circ):
    r = EstimateRequest(circ, np.zeros((2, circ.n_params), dtype=np.float32))
    assert r.params.dtype == np.float64 and not r.params.flags.writeable
    assert [t.label for t in r.observables] == ["ZII", "IZI", "IIZ"]


@pytest.mark.parametrize(
    "params, match",
    [
        (np.zeros((2, 5)), r"shape \(B, P=\(12\)\).*got shape \(2, 5\)"),
        (np.zeros((2, 3, 12)), r"got shape \(2, 3, 12\)"),
        (np.zeros((0, 12)), "no rows"),
    ],
)
def test_request_rejects_bad_shapes(circ, params, match):
    with pytest.raises(InvalidRequestError, match=match):
        EstimateRequest(circ, params)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_request_rejects_non_finite(circ, bad):
    p = np.zeros((3, circ.n_params))
    p[1, 4] = bad
    with pytest.raises(InvalidRequestError, match=r"row 1, column 4"):
        EstimateRequest(circ, p)


@pytest.mark.parametrize("shots", [0, -5, 2.5, "100", True])
def test_request_rejects_bad_shots(circ, shots):
    with pytest.raises(InvalidRequestError, match="shots must be a positive integer"):
        EstimateRequest(circ, np.zeros((1, circ.n_params)), shots=shots)


def test_request_rejects_bad_observables(circ):
    with pytest.raises(InvalidRequestError, match="has 2 qubits, the circuit has 3"):
        EstimateRequest(circ, np.zeros((1, circ.n_params)), observables=["ZZ"])
    with pytest.raises(InvalidRequestError, match="only 'IXYZ'"):
        PauliTerm("ZQI")


def test_too_many_qubits_refused_before_running():
    b = get_backend("exact", max_qubits=4)
    c = hqml(5, 1)
    with pytest.raises(InvalidRequestError, match="at most 4 qubits.*has 5"):
        b.estimate(EstimateRequest(c, np.zeros((1, c.n_params))))
    assert len(b.ledger) == 0


def test_result_requires_fixed_metadata():
    with pytest.raises(InvalidRequestError, match="missing keys"):
        EstimateResult(np.zeros((1, 2)), np.zeros((1, 2)), None, {"backend": "x"})


def test_metadata_keys_present(circ):
    b = get_backend("exact")
    res = b.estimate(EstimateRequest(circ, np.zeros((2, circ.n_params)), phase="eval"))
    for k in ("backend", "profile", "profile_sha256", "stderr_method", "n_circuits", "job_ids",
              "wall_time_s", "seed", "cost_estimate"):
        assert k in res.metadata
    assert res.metadata["stderr_method"] == "exact" and res.metadata["n_circuits"] == 2
    assert np.all(res.stderr == 0)


def test_unknown_backend_lists_valid_names():
    with pytest.raises(ProfileError, match="unknown backend 'nope'.*exact"):
        get_backend("nope")
    with pytest.raises(QmuHwError, match="unknown option"):
        get_backend("exact", flux_capacitor=True)


def test_budget_refuses_before_charging(circ):
    ledger = ShotLedger()
    b = get_backend("exact-shots", ledger=ledger, budget=ShotBudget(total_shots=1000))
    p = np.zeros((2, circ.n_params))
    b.estimate(EstimateRequest(circ, p, shots=200, phase="train"))
    assert ledger.total_shots() == 400
    with pytest.raises(BudgetExceededError, match=r"cap 1000, spent 400, this request asks 800"):
        b.estimate(EstimateRequest(circ, p, shots=400, phase="train"))
    assert ledger.total_shots() == 400 and len(ledger) == 1


def test_per_phase_caps_cover_subphases(circ):
    ledger = ShotLedger()
    b = get_backend("exact-shots", ledger=ledger, budget=ShotBudget(per_phase={"unlearn": 300}))
    p = np.zeros((1, circ.n_params))
    b.estimate(EstimateRequest(circ, p, shots=200, phase="unlearn/scrub"))
    b.estimate(EstimateRequest(circ, p, shots=500, phase="train"))  # other phase: not capped
    with pytest.raises(BudgetExceededError, match="cap on 'unlearn' is 300"):
        b.estimate(EstimateRequest(circ, p, shots=200, phase="unlearn/ga"))
    assert ledger.by_phase()["unlearn/scrub"]["shots"] == 200
