import warnings

import numpy as np
import pytest

from qmu_hw import EstimateRequest, MissingCredentialsError, get_backend
from qmu_hw.circuits import hqml
from qmu_hw.core.journal import JobJournal
from qmu_hw.testing import BackendConformance

pytestmark = [pytest.mark.ibm, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


class TestIBMLocalConformance(BackendConformance):
    calibration_seeds = 5

    @pytest.fixture
    def make_backend(self):
        return lambda **kw: get_backend("ibm-local-fake-manila", **kw)


@pytest.fixture
def req():
    c = hqml(3, 1)
    return EstimateRequest(c, np.random.default_rng(0).uniform(-3, 3, (4, c.n_params)), shots=4000, seed=7)


def test_values_match_calibrated_aer_within_noise(req):
    ibm = get_backend("ibm-local-fake-manila").estimate(req)
    aer = get_backend("aer-fake-manila").estimate(EstimateRequest(req.circuit, req.params))
    # The SDK may round shots; the result records what actually ran.
    assert ibm.metadata["stderr_method"] == "provider" and ibm.shots == ibm.metadata["raw"]["shots_run"] >= 4000
    # Different transpiled layouts on the same calibrated device: close, not identical.
    assert np.abs(ibm.values - aer.values).max() < 0.15


def test_isa_circuit_uses_only_target_instructions(req):
    b = get_backend("ibm-local-fake-manila")
    isa, _, obs = b.compiled(req.circuit, tuple(t.label for t in req.observables))
    target = b.device.target
    for inst in isa.data:
        qargs = tuple(isa.find_bit(q).index for q in inst.qubits)
        assert target.instruction_supported(inst.operation.name, qargs), inst.operation.name
    assert all(o.num_qubits == b.device.num_qubits for o in obs)


def test_transpiles_once_and_one_job_per_request(req):
    b = get_backend("ibm-local-fake-manila")
    for seed in (1, 2, 3):
        b.estimate(EstimateRequest(req.circuit, req.params, shots=256, seed=seed))
    assert b.n_transpilations == 1
    assert [e.submissions for e in b.ledger.entries] == [1, 1, 1]


@pytest.mark.parametrize("mode", ["batch", "session"])
def test_batch_and_session_modes(req, mode):
    from qiskit_ibm_runtime import Batch, Session

    b = get_backend("ibm-local-fake-manila", mode=mode)
    modes = []
    make = b._estimator

    def spy(*args, **kw):  # the EstimatorV2 each request runs on
        est = make(*args, **kw)
        modes.append(est.mode)
        return est

    b._estimator = spy
    with b.execution_context():
        ctx = b._context
        assert isinstance(ctx, Batch if mode == "batch" else Session)
        r1 = b.estimate(req)
        r2 = b.estimate(EstimateRequest(req.circuit, req.params, shots=500, seed=8))
    assert b._context is None
    # Both requests ran inside the one Batch/Session, not on the bare device.
    assert len(modes) == 2 and all(m is ctx for m in modes), modes
    assert r1.values.shape == r2.values.shape == (4, 3)
    exact = get_backend("aer-fake-manila").estimate(EstimateRequest(req.circuit, req.params)).values
    assert np.abs(r1.values - exact).max() < 0.15


def test_journal_replays_without_submitting(tmp_path, req):
    b = get_backend("ibm-local-fake-manila")
    b.attach_journal(JobJournal(tmp_path / "journal.sqlite"))
    first = b.estimate(req)
    again = get_backend("ibm-local-fake-manila")
    again.attach_journal(JobJournal(tmp_path / "journal.sqlite"))
    second = again.estimate(req)
    assert np.array_equal(first.values, second.values)
    assert second.metadata["raw"].get("from_journal") is True
    # a replay keeps the original charge on record, flagged so that caps do not count it again
    e = again.ledger.entries[0]
    assert e.replayed and e.shots == b.ledger.entries[0].shots > 0 and again.ledger.paid_shots() == 0
    (entry,) = JobJournal(tmp_path / "journal.sqlite").entries()
    assert entry.state == "done" and entry.job_ids == first.metadata["job_ids"]


def test_ledger_charges_the_shots_that_ran_with_per_row_shots():
    """EstimatorV2 runs every row of a PUB at one shot count (the largest row's): the ledger
    and the budget must charge that, not the sum of the requested per-row shots."""
    c = hqml(3, 1)
    params = np.random.default_rng(0).uniform(-3, 3, (4, c.n_params))
    row_shots = np.array([100, 200, 300, 4000])
    b = get_backend("ibm-local-fake-manila")
    r = b.estimate(EstimateRequest(c, params, shots=row_shots, seed=3))
    (entry,) = b.ledger.entries
    ran = int(r.metadata["raw"]["shots_run"])
    assert ran >= 4000  # local testing mode rounds 4000 up to 4001
    assert entry.shots == ran * 4  # one measurement group (Z on every qubit), 4 rows at `ran` each
    assert entry.shots != int(row_shots.sum())
    # the budget is checked before submission on the same rule (largest row x rows x groups)
    assert b.shots_charged(EstimateRequest(c, params, shots=row_shots)) == 4000 * 4


def test_missing_account_fails_fast_and_clearly():
    with pytest.raises(MissingCredentialsError, match="no usable IBM Quantum account"):
        get_backend("ibm-brisbane")


def test_token_never_appears_in_errors(monkeypatch):
    secret = "qmu-test-secret-token-3b9f"
    monkeypatch.setenv("QISKIT_IBM_TOKEN", secret)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(MissingCredentialsError) as err:
            get_backend("ibm-brisbane")
    assert secret not in str(err.value) and secret not in repr(err.value.__cause__)
