import numpy as np
import pytest

from qmu_hw.core.cloud import retry
from qmu_hw.core.journal import JobJournal


def test_journal_lifecycle(tmp_path):
    j = JobJournal(tmp_path / "j.sqlite")
    j.begin("h1", "be", "sha", 4, 100)
    assert j.get("h1").state == "pending"
    j.begin("h1", "be", "sha", 4, 100)  # idempotent: a rerun does not duplicate
    j.submitted("h1", ["arn:1", "arn:2"])
    e = j.get("h1")
    assert e.state == "submitted" and e.job_ids == ["arn:1", "arn:2"]
    j.done("h1", np.ones((4, 2)), np.zeros((4, 2)), {"stderr_method": "sampled"})
    e = JobJournal(tmp_path / "j.sqlite").get("h1")  # survives reopening
    assert e.state == "done" and np.array_equal(e.values, np.ones((4, 2)))
    j.begin("h2", "be", "sha", 1, None)
    j.failed("h2", "ValidationException: bad circuit")
    assert [x.state for x in j.entries()] == ["done", "failed"]


def test_retry_backs_off_on_transient_and_stops_on_permanent():
    sleeps, calls = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("throttled")
        return "ok"

    assert retry(flaky, lambda e: isinstance(e, ConnectionError), sleep=sleeps.append, base=1, cap=30) == "ok"
    assert sleeps == [1, 2]

    def permanent():
        raise ValueError("invalid circuit")

    sleeps.clear()
    with pytest.raises(ValueError):
        retry(permanent, lambda e: isinstance(e, ConnectionError), sleep=sleeps.append)
    assert sleeps == []

    def always():
        raise TimeoutError("slow")

    with pytest.raises(TimeoutError):
        retry(always, lambda e: True, attempts=7, base=1, cap=8, sleep=sleeps.append)
    assert sleeps == [1, 2, 4, 8, 8, 8]  # capped
