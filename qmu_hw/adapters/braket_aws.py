"""Amazon Braket's managed devices (SV1, DM1, QPUs) through the SDK's ``AwsDevice``.

What lives here is the AWS side only: the session (region, S3 destination, credentials),
the device's own limits read from ``GetDevice``, error classification, task creation with
an idempotency token and retrieval by ARN. :mod:`qmu_hw.adapters.braket` decides what to
submit.

Sessions: by default a ``boto3.Session`` from the standard credential chain (environment,
``~/.aws``, SSO, instance role; ``options.aws_profile`` names a profile). A caller that
needs its own clients (assumed roles, VPC endpoints, tests answering with botocore's
``Stubber``) installs a factory with :func:`set_client_factory`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

from ..core.exceptions import (
    BackendUnavailableError,
    InvalidRequestError,
    MissingCredentialsError,
    ResultPendingError,
    TaskFailedError,
    UnsupportedFeatureError,
)
from ..core.profiles import Profile

# ClientError codes worth waiting for; everything else (validation, access, unknown device)
# stops the study.
TRANSIENT_CODES = frozenset({
    "ThrottlingException", "TooManyRequestsException", "ServiceQuotaExceededException",
    "InternalServiceException", "InternalServerException", "ServiceUnavailableException",
    "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeoutException", "SlowDown",
})
TERMINAL_FAILED = ("FAILED", "CANCELLED", "CANCELLING")
# Our IR's gates → the names in a device's ``supportedOperations``.
BRAKET_OPS = {"H": "h", "X": "x", "Y": "y", "Z": "z", "S": "s", "SDG": "si", "RX": "rx", "RY": "ry", "RZ": "rz",
              "CZ": "cz", "CNOT": "cnot"}

_client_factory: Callable[[str, str], Any] | None = None


def set_client_factory(factory: Callable[[str, str], Any] | None) -> None:
    """Route every Braket and S3 call through ``factory(service_name, region) -> client``.

    ``None`` restores the standard boto3 credential chain.
    """
    global _client_factory
    _client_factory = factory


def region_of(arn: str) -> str | None:
    """The region in a device ARN (``arn:aws:braket:eu-north-1::device/...``); None for SV1/DM1."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[:3] != ["arn", "aws", "braket"]:
        raise InvalidRequestError(f"not a Braket device ARN: {arn!r} (expected arn:aws:braket:<region>::device/...)")
    return parts[3] or None


def is_transient(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError, ReadTimeoutError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, (ConnectionError, TimeoutError, BotoConnectionError, ReadTimeoutError)):
        return True
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return err.get("Code") in TRANSIENT_CODES or status == 429 or status >= 500
    return False


AUTH_CODES = frozenset({"UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
                        "AccessDeniedException", "InvalidClientTokenId"})


def as_qmu_error(exc: BaseException, backend: str) -> Exception:
    """A provider error that survived the retries, as the qmu-hw error that stops a study."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return MissingCredentialsError(f"backend {backend!r}: no AWS credentials found")
    if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in AUTH_CODES:
        return MissingCredentialsError(f"backend {backend!r}: AWS refused the credentials ({describe(exc)})")
    return TaskFailedError(f"backend {backend!r}: Amazon Braket refused the request ({describe(exc)})")


def describe(exc: BaseException) -> str:
    """A one-line reason for a provider error (code and message; never request contents)."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'ClientError')}: {err.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def _session_class():
    from braket.aws import AwsSession

    class QmuAwsSession(AwsSession):
        """AwsSession with an idempotency token per task and one S3 client for results.

        ``client_token``: CreateQuantumTask's ``clientToken``. Derived from the request's
        journal key and the task's index, so a retry (or a rerun after a crash between the
        service creating a task and the journal recording it) gets the same task back
        instead of a second bill.
        """

        client_token: str | None = None

        def create_quantum_task(self, **boto3_kwargs: Any) -> str:
            if self.client_token:
                boto3_kwargs["clientToken"] = self.client_token
            return super().create_quantum_task(**boto3_kwargs)

        def retrieve_s3_object_body(self, s3_bucket: str, s3_object_key: str) -> str:
            # The SDK builds a new S3 resource per object; one client serves thousands of tasks.
            body = self.s3_client.get_object(Bucket=s3_bucket, Key=s3_object_key)["Body"]
            return body.read().decode("utf-8")

    return QmuAwsSession


def make_session(profile: Profile, aws_profile: str | None, region: str, bucket: str | None):
    """An AwsSession in ``region`` (credentials checked now, so a missing account fails fast)."""
    import boto3
    from botocore.exceptions import BotoCoreError

    cls = _session_class()
    if _client_factory is not None:
        braket, s3 = _client_factory("braket", region), _client_factory("s3", region)
        session = cls(boto_session=boto3.Session(region_name=region), braket_client=braket, default_bucket=bucket)
        session._s3 = s3
        return session
    hint = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws configure`"
            + (f" for profile {aws_profile!r}" if aws_profile else " (or `aws sso login`)")
            + "; qmu-hw never stores credentials")
    try:
        boto_session = boto3.Session(profile_name=aws_profile, region_name=region)
        creds = boto_session.get_credentials()
    except BotoCoreError as exc:
        raise MissingCredentialsError(
            f"backend {profile.name!r}: no usable AWS credentials ({type(exc).__name__}); {hint}") from None
    if creds is None:
        raise MissingCredentialsError(f"backend {profile.name!r}: no AWS credentials found; {hint}")
    return cls(boto_session=boto_session, default_bucket=bucket)


class AwsTarget:
    """One Braket device in one session: limits from GetDevice, creation and retrieval."""

    def __init__(self, profile: Profile, options: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        self.profile = profile
        self.arn = str(options["device"])
        arn_region = region_of(self.arn)
        region = options.get("region") or arn_region
        if not region:
            raise InvalidRequestError(
                f"backend profile {profile.path}: key 'options.region' is required for {self.arn} "
                "(simulator ARNs carry no region)")
        if arn_region and region != arn_region:
            raise InvalidRequestError(
                f"backend profile {profile.path}: options.region {region!r} differs from the device's "
                f"region {arn_region!r}")
        bucket = options.get("s3_bucket") or os.environ.get("AMZN_BRAKET_OUT_S3_BUCKET")
        self.session = make_session(profile, options.get("aws_profile"), region, bucket)
        if not isinstance(bucket, str) or not bucket:
            raise InvalidRequestError(
                f"backend {profile.name!r}: name the S3 bucket for results in options.s3_bucket (profile "
                f"{profile.path}, or get_backend(..., s3_bucket=...)) or in AMZN_BRAKET_OUT_S3_BUCKET; Braket "
                "requires a bucket whose name starts with 'amazon-braket-'")
        self.s3_folder = (bucket, str(options.get("s3_prefix", "qmu-hw")).strip("/"))
        self.poll_interval = float(options.get("poll_interval_s", 1.0))
        self.poll_timeout = float(options.get("poll_timeout_s", 5 * 24 * 3600))
        from braket.aws import AwsDevice

        try:
            self.device = AwsDevice(self.arn, aws_session=self.session)
        except ClientError as exc:
            raise BackendUnavailableError(f"backend {profile.name!r}: GetDevice {self.arn} failed: "
                                          f"{describe(exc)}") from None
        except ValueError as exc:  # the SDK's "not found"
            raise BackendUnavailableError(f"backend {profile.name!r}: {exc}") from None
        if self.device.status == "RETIRED":
            raise BackendUnavailableError(f"backend {profile.name!r}: device {self.arn} is retired")
        props = self.device.properties
        self.is_qpu = str(self.device.type).upper().endswith("QPU")
        self.qubits = int(props.paradigm.qubitCount)
        self.shots_range = tuple(int(x) for x in props.service.shotsRange)
        actions = {str(getattr(k, "value", k)): v for k, v in props.action.items()}
        program = actions.get("braket.ir.openqasm.program")
        if program is None:
            raise UnsupportedFeatureError(f"device {self.arn} does not accept OpenQASM programs")
        self.operations = {op.lower() for op in program.supportedOperations}
        self.result_types = {rt.name for rt in (program.supportedResultTypes or [])}
        self.pragmas = {p.lower() for p in (getattr(program, "supportedPragmas", None) or [])}
        ps = actions.get("braket.ir.openqasm.program_set")
        self.program_set_limits = (None if ps is None else
                                   (int(ps.maximumExecutables), int(ps.maximumTotalShots)))

    # -- checks ------------------------------------------------------------------------
    def check_gates(self, names: set[str], noisy: bool) -> None:
        missing = sorted(BRAKET_OPS[n] for n in names if BRAKET_OPS[n] not in self.operations)
        if missing:
            raise UnsupportedFeatureError(f"device {self.arn} does not support gate(s) {missing}")
        if noisy and not any("noise" in p for p in self.pragmas):
            raise UnsupportedFeatureError(f"device {self.arn} cannot simulate noise instructions (use DM1)")

    def check_shots(self, shots: int) -> None:
        lo, hi = self.shots_range
        if not lo <= shots <= hi:
            raise InvalidRequestError(f"device {self.arn} takes shots in [{lo}, {hi}], got {shots}"
                                      + (" (exact expectations need a simulator)" if shots == 0 else ""))

    # -- one task ----------------------------------------------------------------------
    def create(self, program: Any, shots: int, inputs: dict[str, float] | None, token_seed: str) -> str:
        """Create one task; the idempotency token makes a repeated call return the same ARN."""
        self.session.client_token = hashlib.sha256(token_seed.encode()).hexdigest()[:64]
        try:
            task = self.device.run(program, s3_destination_folder=self.s3_folder, shots=shots,
                                   inputs=inputs or {}, poll_timeout_seconds=self.poll_timeout,
                                   poll_interval_seconds=self.poll_interval, quiet=True)
        finally:
            self.session.client_token = None
        return task.id

    def result(self, arn: str):
        """The SDK's result object for a task ARN (polling until it is terminal)."""
        from braket.aws import AwsQuantumTask

        task = AwsQuantumTask(arn, aws_session=self.session, poll_timeout_seconds=self.poll_timeout,
                              poll_interval_seconds=self.poll_interval, quiet=True)
        result = task.result()
        if result is not None:
            return result
        meta = task.metadata(use_cached_value=True) or task.metadata()
        state = meta.get("status", task.state())
        if state in TERMINAL_FAILED:
            reason = meta.get("failureReason") or "no reason given"
            raise TaskFailedError(f"Braket task {arn} ended {state}: {reason}")
        raise ResultPendingError(
            f"Braket task {arn} is still {state} after polling {self.poll_timeout:.0f}s; rerun the study to "
            "retrieve it (the journal holds its ARN, nothing is resubmitted)")
