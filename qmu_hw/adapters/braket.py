"""Amazon Braket: local simulators and managed devices (SV1, DM1, QPUs) by ARN.

The circuit is built once per (circuit, measurement group) with ``FreeParameter``s; each
row of a request binds them through ``inputs``.

- Local (``device = "braket_sv" | "braket_dm"``): the rows go out as one ``run_batch``,
  split deterministically at ``limits.max_circuits_per_job``.
- AWS (``device = "arn:aws:braket:..."``, see :mod:`.braket_aws`): when the device accepts
  program sets and the request samples, all (group, row) executables are packed into as few
  program sets as the device's limits allow (``maximumExecutables``, ``maximumTotalShots``);
  otherwise one task per row (also the only way to get exact expectations, shots = 0, on
  SV1/DM1). The task list is a pure function of the request, every ARN is journaled the
  moment it exists, and each task carries an idempotency token, so a rerun never pays twice.
  The SDK ``Tracker``'s figures (tasks, shots, billed simulator time) go to the ledger.

Noise follows Aer's convention (Braket's ``Depolarizing(p)`` leaves ``1 − p`` of the state,
so Aer's p1 maps to ``0.75·p1`` and p2 to ``15/16·p2``); readout error is a ``BitFlip``
after the basis change, right before measurement.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..core.backend import RunOutput, billed_seconds, check_options, price
from ..core.circuit import Circuit
from ..core.cloud import JournaledBackend
from ..core.contract import Capabilities, EstimateRequest
from ..core.deps import require
from ..core.exceptions import InvalidRequestError, TaskFailedError
from ..core.observables import measurement_groups
from ..core.profiles import Profile
from .braket_aws import BRAKET_OPS
from .registry import register_adapter
from .sampling import pauli_stderr

OPTION_SCHEMA = {
    "device": "braket_sv | braket_dm (local simulators) or a Braket device ARN",
    "max_parallel": "tasks in flight at once (AWS devices)",
    "max_qubits": "largest circuit accepted",
    "region": "AWS region of the device",
    "s3_bucket": "S3 bucket for results (or AMZN_BRAKET_OUT_S3_BUCKET)",
    "s3_prefix": "S3 key prefix for results",
    "aws_profile": "named AWS profile of the credentials",
    "program_sets": "\"auto\", true or false: pack rows and measurement groups into program sets",
    "poll_interval_s": "seconds between task-status polls",
    "poll_timeout_s": "seconds before a pending task is left for a rerun",
}
OPTIONS = set(OPTION_SCHEMA)
LOCAL_DEVICES = ("braket_sv", "braket_dm")


@dataclass(frozen=True)
class TaskSpec:
    """One provider task: ``(group, row)`` executables sharing one shot count.

    ``program_set``: the executables travel as one program set (measurement circuits, parity
    computed here); otherwise the spec holds exactly one row and the task returns
    expectation values as result types.
    """

    executables: tuple[tuple[int, int], ...]
    shots: int
    program_set: bool

    def rows_by_group(self) -> list[tuple[int, list[int]]]:
        """``[(group, rows)]`` in group order: one circuit binding per group, results in this order."""
        groups = sorted({g for g, _ in self.executables})
        return [(g, [r for gg, r in self.executables if gg == g]) for g in groups]


@register_adapter("braket")
class BraketBackend(JournaledBackend):
    sdk = ("braket.circuits",)
    extra = "braket"
    option_schema = OPTION_SCHEMA

    @classmethod
    def is_remote(cls, profile: Profile) -> bool:
        return str(profile.options.get("device", "")).startswith("arn:")

    @classmethod
    def credentials_visible(cls, profile: Profile) -> bool:
        """Whether boto3 could find AWS credentials without asking the network (env or ~/.aws)."""
        if not cls.is_remote(profile):
            return True
        if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"):
            return True
        files = [os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
                 os.environ.get("AWS_CONFIG_FILE", "~/.aws/config")]
        return any(Path(f).expanduser().is_file() for f in files)

    @classmethod
    def noise_label(cls, profile: Profile) -> str:
        if "/qpu/" in str(profile.options.get("device", "")):
            return "device (calibrated)"
        return profile.describe_noise()

    @classmethod
    def provider_tasks(cls, profile: Profile, circuits: float, submissions: float, shots: int | None) -> float:
        # One task per circuit unless the profile states a program-set limit (the device's own
        # limit is known only after GetDevice, and an estimate must not be too low), and always
        # for exact requests (program sets need shots > 0).
        limit = 1 if shots is None else (profile.limits.get("max_circuits_per_job") or 1)
        return super().provider_tasks(replace(profile, limits={**profile.limits, "max_circuits_per_job": limit}),
                                      circuits, submissions, shots)

    def __init__(self, profile: Profile, *, options: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(profile, **kw)
        require("braket.circuits", "braket", "Braket backends")
        options = check_options(profile, options, OPTIONS)
        self.options = options
        self.device_name = str(options.get("device", "braket_sv"))
        self.p1, self.p2, self.readout = profile.parametric_noise("Braket")
        self.noisy = noisy = bool(self.p1 or self.p2 or self.readout)
        self._built: dict[tuple, object] = {}
        self._last: dict[str, list] = {}
        self.max_parallel = int(options.get("max_parallel", 1))
        limit = profile.limits.get("max_circuits_per_job")
        if self.device_name.startswith("arn:"):
            from .braket_aws import AwsTarget

            self.aws = AwsTarget(profile, options)
            self.aws.check_gates(set(), noisy)
            want = options.get("program_sets", "auto")
            if want not in ("auto", True, False):
                raise InvalidRequestError(f"backend {profile.name!r}: options.program_sets must be \"auto\", "
                                          f"true or false, got {want!r}")
            if want is True and self.aws.program_set_limits is None:
                raise InvalidRequestError(f"backend {profile.name!r}: device {self.device_name} does not accept "
                                          "program sets; set options.program_sets = false")
            self.program_sets = want is not False and self.aws.program_set_limits is not None
            per_task = self.aws.program_set_limits[0] if self.program_sets else 1
            if limit:
                per_task = min(per_task, int(limit))
            max_q = min(int(options.get("max_qubits", profile.limits.get("max_qubits", 12))), self.aws.qubits)
            self.capabilities = Capabilities(
                exact=self.aws.shots_range[0] == 0, sampling=True, noise=profile.describe_noise(),
                max_qubits=max_q, max_circuits_per_job=per_task, backprop=False, seedable=False)
            return
        self.aws = None
        self.program_sets = False
        if self.device_name not in LOCAL_DEVICES:
            raise InvalidRequestError(
                f"backend {profile.name!r}: device must be one of {LOCAL_DEVICES} (local simulators) or a "
                f"Braket device ARN (arn:aws:braket:...), got {self.device_name!r}")
        if noisy and self.device_name != "braket_dm":
            raise InvalidRequestError(f"backend {profile.name!r}: noise needs device = \"braket_dm\"")
        from braket.devices import LocalSimulator

        self.device = LocalSimulator(self.device_name)
        max_q = int(options.get("max_qubits", profile.limits.get("max_qubits", 12)))
        self.capabilities = Capabilities(exact=True, sampling=True, noise=profile.describe_noise(), max_qubits=max_q,
                                         max_circuits_per_job=limit, backprop=False, seedable=False)

    # -- circuits ----------------------------------------------------------------------
    def build(self, circuit: Circuit, basis: str, labels: tuple[str, ...] | None):
        """Braket circuit with FreeParameters ``s0 … s{G-1}`` (one per slot), cached.

        The basis change for ``basis`` is part of the circuit; ``labels`` adds one Z-string
        expectation per observable, ``None`` leaves the circuit to be measured (program sets).
        """
        key = (circuit.fingerprint, basis, labels)
        if key in self._built:
            return self._built[key]
        from braket.circuits import Circuit as BCircuit
        from braket.circuits import FreeParameter, Observable

        change = {"X": ("H",), "Y": ("SDG", "H")}  # rotates each Pauli to Z before measurement
        if self.aws is not None:  # the device must support this circuit's gates and basis change
            self.aws.check_gates({g.name for g in circuit.gates} | {n for c in basis for n in change.get(c, ())},
                                 self.noisy)
        bc = BCircuit()
        slot_of = {gi: s for s, gi in enumerate(circuit.slots)}
        for gi, g in enumerate(circuit.gates):
            if g.name in ("CZ", "CNOT"):
                (bc.cz if g.name == "CZ" else bc.cnot)(*g.qubits)
                if self.p2:
                    bc.two_qubit_depolarizing(g.qubits[0], g.qubits[1], 15 / 16 * self.p2)
                continue
            q = g.qubits[0]
            if g.is_rotation:
                getattr(bc, BRAKET_OPS[g.name])(q, FreeParameter(f"s{slot_of[gi]}"))
            else:
                getattr(bc, BRAKET_OPS[g.name])(q)
            if self.p1:
                bc.depolarizing(q, 0.75 * self.p1)
        for q, c in enumerate(basis):  # the basis change runs as real (noisy) gates, as in Aer
            for name in change.get(c, ()):
                getattr(bc, BRAKET_OPS[name])(q)
                if self.p1:
                    bc.depolarizing(q, 0.75 * self.p1)
        if self.readout:
            for q in range(circuit.n_qubits):
                bc.bit_flip(q, self.readout)
        if labels is None and bc.qubit_count < circuit.n_qubits:
            for q in range(circuit.n_qubits):  # an idle qubit still has to be measured
                bc.i(q)
        for lab in labels or ():
            support = [q for q, c in enumerate(lab) if c != "I"]
            obs = Observable.Z()
            for _ in support[1:]:
                obs = obs @ Observable.Z()
            bc.expectation(observable=obs, target=support)
        self._built[key] = bc
        return bc

    @staticmethod
    def _inputs(angles: np.ndarray, n_slots: int) -> dict[str, float]:
        return {f"s{s}": float(angles[s]) for s in range(n_slots)}

    # -- local simulators ----------------------------------------------------------------
    def _jobs(self, request: EstimateRequest):
        """(rows, shots) chunks; split at the device's circuits-per-job limit."""
        limit = self.capabilities.max_circuits_per_job or request.batch_size
        shots = np.zeros(request.batch_size, dtype=int) if request.shots is None else request.row_shots
        out = []
        for level in sorted(set(shots.tolist())):
            rows = np.flatnonzero(shots == level)
            for i in range(0, len(rows), limit):
                out.append((rows[i : i + limit], int(level)))
        return out

    def _submit(self, request: EstimateRequest) -> list[str]:
        circuit = request.circuit
        angles = circuit.angles(request.params)
        groups = measurement_groups(request.observables)
        ids, tasks = [], []
        for gi, (basis, members) in enumerate(groups):
            bc = self.build(circuit, basis, tuple(request.observables[i].label for i in members))
            for rows, shots in self._jobs(request):
                inputs = [self._inputs(a, circuit.n_slots) for a in angles[rows]]
                batch = self.device.run_batch([bc] * len(rows), shots=shots, inputs=inputs,
                                              max_parallel=self.max_parallel)
                results = batch.results()  # local simulators finish synchronously
                tasks.append((gi, rows, [np.asarray(r.values, dtype=float) for r in results]))
                ids += [r.task_metadata.id for r in results]
        self._last = {"ids": ids, "tasks": tasks}
        return ids

    # -- AWS -----------------------------------------------------------------------------
    def plan(self, request: EstimateRequest) -> list[TaskSpec]:
        """The request's tasks, in a fixed order (a rerun rebuilds the same list)."""
        n_groups = len(measurement_groups(request.observables))
        if request.shots is None:
            return [TaskSpec(((g, r),), 0, False) for g in range(n_groups) for r in range(request.batch_size)]
        shots = request.row_shots
        if not self.program_sets:
            return [TaskSpec(((g, r),), int(shots[r]), False) for g in range(n_groups)
                    for r in range(request.batch_size)]
        max_exec, max_total = self.aws.program_set_limits
        specs = []
        for level in sorted(set(shots.tolist())):
            per_task = max(1, min(self.capabilities.max_circuits_per_job or max_exec, max_total // level))
            execs = [(g, int(r)) for g in range(n_groups) for r in np.flatnonzero(shots == level)]
            specs += [TaskSpec(tuple(execs[i : i + per_task]), int(level), True)
                      for i in range(0, len(execs), per_task)]
        return specs

    def _program(self, spec: TaskSpec, request: EstimateRequest, angles: np.ndarray, groups):
        circuit = request.circuit
        if not spec.program_set:
            g, r = spec.executables[0]
            basis, members = groups[g]
            bc = self.build(circuit, basis, tuple(request.observables[i].label for i in members))
            return bc, spec.shots, self._inputs(angles[r], circuit.n_slots)
        from braket.program_sets import CircuitBinding, ProgramSet

        bindings = []
        for g, rows in spec.rows_by_group():
            sets = {f"s{s}": [float(angles[r, s]) for r in rows] for s in range(circuit.n_slots)}
            bindings.append(CircuitBinding(self.build(circuit, groups[g][0], None), input_sets=sets))
        ps = ProgramSet(bindings, shots_per_executable=spec.shots)
        return ps, ps.total_shots, None

    def _submit_incremental(self, request, attempt, have, record):
        if self.aws is None:
            return super()._submit_incremental(request, attempt, have, record)
        specs = self.plan(request)
        if len(have) > len(specs):
            raise InvalidRequestError(f"journal holds {len(have)} task ARNs for a request of {len(specs)} tasks")
        angles = request.circuit.angles(request.params)
        groups = measurement_groups(request.observables)
        ids = list(have)
        for i in range(len(ids), len(specs)):
            program, shots, inputs = self._program(specs[i], request, angles, groups)
            self.aws.check_shots(shots)
            arn = self._call(lambda p=program, s=shots, x=inputs, i=i: self.aws.create(p, s, x, f"{attempt}:{i}"))
            record(arn)
            ids.append(arn)
        return ids

    def _collect_aws(self, arns: list[str], request: EstimateRequest) -> RunOutput:
        specs = self.plan(request)
        groups = measurement_groups(request.observables)
        vals = np.zeros((request.batch_size, request.n_observables))
        for spec, arn in zip(specs, arns, strict=True):
            result = self._call(lambda a=arn: self.aws.result(a))
            if not spec.program_set:
                g, r = spec.executables[0]
                vals[r, groups[g][1]] = np.asarray(result.values, dtype=float)
                continue
            for (g, rows), composite in zip(spec.rows_by_group(), result.entries, strict=True):
                members = groups[g][1]
                for r, entry in zip(rows, composite.entries, strict=True):
                    vals[r, members] = _parities(entry, arn, [request.observables[m].label for m in members])
        return self._output(vals, request, arns, len(specs))

    # -- both ------------------------------------------------------------------------------
    def _collect(self, job_ids: list[str], request: EstimateRequest) -> RunOutput:
        if self.aws is not None:
            return self._collect_aws(job_ids, request)
        if self._last.get("ids") != job_ids:  # local tasks live in this process only: run again
            self._submit(request)
        groups = measurement_groups(request.observables)
        vals = np.zeros((request.batch_size, request.n_observables))
        for gi, rows, results in self._last["tasks"]:
            vals[np.ix_(rows, groups[gi][1])] = np.array(results)
        return self._output(vals, request, job_ids, len(self._last["tasks"]))

    def _output(self, vals: np.ndarray, request: EstimateRequest, ids: list[str], n_jobs: int) -> RunOutput:
        coeffs = np.array([t.coeff for t in request.observables])
        n_circuits = request.batch_size * len(measurement_groups(request.observables))
        if request.shots is None:
            return RunOutput(vals * coeffs, np.zeros_like(vals), "exact", n_circuits, ids, submissions=n_jobs)
        err = pauli_stderr(vals, request.row_shots)
        return RunOutput(vals * coeffs, err * np.abs(coeffs), "sampled", n_circuits, ids, submissions=n_jobs)

    def _run(self, request: EstimateRequest) -> RunOutput:
        if self.aws is None:
            return super()._run(request)
        from braket.tracking import Tracker

        with Tracker() as tracker:  # sees the tasks created (and completed) by this request only
            out = super()._run(request)
        stats = tracker.quantum_tasks_statistics().get(self.aws.arn, {})
        tasks = sum(stats.get("tasks", {}).values())
        billed = stats.get("billed_execution_duration")
        shots = int(stats.get("shots", 0))
        # Program-set results report no duration, yet Braket bills 3 s a task: the profile's minimum.
        seconds = billed_seconds(self.profile.cost, shots, tasks, billed.total_seconds() if billed else 0.0)
        out.qpu_seconds = seconds
        out.raw["tracker"] = {"tasks": tasks, "shots": shots, "billed_seconds": seconds}
        if not out.replayed:  # the provider's figures replace the estimate
            out.cost = price(self.profile.cost, shots, tasks, seconds)
        return out

    def _call(self, fn):
        if self.aws is None:
            return super()._call(fn)
        from botocore.exceptions import BotoCoreError, ClientError

        from .braket_aws import as_qmu_error

        try:
            return super()._call(fn)
        except (ClientError, BotoCoreError) as exc:
            raise as_qmu_error(exc, self.name) from exc

    def _is_transient(self, exc: BaseException) -> bool:
        if self.aws is None:
            return super()._is_transient(exc)
        from .braket_aws import is_transient

        return is_transient(exc)

    def submissions_for(self, request: EstimateRequest) -> int:
        if self.aws is not None:
            return len(self.plan(request))
        return len(measurement_groups(request.observables)) * len(self._jobs(request))


def _parities(entry: Any, arn: str, labels: list[str]) -> np.ndarray:
    """Mean ±1 parity of each label's support from one executable's measurements."""
    shots = getattr(entry, "measurements", None)
    if shots is None:
        raise TaskFailedError(f"Braket task {arn}: an executable returned no measurements "
                              f"({type(entry).__name__})")
    shots = np.asarray(shots)
    column = {int(q): i for i, q in enumerate(entry.measured_qubits)}
    out = []
    for lab in labels:
        cols = [column[q] for q, c in enumerate(lab) if c != "I"]
        out.append(float(np.mean(1 - 2 * (shots[:, cols].sum(axis=1) % 2))))
    return np.array(out)
