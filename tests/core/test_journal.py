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


def _done_journal(tmp_path):
    j = JobJournal(tmp_path / "j.sqlite")
    j.begin("h1", "be", "sha", 2, 100, charged_shots=200, charged_cost=0.5)
    j.submitted("h1", ["arn:1"])
    j.done("h1", np.full((2, 1), 0.25), np.full((2, 1), 0.01), {"stderr_method": "sampled"})
    return j


def test_journal_stores_charge_and_checksum(tmp_path):
    import sqlite3

    e = _done_journal(tmp_path).get("h1")
    assert (e.charged_shots, e.charged_cost) == (200, 0.5)
    db = sqlite3.connect(tmp_path / "j.sqlite")
    blob, digest = db.execute("SELECT result, result_sha256 FROM jobs").fetchone()
    import hashlib

    assert hashlib.sha256(blob).hexdigest() == digest
    assert blob[:2] == b"PK"  # an npz archive, not a pickle


def test_tampered_journal_blob_is_refused(tmp_path):
    """Replacing the stored result with other numbers of the same shape is a JournalError naming
    the file and entry, never a replay."""
    import io
    import sqlite3

    from qmu_hw.core.journal import JournalError

    j = _done_journal(tmp_path)
    buf = io.BytesIO()
    np.savez(buf, values=np.full((2, 1), 0.999), stderr=np.full((2, 1), 0.01))
    db = sqlite3.connect(tmp_path / "j.sqlite")
    with db:
        db.execute("UPDATE jobs SET result = ? WHERE request_hash = 'h1'", (buf.getvalue(),))
    db.close()
    with pytest.raises(JournalError, match=r"j\.sqlite, entry h1.*checksum"):
        j.get("h1")
    assert [x.state for x in j.entries()] == ["done"]  # listing the journal still works


def test_journal_refuses_a_pickled_blob_even_with_a_matching_checksum(tmp_path):
    import hashlib
    import io
    import sqlite3

    from qmu_hw.core.journal import JournalError

    j = _done_journal(tmp_path)
    buf = io.BytesIO()
    np.savez(buf, values=np.array([{"x": 1}], dtype=object), stderr=np.zeros(1))
    blob = buf.getvalue()
    db = sqlite3.connect(tmp_path / "j.sqlite")
    with db:
        db.execute("UPDATE jobs SET result = ?, result_sha256 = ? WHERE request_hash = 'h1'",
                   (blob, hashlib.sha256(blob).hexdigest()))
    db.close()
    with pytest.raises(JournalError, match="not a plain array file"):
        j.get("h1")
