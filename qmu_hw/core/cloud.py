"""Cloud submission discipline shared by the IBM and Braket adapters: journal first,
retrieve instead of resubmitting, retry transient errors with capped exponential backoff."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from .backend import BaseBackend, RunOutput
from .contract import EstimateRequest
from .exceptions import BackendUnavailableError
from .journal import JobJournal

# Options that change how results are fetched, not what they are.
OPERATIONAL_OPTIONS = frozenset({"poll_interval_s", "poll_timeout_s", "max_parallel", "aws_profile", "s3_bucket",
                                 "s3_prefix", "channel"})


def retry(fn: Callable[[], Any], is_transient: Callable[[BaseException], bool], *, attempts: int = 6,
          base: float = 1.0, cap: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> Any:
    """Call ``fn``; on a transient error wait ``min(cap, base·2^k)`` and try again."""
    for k in range(attempts):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            if not is_transient(exc) or k == attempts - 1:
                raise
            sleep(min(cap, base * 2**k))
    raise AssertionError("unreachable")


class JournaledBackend(BaseBackend):
    """A backend whose submissions go through a :class:`JobJournal`.

    Subclasses implement ``_collect(job_ids, request) -> RunOutput``, ``_is_transient(exc)``
    and either ``_submit(request) -> job_ids`` (one provider call per request) or
    ``_submit_incremental`` (many tasks per request, each journaled as it is created).
    """

    journaled = True
    journal: JobJournal | None = None
    retry_sleep: Callable[[float], None] = staticmethod(time.sleep)

    def attach_journal(self, journal: JobJournal | str | None) -> None:
        self.journal = JobJournal(journal) if isinstance(journal, str) else journal

    def _submit(self, request: EstimateRequest) -> list[str]:
        raise NotImplementedError

    def _submit_incremental(self, request: EstimateRequest, attempt: str, have: list[str],
                            record: Callable[[str], None]) -> list[str]:
        """Job ids covering the whole request; ``have`` came from the journal (already paid).

        ``attempt`` identifies this try of this request (for idempotency tokens); ``record``
        journals one job id the moment it exists.
        """
        if have:
            return list(have)
        ids = self._call(lambda: self._submit(request))
        for job_id in ids:
            record(job_id)
        return ids

    def _collect(self, job_ids: list[str], request: EstimateRequest) -> RunOutput:
        raise NotImplementedError

    def _is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, (ConnectionError, TimeoutError))

    def result_fingerprint(self) -> str:
        """sha256 of the profile parts that decide results (device, noise, options, limits).

        The journal is keyed by this rather than the file's bytes, so editing a budget, a
        price, a poll timeout or the description between a crash and the rerun does not make
        finished work look new (and get paid for again).
        """
        options = getattr(self, "options", None) or self.profile.options
        parts = {"adapter": self.profile.adapter, "noise": self.profile.noise, "limits": self.profile.limits,
                 "seed": self.profile.seed,
                 "options": {k: v for k, v in options.items() if k not in OPERATIONAL_OPTIONS}}
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def _run(self, request: EstimateRequest) -> RunOutput:
        fingerprint = self.result_fingerprint()
        key = request.digest(fingerprint, self.name)
        j = self.journal
        have: list[str] = []
        if j is not None:
            entry = j.get(key)
            if entry is not None and entry.state == "done":
                return RunOutput(entry.values, entry.stderr, entry.metadata.get("stderr_method", "sampled"),
                                 request.batch_size, list(entry.job_ids), submissions=0,
                                 raw={"from_journal": True, "journal_key": key}, replayed=True,
                                 shots_run=entry.metadata.get("shots_run"))
            if entry is None:
                charged = self.shots_charged(request)
                j.begin(key, self.name, fingerprint, request.batch_size,
                        None if request.shots is None else int(np.max(request.row_shots)), charged,
                        self.cost_estimate(request.batch_size, charged, self.submissions_for(request)), request.phase)
            elif entry.state == "failed":
                j.restart(key)
            elif entry.state == "submitted":
                have = list(entry.job_ids)
        record = (lambda job_id: j.add_job(key, job_id)) if j is not None else (lambda job_id: None)
        # Idempotency tokens derive from this: stable across reruns of one journal attempt,
        # fresh after a failure (restart) and for unjournaled calls.
        attempt = f"{key}:{j.get(key).created!r}" if j is not None else f"{key}:{uuid.uuid4()}"
        try:
            job_ids = self._submit_incremental(request, attempt, have, record)
            out = self._call(lambda: self._collect(job_ids, request))
        except Exception as exc:
            # A result still queued on the device is not a failure: the rerun retrieves it.
            if j is not None and not self._is_transient(exc) and not getattr(exc, "resumable", False):
                j.failed(key, f"{type(exc).__name__}: {exc}")
            raise
        out.raw["journal_key"] = key  # links the ledger of record's entry to this journal entry
        if have:
            out.raw["retrieved_from_journal"] = len(have)
            new = len(job_ids) - len(have)
            out.submissions = new
            out.replayed = new == 0  # paid for in the run that submitted it
        if j is not None:
            j.done(key, out.values, out.stderr, {"stderr_method": out.stderr_method, "shots_run": out.shots_run})
        return out

    def _call(self, fn):
        try:
            return retry(fn, self._is_transient, sleep=self.retry_sleep)
        except (ConnectionError, TimeoutError) as exc:
            raise BackendUnavailableError(f"backend {self.name!r} is unreachable after retries: {exc}") from exc
