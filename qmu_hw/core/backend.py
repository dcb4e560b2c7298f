"""Shared machinery of every adapter: validation, budget, ledger and metadata.

An adapter subclasses :class:`BaseBackend` and implements ``_run(request)``; it never
charges or validates on its own, so every backend refuses bad or over-budget requests the
same way, before anything is submitted.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .adapter_registry import (  # noqa: F401  (re-exported)
    _ADAPTERS,
    ENTRY_POINT_GROUP,
    _builtin_adapters,
    adapter_class,
    register_adapter,
)
from .contract import (
    MAX_SHOTS,
    Capabilities,
    EstimateRequest,
    EstimateResult,
    check_seed,
    check_shots,
)
from .exceptions import InvalidRequestError, MissingDependencyError, UnsupportedFeatureError
from .ledger import LedgerEntry, ShotBudget, ShotLedger
from .observables import as_observables, measurement_groups
from .profiles import Profile


@dataclass
class RunOutput:
    """What an adapter's ``_run`` returns; the base class adds the fixed metadata."""

    values: np.ndarray
    stderr: np.ndarray
    stderr_method: str
    n_circuits: int
    job_ids: list[str] = field(default_factory=list)
    submissions: int = 1
    raw: dict[str, Any] = field(default_factory=dict)
    shots_run: int | None = None
    replayed: bool = False  # served from the job journal: nothing was spent now
    qpu_seconds: float = 0.0
    cost: float | None = None  # the provider's own figures, when it reports them (else the estimate)


class BaseBackend:
    """Base of all adapters. Construct through :func:`qmu_hw.get_backend`.

    Args:
        profile: the validated profile.
        shots: default shots per row for callers that do not choose (None = exact).
        seed: default seed used when a request carries none.
        ledger: where requests are recorded (a fresh one if omitted).
        budget: caps checked before each request (profile's ``[budget]`` if omitted).
    """

    capabilities: Capabilities

    # -- self-description, read through adapter_info(profile); override per adapter -----
    #: modules the adapter imports (import names) and the pip extra that installs them.
    sdk: tuple[str, ...] = ()
    extra: str | None = None
    #: the profile's ``[options]`` keys the adapter accepts, each with its meaning.
    option_schema: dict[str, str] = {}

    @classmethod
    def requirements(cls, profile: Profile) -> tuple[tuple[str, str | None], ...]:
        """``(module, extra)`` pairs this profile needs (default: ``sdk`` with ``extra``)."""
        return tuple((m, cls.extra) for m in cls.sdk)

    @classmethod
    def is_remote(cls, profile: Profile) -> bool:
        """Submits to a provider's service (needs an account; runs in one process)."""
        return False

    @classmethod
    def is_billed(cls, profile: Profile) -> bool:
        """Costs money per use (the study asks for confirmation)."""
        return cls.is_remote(profile)

    @classmethod
    def credentials_visible(cls, profile: Profile) -> bool:
        """Whether the credentials the profile names are visible (no network call)."""
        return all(os.environ.get(v) for v in profile.credentials.get("env", []))

    @classmethod
    def noise_label(cls, profile: Profile) -> str:
        """The noise a user gets from this profile; a real device overrides this (its noise is
        its own, not the profile's ``[noise]`` table)."""
        return profile.describe_noise()

    @classmethod
    def provider_tasks(cls, profile: Profile, circuits: float, submissions: float, shots: int | None) -> float:
        """Provider tasks/jobs for ``circuits`` circuits sent in ``submissions`` requests (the
        study's cost estimate): one per request unless ``[limits] max_circuits_per_job``
        splits it — 1 is one task per circuit; a larger limit adds at most one partial task
        per request."""
        limit = profile.limits.get("max_circuits_per_job")
        if not limit:
            return submissions
        if limit == 1:
            return circuits
        return math.ceil(circuits / limit) + submissions

    # -- hooks the study calls on every backend (no-ops here; cloud adapters override) ---
    journaled = False  # True when submissions go through a job journal (one writer: the driver)

    def attach_journal(self, journal) -> None:
        """Record every submission in ``journal`` (a JobJournal) before it is sent."""

    def execution_context(self):
        """A context held open across one method's requests (IBM Batch/Session)."""
        return contextlib.nullcontext(self)

    def __init__(
        self,
        profile: Profile,
        *,
        shots: int | None = None,
        seed: int | None = None,
        ledger: ShotLedger | None = None,
        budget: ShotBudget | None = None,
    ) -> None:
        self.profile = profile
        self.name = profile.name
        self.shots = check_shots(shots)
        self.seed = check_seed(seed)
        self.ledger = ledger if ledger is not None else ShotLedger()
        self.budget = budget if budget is not None else ShotBudget(**profile.budget)
        self._seed_counter = 0

    # -- the contract -------------------------------------------------------------------
    def estimate(self, request: EstimateRequest) -> EstimateResult:
        """Evaluate all rows of ``request`` in one submission; charge the ledger."""
        self.validate(request)
        shots_charged = self.shots_charged(request)
        if shots_charged > MAX_SHOTS:  # a Python int: never wraps, so no cap is ever passed by overflow
            raise InvalidRequestError(
                f"request for phase {request.phase!r} charges {shots_charged:,} shots (rows x shots x measurement "
                f"groups), more than the {MAX_SHOTS:,} qmu-hw accepts in one request; lower shots or split the batch"
            )
        submissions = self.submissions_for(request)
        cost = self.cost_estimate(request.batch_size, shots_charged, submissions)
        self.budget.check(self.ledger, request.phase, shots_charged, cost, backend=self.name)
        if request.seed is None and self.seed is not None:
            # Fresh but reproducible streams: the k-th unseeded request uses seed + k (wrapped
            # into the int64-safe seed range).
            request = _with_seed(request, (self.seed + self._seed_counter) % (2 ** 63))
            self._seed_counter += 1
        t0 = time.perf_counter()
        out = self._run(request)
        wall = time.perf_counter() - t0
        self.ledger.record(
            LedgerEntry(
                phase=request.phase,
                backend=self.name,
                profile=self.profile.path,
                circuits=out.n_circuits,
                # A replayed result keeps the charge of the submission that produced it (the
                # user paid it once); ``replayed`` keeps caps from counting it a second time.
                shots=self.shots_spent(request, out, shots_charged),
                submissions=submissions if out.replayed else out.submissions,
                wall_time_s=wall,
                cost=cost if (out.replayed or out.cost is None) else out.cost,
                exact=request.shots is None,
                qpu_seconds=out.qpu_seconds,
                replayed=out.replayed,
                request=str(out.raw.get("journal_key", "")),
            )
        )
        meta = {
            "backend": self.name,
            "profile": self.profile.path,
            "profile_sha256": self.profile.sha256,
            "stderr_method": out.stderr_method,
            "n_circuits": out.n_circuits,
            "job_ids": list(out.job_ids),
            "wall_time_s": wall,
            "seed": request.seed,
            "cost_estimate": cost,
            "raw": out.raw,
        }
        shots = out.shots_run if out.shots_run is not None else request.shots
        return EstimateResult(out.values, out.stderr, shots, meta)

    def _run(self, request: EstimateRequest) -> RunOutput:
        raise NotImplementedError

    # -- checks and estimates (before submission) --------------------------------------
    def validate(self, request: EstimateRequest) -> None:
        caps = self.capabilities
        n = request.circuit.n_qubits
        if n > caps.max_qubits:
            raise InvalidRequestError(
                f"backend {self.name!r} allows at most {caps.max_qubits} qubits, "
                f"circuit {request.circuit.name!r} has {n}"
            )
        if request.shots is None and not caps.exact:
            raise UnsupportedFeatureError(
                f"backend {self.name!r} cannot compute exact expectations; request shots=N"
            )
        if request.shots is not None and not caps.sampling:
            raise UnsupportedFeatureError(
                f"backend {self.name!r} is exact only; request shots=None (got shots={request.shots})"
            )
        max_shots = self.profile.limits.get("max_shots")
        if max_shots is not None and request.shots is not None and request.row_shots.max() > max_shots:
            raise InvalidRequestError(
                f"backend {self.name!r} allows at most {max_shots} shots per circuit, "
                f"got {int(request.row_shots.max())}"
            )

    # -- helpers of the differentiable engines (torch_expectation) ----------------------
    def _backprop_observables(self, circuit, observables):
        """The observables of a backprop call, after the same qubit check ``estimate`` does."""
        if circuit.n_qubits > self.capabilities.max_qubits:
            raise InvalidRequestError(
                f"backend {self.name!r} allows at most {self.capabilities.max_qubits} qubits, "
                f"circuit {circuit.name!r} has {circuit.n_qubits}"
            )
        return as_observables(observables, circuit.n_qubits)

    def _record_backprop(self, phase: str, rows: int, t0: float) -> None:
        """One exact, differentiable evaluation of ``rows`` rows: no shots, one submission."""
        self.ledger.record(
            LedgerEntry(phase, self.name, self.profile.path, rows, 0, 1, time.perf_counter() - t0, 0.0, True)
        )

    def n_groups(self, request: EstimateRequest) -> int:
        """Measurement settings per row (qubit-wise commuting groups of the observables)."""
        return len(measurement_groups(request.observables))

    def shots_charged(self, request: EstimateRequest) -> int:
        # Python ints: a numpy int64 sum of huge per-row shots wraps around and would pass a cap.
        total = request.total_row_shots
        return total * self.n_groups(request) if total else 0  # exact: no grouping to compute

    def shots_spent(self, request: EstimateRequest, out: RunOutput, charged: int) -> int:
        """Shots the ledger records once the request ran: by default what was charged before
        submission; adapters whose provider reports what ran (and may round it) override."""
        return charged

    def submissions_for(self, request: EstimateRequest) -> int:
        limit = self.capabilities.max_circuits_per_job
        circuits = request.batch_size * (1 if request.shots is None else self.n_groups(request))
        return 1 if not limit else -(-circuits // limit)

    def cost_estimate(self, circuits: int, shots: int, submissions: int) -> float:
        """Estimated price from the profile's ``[cost]`` table (0 for local simulators)."""
        return price(self.profile.cost, shots, submissions)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(profile={self.name!r}, shots={self.shots})"


def billed_seconds(cost: dict[str, Any], shots: float, tasks: float, measured: float | None = None) -> float:
    """Device seconds billed under a profile's ``[cost]`` table.

    ``measured`` (the provider's own figure) or else ``seconds_per_shot`` × shots, but at
    least ``min_billed_seconds`` per task (Braket bills a simulator task for 3 s or more).
    """
    seconds = float(cost.get("seconds_per_shot", 0.0)) * shots if measured is None else measured
    return max(seconds, float(cost.get("min_billed_seconds", 0.0)) * tasks)


def price(cost: dict[str, Any], shots: float, tasks: float, seconds: float | None = None) -> float:
    """Money for ``tasks`` tasks/jobs and ``shots`` shots under a profile's ``[cost]`` table;
    time (IBM QPU seconds, Braket simulator minutes) per :func:`billed_seconds`."""
    return float(cost.get("per_task", 0.0) * tasks + cost.get("per_shot", 0.0) * shots
                 + cost.get("per_second", 0.0) * billed_seconds(cost, shots, tasks, seconds))


def check_options(profile: Profile, options: dict[str, Any] | None, allowed: set[str]) -> dict[str, Any]:
    """The adapter options as a dict, refusing unknown keys by name."""
    options = dict(options or {})
    bad = set(options) - set(allowed)
    if bad:
        raise InvalidRequestError(
            f"backend {profile.name!r}: unknown option(s) {sorted(bad)}; expected {sorted(allowed)}"
        )
    return options


def _with_seed(request: EstimateRequest, seed: int) -> EstimateRequest:
    # A copy, not a new request: validating again would copy and check the (read-only,
    # already checked) params once more, ms on a parameter-shift request's 10^6 angles.
    out = copy.copy(request)
    object.__setattr__(out, "seed", check_seed(seed))
    return out


@runtime_checkable
class Differentiable(Protocol):
    """An engine that also computes exact expectations as a differentiable torch function
    (``gradient="backprop"``). ``inputs (B, n_inputs)``, ``weights (W,)`` → ``(B, O)``."""

    def torch_expectation(self, circuit, inputs, weights, observables=None, phase: str = "train"): ...


# -- the adapter registry: core.adapter_registry (re-exported here) ----------------------


@dataclass(frozen=True)
class AdapterInfo:
    """What an adapter declares about a profile; core/, study/ and the CLI use only this."""

    adapter: str
    remote: bool
    billed: bool
    differentiable: bool
    requirements: tuple[tuple[str, str | None], ...]
    option_schema: dict[str, str]
    credentials_visible: Callable[[], bool]
    noise: str
    journaled: bool
    tasks_for: Callable[[float, float, int | None], float]

    @property
    def missing(self) -> list[tuple[str, str | None]]:
        """``(module, extra)`` requirements that are not installed."""
        return [(m, e) for m, e in self.requirements if not _installed(m)]

    def require(self, what: str) -> None:
        """Raise :class:`MissingDependencyError` naming the install command if an SDK is missing."""
        missing = self.missing
        if missing:
            extras = sorted({e for _, e in missing if e})
            cmd = f"pip install 'qmu-hw[{','.join(extras)}]'" if extras else "pip install " + " ".join(
                m for m, _ in missing)
            raise MissingDependencyError(
                f"{what} (adapter {self.adapter!r}) needs {', '.join(m for m, _ in missing)}, which "
                f"{'is' if len(missing) == 1 else 'are'} not installed: {cmd}"
            )


def _installed(module: str) -> bool:
    # find_spec("braket.aws") raises, not returns None, when the parent package is missing
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def adapter_info(profile: Profile) -> AdapterInfo:
    """The adapter's declarations for ``profile`` (remote? billed? SDK + extra, options,
    request → provider tasks)."""
    cls = adapter_class(profile.adapter)
    return AdapterInfo(
        adapter=profile.adapter,
        remote=cls.is_remote(profile),
        billed=cls.is_billed(profile),
        differentiable=issubclass(cls, Differentiable),
        requirements=cls.requirements(profile),
        option_schema=dict(cls.option_schema),
        credentials_visible=lambda: cls.credentials_visible(profile),
        noise=cls.noise_label(profile),
        journaled=bool(cls.journaled),
        tasks_for=lambda circuits, submissions, shots: cls.provider_tasks(profile, circuits, submissions, shots),
    )
