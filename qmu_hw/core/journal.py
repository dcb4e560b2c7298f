"""The job journal: every cloud submission is written down BEFORE it is sent.

States: ``pending`` (about to be submitted), ``submitted`` (the provider gave a job id /
task ARN), ``done`` (result stored), ``failed`` (permanent error). A rerun after a crash
returns ``done`` results without submitting and retrieves ``submitted`` jobs by id instead
of paying for them again. Secrets never enter the journal: rows hold hashes, ids, shapes,
states and result arrays only.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .exceptions import InvalidRequestError

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    request_hash TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    profile_sha256 TEXT NOT NULL,
    rows INTEGER NOT NULL,
    shots INTEGER,
    state TEXT NOT NULL,
    job_ids TEXT,
    result BLOB,
    result_sha256 TEXT,
    metadata TEXT,
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
"""
STATES = ("pending", "submitted", "done", "failed")
# Columns added after the first release; an older journal gets them on open.
_ADDED_COLUMNS = {"result_sha256": "TEXT", "charged_shots": "INTEGER", "charged_cost": "REAL", "phase": "TEXT"}


class JournalError(InvalidRequestError):
    """A journal entry cannot be trusted (its stored result does not match its checksum, or
    is not a plain array file); it is never replayed."""


class DatabaseFileError(InvalidRequestError):
    """A study's SQLite file (results store or job journal) is corrupted or cannot be written;
    the message names the file and what to do."""


_ADVICE = {
    "results": "move it aside (e.g. rename it to {name}.corrupt) and rerun: the cells it held are run again",
    "journal": ("move it aside (e.g. rename it to {name}.corrupt) and rerun; jobs it recorded as submitted "
                "cannot be retrieved without it, so check the provider's job list first to avoid paying twice"),
}


def database_error(path: Path, what: str, exc: sqlite3.DatabaseError) -> DatabaseFileError:
    """A qmu-hw error for a SQLite failure on ``path`` (``what``: ``results`` | ``journal``)."""
    text = str(exc)
    if "disk is full" in text:
        return DatabaseFileError(f"no space left on the device while writing {path}; free space and rerun "
                                 "(finished work is kept)")
    if isinstance(exc, sqlite3.OperationalError) and "malformed" not in text and "not a database" not in text:
        return DatabaseFileError(f"{what} database {path}: {text}")
    advice = _ADVICE.get(what, _ADVICE["results"]).format(name=path.name)
    return DatabaseFileError(f"{what} database {path} is corrupted ({text}); {advice}")


@contextlib.contextmanager
def sqlite_connection(path: Path, what: str):
    """One connection, one transaction; SQLite failures become :class:`DatabaseFileError`."""
    try:
        db = sqlite3.connect(path, timeout=30)
    except sqlite3.DatabaseError as exc:
        raise database_error(path, what, exc) from None
    db.row_factory = sqlite3.Row
    try:
        with db:
            yield db
    except sqlite3.DatabaseError as exc:
        raise database_error(path, what, exc) from None
    finally:
        db.close()


@dataclass(frozen=True)
class JournalEntry:
    request_hash: str
    backend: str
    profile_sha256: str
    rows: int
    shots: int | None
    state: str
    job_ids: list[str]
    metadata: dict
    error: str | None
    created: float
    updated: float
    values: np.ndarray | None = None
    stderr: np.ndarray | None = None
    charged_shots: int | None = None  # what the submission was charged (shots over rows and groups)
    charged_cost: float | None = None
    phase: str | None = None


class JobJournal:
    """SQLite journal (one file, usually ``<output>/journal.sqlite``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)
            have = {r["name"] for r in db.execute("PRAGMA table_info(jobs)")}
            for col, kind in _ADDED_COLUMNS.items():
                if col not in have:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {col} {kind}")

    def _db(self):
        return sqlite_connection(self.path, "journal")

    def begin(self, request_hash: str, backend: str, profile_sha256: str, rows: int, shots: int | None,
              charged_shots: int | None = None, charged_cost: float | None = None, phase: str | None = None) -> None:
        """Record the intent to submit (before anything is sent), with what it will be charged
        (so a run killed while waiting still leaves its spending on record)."""
        now = time.time()
        with self._db() as db:
            db.execute(
                "INSERT OR IGNORE INTO jobs (request_hash, backend, profile_sha256, rows, shots, state, job_ids,"
                " created, updated, charged_shots, charged_cost, phase)"
                " VALUES (?, ?, ?, ?, ?, 'pending', '[]', ?, ?, ?, ?, ?)",
                (request_hash, backend, profile_sha256, rows, shots, now, now, charged_shots, charged_cost, phase),
            )

    def restart(self, request_hash: str) -> None:
        """A ``failed`` entry goes back to ``pending`` with no job ids (a rerun tries again)."""
        with self._db() as db:
            now = time.time()  # a new ``created`` marks a new attempt (fresh idempotency tokens)
            db.execute("UPDATE jobs SET state = 'pending', job_ids = '[]', error = NULL, created = ?, updated = ?"
                       " WHERE request_hash = ? AND state = 'failed'", (now, now, request_hash))

    def add_job(self, request_hash: str, job_id: str) -> None:
        """Append one job id / task ARN the moment the provider returns it.

        A request that becomes many tasks (Braket) is journaled task by task, so a crash
        between two creations loses nothing that was paid for.
        """
        with self._db() as db:
            row = db.execute("SELECT job_ids FROM jobs WHERE request_hash = ?", (request_hash,)).fetchone()
            if row is None:
                raise KeyError(f"journal has no entry {request_hash[:12]}…; call begin() first")
            ids = json.loads(row["job_ids"] or "[]") + [job_id]
            db.execute("UPDATE jobs SET state = 'submitted', job_ids = ?, updated = ? WHERE request_hash = ?",
                       (json.dumps(ids), time.time(), request_hash))

    def submitted(self, request_hash: str, job_ids: list[str]) -> None:
        with self._db() as db:
            db.execute("UPDATE jobs SET state = 'submitted', job_ids = ?, updated = ? WHERE request_hash = ?",
                       (json.dumps(list(job_ids)), time.time(), request_hash))

    def done(self, request_hash: str, values: np.ndarray, stderr: np.ndarray, metadata: dict) -> None:
        buf = io.BytesIO()
        # Plain float arrays (never object arrays, so never a pickle), with the blob's sha256
        # next to it: a replay checks it before trusting the values.
        np.savez(buf, values=np.asarray(values, dtype=np.float64), stderr=np.asarray(stderr, dtype=np.float64))
        blob = buf.getvalue()
        with self._db() as db:
            db.execute("UPDATE jobs SET state = 'done', result = ?, result_sha256 = ?, metadata = ?, error = NULL,"
                       " updated = ? WHERE request_hash = ?",
                       (blob, hashlib.sha256(blob).hexdigest(), json.dumps(metadata, default=str), time.time(),
                        request_hash))

    def failed(self, request_hash: str, error: str) -> None:
        with self._db() as db:
            db.execute("UPDATE jobs SET state = 'failed', error = ?, updated = ? WHERE request_hash = ?",
                       (error[:2000], time.time(), request_hash))

    def get(self, request_hash: str) -> JournalEntry | None:
        with self._db() as db:
            r = db.execute("SELECT * FROM jobs WHERE request_hash = ?", (request_hash,)).fetchone()
        return None if r is None else _entry(r, path=self.path)

    def entries(self) -> list[JournalEntry]:
        with self._db() as db:
            return [_entry(r, load=False) for r in db.execute("SELECT * FROM jobs ORDER BY created")]


def _load_result(r: sqlite3.Row, path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The stored arrays, after checking the blob against its sha256 (JournalError if not)."""
    blob, want = r["result"], r["result_sha256"]
    where = f"journal {path}, entry {r['request_hash'][:16]}"
    if want is None:
        raise JournalError(f"{where}: the stored result has no checksum (written by an older qmu-hw or edited); "
                           "it is not replayed. Move the journal aside to run the request again.")
    got = hashlib.sha256(blob).hexdigest()
    if got != want:
        raise JournalError(f"{where}: the stored result does not match its checksum (sha256 {got[:16]}… != "
                           f"{want[:16]}…); the file was changed or damaged, so it is not replayed. Move the "
                           "journal aside (the request is then submitted and paid for again) or restore it.")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            values, stderr = z["values"], z["stderr"]
    except (ValueError, KeyError, OSError) as exc:
        raise JournalError(f"{where}: the stored result is not a plain array file ({exc}); not replayed") from None
    if values.dtype != np.float64 or stderr.dtype != np.float64 or values.shape != stderr.shape:
        raise JournalError(f"{where}: the stored result has dtype/shape {values.dtype}{values.shape} and "
                           f"{stderr.dtype}{stderr.shape}; expected two equal float64 arrays; not replayed")
    return values, stderr


def _entry(r: sqlite3.Row, load: bool = True, path: Path | None = None) -> JournalEntry:
    values = stderr = None
    if load and r["result"] is not None:
        values, stderr = _load_result(r, path)
    keys = r.keys()
    return JournalEntry(r["request_hash"], r["backend"], r["profile_sha256"], r["rows"], r["shots"], r["state"],
                        json.loads(r["job_ids"] or "[]"), json.loads(r["metadata"] or "{}"), r["error"],
                        r["created"], r["updated"], values, stderr,
                        r["charged_shots"] if "charged_shots" in keys else None,
                        r["charged_cost"] if "charged_cost" in keys else None,
                        r["phase"] if "phase" in keys else None)
