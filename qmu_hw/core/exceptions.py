"""The one exception tree of qmu-hw.

Every error the library raises on purpose derives from :class:`QmuHwError` and also from
the builtin a caller would naturally catch (``ValueError`` for bad input, ``ImportError``
for a missing SDK, ...), so both ``except QmuHwError`` and ``except ValueError`` work.
"""

from __future__ import annotations


class QmuHwError(Exception):
    """Root of every error raised by qmu-hw."""


class InvalidRequestError(QmuHwError, ValueError):
    """A request, shape, value or configuration is not what was expected."""


class UnsupportedFeatureError(QmuHwError, ValueError):
    """The backend cannot honour what was asked (e.g. backprop on a sampled device)."""


class MissingDependencyError(QmuHwError, ImportError):
    """An optional SDK needed by an adapter is not installed."""


class BudgetExceededError(QmuHwError, RuntimeError):
    """A request would cross a shot or cost cap; it was refused before submission."""


class BackendUnavailableError(QmuHwError, RuntimeError):
    """A backend cannot be reached or used right now (offline, no device, no account)."""


class MissingCredentialsError(BackendUnavailableError):
    """No credentials were found for a cloud backend."""


class TaskFailedError(BackendUnavailableError):
    """The provider ended a job/task as FAILED or CANCELLED, or rejected it (permanent)."""


class ResultPendingError(BackendUnavailableError):
    """A submitted job is still queued or running when polling gave up; rerun to retrieve it.

    ``resumable``: the journal keeps the job as ``submitted``, so a rerun fetches it by id
    instead of paying again.
    """

    resumable = True


class ProfileError(InvalidRequestError):
    """A backend profile file is malformed; the message names the file and key."""


class CorruptCheckpointError(InvalidRequestError):
    """A checkpoint file is truncated, corrupted, foreign or not loadable as plain weights;
    the message names its path. The study runner retrains instead of loading it."""
