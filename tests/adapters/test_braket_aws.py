"""The Braket AWS path end to end: real SDK and boto3 clients, the service behind Stubbers."""

import numpy as np
import pytest

from qmu_hw import (
    BackendUnavailableError,
    EstimateRequest,
    InvalidRequestError,
    MissingCredentialsError,
    ResultPendingError,
    TaskFailedError,
    get_backend,
)
from qmu_hw.adapters import braket_aws
from qmu_hw.circuits import hqml
from qmu_hw.core.journal import JobJournal
from qmu_hw.testing import BackendConformance
from tests.braket_service import DM1, SV1, FakeBraketService, profile_toml

pytestmark = [pytest.mark.braket, pytest.mark.filterwarnings("ignore:You are running a noise-free")]


@pytest.fixture
def service(tmp_path):
    svc = FakeBraketService(tmp_path / "aws.json")
    braket_aws.set_client_factory(svc.client)
    yield svc
    braket_aws.set_client_factory(None)


def profile(tmp_path, name, arn, noise="", **options):
    path = tmp_path / f"{name}.toml"
    path.write_text(profile_toml(name, arn, **options) + noise)
    return str(path)


def exact(c, p, obs):
    return get_backend("exact").estimate(EstimateRequest(c, p, obs)).values


class TestSV1ProgramSets(BackendConformance):
    calibration_seeds = 8

    @pytest.fixture
    def make_backend(self, service, tmp_path):
        path = profile(tmp_path, "sv1", SV1)
        return lambda **kw: get_backend(path, **kw)


class TestDM1TaskPerRow(BackendConformance):
    calibration_seeds = 4
    n_qubits = 2
    observables = ("ZI", "IZ", "XY")

    @pytest.fixture
    def make_backend(self, service, tmp_path):
        path = profile(tmp_path, "dm1", DM1, noise='[noise]\nkind = "depolarizing"\np1 = 0.01\np2 = 0.1\nreadout = 0.02\n')
        return lambda **kw: get_backend(path, **kw)

    def test_ledger_records_one_submission(self, make_backend, circuit, params):
        # Without program sets Braket takes one circuit per task: 4 rows are 4 tasks.
        b = make_backend()
        b.estimate(EstimateRequest(circuit, params, shots=64, phase="eval"))
        (entry,) = b.ledger.entries
        assert entry.submissions == 4 and entry.shots == 4 * 64


def test_exact_on_simulators_matches_engines(service, tmp_path):
    c = hqml(3, 2)
    p = np.random.default_rng(1).uniform(-3, 3, (3, c.n_params))
    obs = ["ZII", "IZI", "XXY"]
    sv1 = get_backend(profile(tmp_path, "sv1", SV1))
    np.testing.assert_allclose(sv1.estimate(EstimateRequest(c, p, obs)).values, exact(c, p, obs), atol=1e-10)
    noise = '[noise]\nkind = "depolarizing"\np1 = 0.01\np2 = 0.1\nreadout = 0.02\n'
    dm1 = get_backend(profile(tmp_path, "dm1", DM1, noise=noise))
    dm = get_backend("dm-depol-0.01").estimate(EstimateRequest(c, p, obs)).values
    np.testing.assert_allclose(dm1.estimate(EstimateRequest(c, p, obs)).values, dm, atol=1e-6)
    # exact = one task per (group, row): 2 groups × 3 rows on each device
    assert service.state()["created"] == 12


def test_program_sets_pack_groups_and_rows_at_device_limits(service, tmp_path):
    c = hqml(2, 1)
    p = np.random.default_rng(2).uniform(-3, 3, (5, c.n_params))
    obs = ["ZI", "IZ", "XX"]  # two measurement groups → 10 executables
    limited = tmp_path / "lim.toml"
    limited.write_text(profile_toml("lim", SV1) + "[limits]\nmax_circuits_per_job = 4\n")
    b = get_backend(str(limited))
    req = EstimateRequest(c, p, obs, shots=3000)
    assert [len(s.executables) for s in b.plan(req)] == [4, 4, 2]
    r = b.estimate(req)
    assert service.state()["created"] == 3 and b.ledger.entries[0].submissions == 3
    z = (r.values - exact(c, p, obs)) / r.stderr
    assert np.all(np.abs(z) < 5)
    # the SDK Tracker saw the three tasks and all their shots
    # program-set results carry no duration: the 3-s minimum per task is what gets billed
    assert r.metadata["raw"]["tracker"] == {"tasks": 3, "shots": 30000, "billed_seconds": 9.0}


def test_tracker_figures_replace_the_estimate(service, tmp_path):
    b = get_backend(profile(tmp_path, "dm1", DM1))
    c = hqml(2, 1)
    p = np.zeros((3, c.n_params))
    req = EstimateRequest(c, p, shots=100)
    estimate = b.cost_estimate(3, b.shots_charged(req), b.submissions_for(req))
    assert estimate == pytest.approx(3 * 3.0 * 0.00125)  # 3 tasks, 3 s minimum each
    b.estimate(req)
    entry = b.ledger.entries[0]
    # the service reports 40 ms per task; Braket bills at least 3 s → 9 s in all
    assert entry.qpu_seconds == pytest.approx(9.0) and entry.cost == pytest.approx(9.0 * 0.00125)


def test_throttling_is_retried_with_backoff(tmp_path):
    svc = FakeBraketService(tmp_path / "aws.json", script={"throttle_creates": 2})
    braket_aws.set_client_factory(svc.client)
    try:
        b = get_backend(profile(tmp_path, "sv1", SV1))
        sleeps = []
        b.retry_sleep = sleeps.append
        c = hqml(2, 1)
        p = np.zeros((2, c.n_params))
        r = b.estimate(EstimateRequest(c, p, shots=200))
    finally:
        braket_aws.set_client_factory(None)
    assert sleeps == [1.0, 2.0] and svc.calls("CreateQuantumTask") == 3 and svc.state()["created"] == 1
    assert np.allclose(r.values, 1.0)


@pytest.mark.parametrize(("script", "state"), [({"fail_tasks": [2]}, "FAILED"), ({"cancel_tasks": [1]}, "CANCELLED")])
def test_failed_and_cancelled_tasks_stop_with_reason(tmp_path, script, state):
    svc = FakeBraketService(tmp_path / "aws.json", script=script)
    braket_aws.set_client_factory(svc.client)
    try:
        b = get_backend(profile(tmp_path, "dm1", DM1))
        j = JobJournal(tmp_path / "journal.sqlite")
        b.attach_journal(j)
        c = hqml(2, 1)
        with pytest.raises(TaskFailedError, match=f"ended {state}"):
            b.estimate(EstimateRequest(c, np.zeros((2, c.n_params)), shots=100))
    finally:
        braket_aws.set_client_factory(None)
    (entry,) = j.entries()
    assert entry.state == "failed" and state in entry.error and len(entry.job_ids) == 2


def test_permanent_rejection_is_not_retried(tmp_path):
    svc = FakeBraketService(tmp_path / "aws.json", script={"reject_creates": "ValidationException"})
    braket_aws.set_client_factory(svc.client)
    try:
        b = get_backend(profile(tmp_path, "sv1", SV1))
        b.retry_sleep = lambda s: pytest.fail("a permanent error must not be retried")
        c = hqml(2, 1)
        j = JobJournal(tmp_path / "journal.sqlite")
        b.attach_journal(j)
        with pytest.raises(TaskFailedError, match="refused the request \\(ValidationException: Invalid OpenQASM"):
            b.estimate(EstimateRequest(c, np.zeros((1, c.n_params)), shots=10))
    finally:
        braket_aws.set_client_factory(None)
    assert svc.calls("CreateQuantumTask") == 1
    (entry,) = j.entries()
    assert entry.state == "failed" and entry.job_ids == [] and "ValidationException" in entry.error


def test_pending_result_is_retrieved_by_arn_on_rerun(tmp_path):
    c = hqml(2, 1)
    p = np.random.default_rng(5).uniform(-3, 3, (3, c.n_params))
    req = EstimateRequest(c, p, shots=None)
    j = JobJournal(tmp_path / "journal.sqlite")
    slow = FakeBraketService(tmp_path / "aws.json", polls_before_done=10**6)
    braket_aws.set_client_factory(slow.client)
    try:
        b = get_backend(profile(tmp_path, "dm1", DM1, poll_timeout_s=0.05))
        b.attach_journal(j)
        with pytest.raises(ResultPendingError, match="rerun the study to retrieve it"):
            b.estimate(req)
        (entry,) = j.entries()
        assert entry.state == "submitted" and len(entry.job_ids) == 3
        created = slow.state()["created"]
        # The device finishes; a new process (new backend, same journal) picks the ARNs up.
        ready = FakeBraketService(tmp_path / "aws.json", polls_before_done=0)
        braket_aws.set_client_factory(ready.client)
        b2 = get_backend(profile(tmp_path, "dm1", DM1))
        b2.attach_journal(j)
        r = b2.estimate(req)
        assert ready.state()["created"] == created == 3  # nothing resubmitted
        np.testing.assert_allclose(r.values, exact(c, p, None), atol=1e-10)
        assert r.metadata["raw"]["retrieved_from_journal"] == 3 and b2.ledger.entries[0].replayed
        assert b2.ledger.paid_shots() == 0  # paid by the first run (its charge is kept on record, flagged)
        # A third run is served from the journal alone: no call reaches the service.
        before = ready.state()["calls"]
        b3 = get_backend(profile(tmp_path, "dm1", DM1))
        b3.attach_journal(j)
        np.testing.assert_array_equal(b3.estimate(req).values, r.values)
        assert {k: v for k, v in ready.state()["calls"].items() if k != "GetDevice"} == \
            {k: v for k, v in before.items() if k != "GetDevice"}
    finally:
        braket_aws.set_client_factory(None)


def test_same_token_returns_the_same_task(service, tmp_path):
    b = get_backend(profile(tmp_path, "sv1", SV1))
    c = hqml(2, 1)
    program, shots, inputs = b._program(b.plan(EstimateRequest(c, np.zeros((1, c.n_params)), shots=10))[0],
                                        EstimateRequest(c, np.zeros((1, c.n_params)), shots=10),
                                        np.zeros((1, c.n_slots)), [("ZZ", [0, 1])])
    a1 = b.aws.create(program, shots, inputs, "request-key:attempt:0")
    a2 = b.aws.create(program, shots, inputs, "request-key:attempt:0")
    a3 = b.aws.create(program, shots, inputs, "request-key:attempt:1")
    assert a1 == a2 != a3 and service.state()["created"] == 2


def test_device_checks(service, tmp_path):
    with pytest.raises(BackendUnavailableError, match="not found"):
        get_backend(profile(tmp_path, "nope", "arn:aws:braket:::device/quantum-simulator/amazon/nope"))
    with pytest.raises(InvalidRequestError, match="s3_bucket"):
        p = tmp_path / "nobucket.toml"
        p.write_text(profile_toml("nb", SV1).replace('s3_bucket = "amazon-braket-qmu-hw-tests"\n', ""))
        get_backend(str(p))
    with pytest.raises(InvalidRequestError, match="does not accept program sets"):
        get_backend(profile(tmp_path, "dm1ps", DM1, program_sets=True))
    noise = '[noise]\nkind = "depolarizing"\np1 = 0.01\n'
    with pytest.raises(Exception, match="cannot simulate noise"):
        get_backend(profile(tmp_path, "sv1noise", SV1, noise=noise))
    b = get_backend(profile(tmp_path, "sv1", SV1))
    assert b.capabilities.max_circuits_per_job == 100 and b.capabilities.exact


def test_missing_aws_credentials_fail_fast(tmp_path, monkeypatch):
    braket_aws.set_client_factory(None)
    secret = "qmu-aws-secret-never-printed"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)  # half a key pair is no credential
    with pytest.raises(MissingCredentialsError, match="no AWS credentials found") as info:
        get_backend("braket-sv1")
    assert secret not in str(info.value)
    with pytest.raises(MissingCredentialsError, match="ProfileNotFound"):
        get_backend("braket-sv1", aws_profile="no-such-profile")


def test_qpu_by_regional_arn(service, tmp_path):
    """The shipped Garnet profile: region from the ARN, sampling only, billed per task and shot."""
    from qmu_hw import UnsupportedFeatureError
    from tests.braket_service import BUCKET

    b = get_backend("braket-iqm-garnet", s3_bucket=BUCKET, poll_interval_s=0.0)
    assert b.aws.is_qpu and not b.capabilities.exact and b.program_sets
    assert b.aws.session.region == "eu-north-1"
    c = hqml(2, 1)
    p = np.random.default_rng(4).uniform(-3, 3, (4, c.n_params))
    with pytest.raises(UnsupportedFeatureError, match="cannot compute exact"):
        b.estimate(EstimateRequest(c, p))
    r = b.estimate(EstimateRequest(c, p, ["ZI", "IZ"], shots=2000))
    assert np.all(np.abs((r.values - exact(c, p, ["ZI", "IZ"])) / r.stderr) < 5)
    entry = b.ledger.entries[0]
    assert entry.submissions == 1 and entry.qpu_seconds == 0.0
    assert entry.cost == pytest.approx(0.30 + 0.00145 * 8000)  # one program-set task, 4 rows × 2000 shots
    with pytest.raises(InvalidRequestError, match="differs from the device's region"):
        get_backend("braket-iqm-garnet", s3_bucket=BUCKET, region="us-east-1")
