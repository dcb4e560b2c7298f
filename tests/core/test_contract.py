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


@pytest.mark.parametrize("shots", [2 ** 62, 2 ** 63 - 1, 2 ** 64, 2 ** 40 + 1])
def test_get_backend_refuses_shots_beyond_the_int64_safe_max(shots):
    """An overflowing shot count once passed a 1000-shot cap (4 rows charged as 0 shots)."""
    from qmu_hw import get_backend
    from qmu_hw.core.ledger import ShotBudget

    with pytest.raises(InvalidRequestError, match="at most"):
        get_backend("exact-shots", shots=shots, budget=ShotBudget(total_shots=1000))


def test_budget_holds_at_the_largest_accepted_shots():
    import numpy as np

    from qmu_hw import EstimateRequest, get_backend
    from qmu_hw.core.contract import MAX_SHOTS
    from qmu_hw.core.exceptions import BudgetExceededError
    from qmu_hw.core.ledger import ShotBudget

    be = get_backend("exact-shots", shots=MAX_SHOTS, budget=ShotBudget(total_shots=1000))
    c = be_circuit()
    with pytest.raises(BudgetExceededError, match="asks 1099511627776"):
        be.estimate(EstimateRequest(c, np.zeros((1, c.n_params)), shots=MAX_SHOTS, seed=0))
    # per-row shots whose int64 sum would wrap: refused before any cap arithmetic
    rows = np.full(4, MAX_SHOTS, dtype=np.int64)
    with pytest.raises(InvalidRequestError, match="more than"):
        be.estimate(EstimateRequest(c, np.zeros((4, c.n_params)), shots=rows, seed=0))
    assert be.ledger.total_shots() == 0


def be_circuit():
    return hqml(2, 1)


@pytest.mark.parametrize("seed", [-1, 2 ** 63, 1.5, True])
def test_seeds_must_be_int64_safe_non_negative(seed):
    from qmu_hw import get_backend

    with pytest.raises(InvalidRequestError, match="seed"):
        get_backend("exact-shots", seed=seed)


@pytest.mark.parametrize("kw", [{"shots": 2 ** 62}, {"seed": -3}, {"grad_shots": 0}])
def test_quantum_layer_checks_its_integers(kw):
    from qmu_hw import get_backend
    from qmu_hw.autograd.layer import QuantumLayer

    with pytest.raises(InvalidRequestError):
        QuantumLayer(be_circuit(), get_backend("exact-shots", shots=16), gradient="parameter-shift", **kw)


@pytest.mark.parametrize("total", [0, -1, 2 ** 63 - 1, 1.5])
def test_shot_budget_refuses_bad_caps(total):
    from qmu_hw.core.ledger import ShotBudget

    with pytest.raises(InvalidRequestError):
        ShotBudget(total_shots=total)
