"""Amazon Braket and S3 answered through botocore's ``Stubber`` (no network).

The SDK runs for real — ``AwsDevice``, ``AwsQuantumTask``, ``AwsSession``, boto3 clients
with the services' own request/response models (the Stubber validates every response
against them). Only the service's side is played here: ``GetDevice`` returns a real
capabilities document, ``CreateQuantumTask`` stores the submitted OpenQASM (honouring
``clientToken`` idempotency as the service does), ``GetQuantumTask`` walks the task through
QUEUED/RUNNING to COMPLETED (or a scripted FAILED/CANCELLED), and the results object in S3
is what Braket's own simulator computes for the submitted program.

Responses are queued just in time (a ``provide-client-params`` hook), so the order of calls
is the SDK's. State lives in a JSON file: a killed process and its rerun share one account.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import json
import os
import signal
import uuid
from pathlib import Path
from unittest import mock

import boto3
import numpy as np
from botocore.response import StreamingBody
from botocore.stub import Stubber

ACCOUNT = "123456789012"
SV1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
DM1 = "arn:aws:braket:::device/quantum-simulator/amazon/dm1"
GARNET = "arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet"
BUCKET = "amazon-braket-qmu-hw-tests"

# A QPU's capabilities in IQM's schema (values as Garnet publishes them: 20 qubits, shots
# 1…20,000, program sets); the service plays the QPU with a noiseless simulator.
GARNET_CAPABILITIES = {
    "braketSchemaHeader": {"name": "braket.device_schema.iqm.iqm_device_capabilities", "version": "1"},
    "service": {"braketSchemaHeader": {"name": "braket.device_schema.device_service_properties", "version": "1"},
                "executionWindows": [{"executionDay": "Everyday", "windowStartHour": "00:00",
                                      "windowEndHour": "23:59:59"}],
                "shotsRange": [1, 20000], "getTaskPollIntervalMillis": 1},
    "action": {
        "braket.ir.openqasm.program": {
            "version": ["1"], "actionType": "braket.ir.openqasm.program",
            "supportedOperations": ["ccnot", "cnot", "cphaseshift", "cz", "h", "i", "rx", "ry", "rz", "s", "si",
                                    "swap", "x", "y", "z", "prx"],
            "supportedResultTypes": [{"name": "Expectation", "observables": ["x", "y", "z", "h", "i"],
                                      "minShots": 1, "maxShots": 20000},
                                     {"name": "Probability", "minShots": 1, "maxShots": 20000}],
            "supportPhysicalQubits": True, "supportsPartialVerbatimBox": False,
            "requiresContiguousQubitIndices": False, "requiresAllQubitsMeasurement": False,
            "supportsUnassignedMeasurements": True, "disabledQubitRewiringSupported": True},
        "braket.ir.openqasm.program_set": {"version": ["1"], "actionType": "braket.ir.openqasm.program_set",
                                           "maximumExecutables": 100, "maximumTotalShots": 200000}},
    "deviceParameters": {},
    "paradigm": {"braketSchemaHeader": {"name": "braket.device_schema.gate_model_qpu_paradigm_properties",
                                        "version": "1"},
                 "qubitCount": 20, "nativeGateSet": ["cz", "prx"],
                 "connectivity": {"fullyConnected": False, "connectivityGraph": {"1": ["2", "4"], "2": ["1", "5"]}}},
}


def capabilities(arn: str, program_sets: bool) -> str:
    """A valid capabilities document (Braket's local simulators describe themselves in the
    same schema as SV1/DM1), with or without the program-set action."""
    if arn == GARNET:
        return json.dumps(GARNET_CAPABILITIES)
    from braket.devices import LocalSimulator

    doc = json.loads(LocalSimulator("braket_dm" if arn == DM1 else "braket_sv").properties.json())
    if not program_sets:
        doc["action"].pop("braket.ir.openqasm.program_set", None)
    doc["service"]["getTaskPollIntervalMillis"] = 1
    return json.dumps(doc)


class FakeBraketService:
    """One AWS account's Braket + S3, persisted at ``path``.

    Args:
        path: JSON state file (created if missing).
        devices: ``{arn: program_sets_supported}``.
        polls_before_done: GetQuantumTask calls that answer QUEUED/RUNNING before COMPLETED.
        script: ``{"throttle_creates": n, "fail_tasks": [k, ...], "cancel_tasks": [k, ...],
            "kill_after_creates": n, "kill_after_results": n, "reject_creates": "ValidationException"}``
            (task indices count creations, 1-based).
    """

    def __init__(self, path: str | Path, devices: dict[str, bool] | None = None, polls_before_done: int = 1,
                 script: dict | None = None) -> None:
        self.path = Path(path)
        self.devices = devices if devices is not None else {SV1: True, DM1: False, GARNET: True}
        self.polls_before_done = polls_before_done
        self.script = script or {}
        if not self.path.exists():
            self._save({"tasks": {}, "tokens": {}, "calls": {}, "created": 0, "results": 0,
                        "throttled": 0})

    # -- persisted state ------------------------------------------------------------------
    def state(self) -> dict:
        return json.loads(self.path.read_text())

    def _save(self, st: dict) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(st))
        os.replace(tmp, self.path)

    def calls(self, op: str) -> int:
        return self.state()["calls"].get(op, 0)

    # -- clients --------------------------------------------------------------------------
    def client(self, service: str, region: str):
        """A real boto3 client whose every call this service answers through a Stubber."""
        session = boto3.Session(region_name=region)  # credentials from the environment, as in production
        if session.get_credentials() is None:
            session = boto3.Session(aws_access_key_id="AKIATESTTESTTEST", aws_secret_access_key="test-secret",
                                    region_name=region)
        client = session.client(service, region_name=region)
        stubber = Stubber(client)
        stubber.activate()
        client.meta.events.register(f"provide-client-params.{service}",
                                    lambda params, model, **kw: self._answer(stubber, model.name, params, region))
        client._qmu_stubber = stubber  # keep it alive with the client
        return client

    def _answer(self, stubber: Stubber, op: str, params: dict, region: str) -> None:
        st = self.state()
        st["calls"][op] = st["calls"].get(op, 0) + 1
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            self._save(st)
            raise AssertionError(f"the fake Braket service does not answer {op}")
        reply = handler(st, params, region)
        self._save(st)
        if reply[0] == "error":
            _, code, status, message = reply
            stubber.add_client_error(_snake(op), service_error_code=code, service_message=message,
                                     http_status_code=status)
        else:
            stubber.add_response(_snake(op), reply[1])
        self._after(st, op)

    def _after(self, st: dict, op: str) -> None:
        # Simulated crashes: the service has done its part, the client never hears back.
        if op == "CreateQuantumTask" and st["created"] == self.script.get("kill_after_creates"):
            os.kill(os.getpid(), signal.SIGKILL)
        if op == "GetObject" and st["results"] == self.script.get("kill_after_results"):
            os.kill(os.getpid(), signal.SIGKILL)

    # -- operations -----------------------------------------------------------------------
    def _op_GetDevice(self, st, params, region):
        arn = params["deviceArn"]
        if arn not in self.devices:
            return ("error", "ResourceNotFoundException", 404, f"Braket device {arn} not found")
        qpu = arn == GARNET
        return ("ok", {"deviceArn": arn, "deviceName": arn.rsplit("/", 1)[-1].upper(),
                       "providerName": "IQM" if qpu else "Amazon Braket",
                       "deviceType": "QPU" if qpu else "SIMULATOR", "deviceStatus": "ONLINE",
                       "deviceCapabilities": capabilities(arn, self.devices[arn])})

    def _op_CreateQuantumTask(self, st, params, region):
        if self.script.get("reject_creates"):
            return ("error", self.script["reject_creates"], 400, "Invalid OpenQASM program")
        if st["throttled"] < self.script.get("throttle_creates", 0):
            st["throttled"] += 1
            return ("error", "ThrottlingException", 429, "Rate exceeded")
        token = params.get("clientToken")
        if token and token in st["tokens"]:  # idempotent: the same task again, no new bill
            st["calls"]["CreateQuantumTask:idempotent"] = st["calls"].get("CreateQuantumTask:idempotent", 0) + 1
            return ("ok", {"quantumTaskArn": st["tokens"][token]})
        st["created"] += 1
        task_id = str(uuid.uuid4())
        arn = f"arn:aws:braket:{region}:{ACCOUNT}:quantum-task/{task_id}"
        status = "QUEUED"
        if st["created"] in self.script.get("fail_tasks", ()):
            status = "FAILED"
        if st["created"] in self.script.get("cancel_tasks", ()):
            status = "CANCELLED"
        st["tasks"][arn] = {"index": st["created"], "device": params["deviceArn"], "action": params["action"],
                            "shots": params["shots"], "bucket": params["outputS3Bucket"],
                            "dir": f"{params['outputS3KeyPrefix']}/{task_id}", "status": status, "polls": 0,
                            "deviceParameters": params.get("deviceParameters", "{}"),
                            "created": dt.datetime.now(dt.timezone.utc).isoformat()}
        if token:
            st["tokens"][token] = arn
        return ("ok", {"quantumTaskArn": arn})

    def _op_GetQuantumTask(self, st, params, region):
        arn = params["quantumTaskArn"]
        task = st["tasks"].get(arn)
        if task is None:
            return ("error", "ResourceNotFoundException", 404, f"quantum task {arn} not found")
        task["polls"] += 1
        if task["status"] in ("QUEUED", "RUNNING"):
            if task["polls"] > self.polls_before_done:
                self._finish(st, arn, task)
            else:
                task["status"] = "RUNNING" if task["polls"] > 1 else "QUEUED"
        reply = {"quantumTaskArn": arn, "status": task["status"], "deviceArn": task["device"],
                 "deviceParameters": task["deviceParameters"], "shots": task["shots"],
                 "outputS3Bucket": task["bucket"], "outputS3Directory": task["dir"],
                 "createdAt": dt.datetime.fromisoformat(task["created"]),
                 "actionMetadata": {"actionType": json.loads(task["action"])["braketSchemaHeader"]["name"]}}
        if task["status"] in ("FAILED", "CANCELLED"):
            reply["failureReason"] = ("Device calibration in progress" if task["status"] == "FAILED"
                                      else "Cancelled by the account owner")
        if task["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            reply["endedAt"] = dt.datetime.now(dt.timezone.utc)
        return ("ok", reply)

    def _finish(self, st, arn, task) -> None:
        from braket.default_simulator import DensityMatrixSimulator, StateVectorSimulator
        from braket.schema_common import BraketSchemaBase

        program = BraketSchemaBase.parse_raw_schema(task["action"])
        sim = DensityMatrixSimulator() if task["device"] == DM1 else StateVectorSimulator()
        # Seeded by the task's creation index: fresh shots for every task, yet two runs of a
        # study (one killed and resumed, one clean) see identical results. (Not by the program
        # text: the SDK declares inputs in set order, which varies between processes.)
        seed = 7919 * task["index"] + 17
        real_rng, calls = np.random.default_rng, itertools.count()
        # one generator per simulated executable, each with its own stream
        with mock.patch("numpy.random.default_rng", lambda *a, **k: real_rng([seed, next(calls)])):
            raw = sim.run(program, shots=task["shots"])
        result = json.loads(raw.json())
        meta = result["taskMetadata"]
        meta["id"], meta["deviceId"] = arn, task["device"]
        if "resultTypes" in result:  # gate-model result: what SV1/DM1 report as execution time
            result["additionalMetadata"] = {"action": json.loads(task["action"]),
                                            "simulatorMetadata": {
                                                "braketSchemaHeader": {
                                                    "name": "braket.task_result.simulator_metadata",
                                                    "version": "1"},
                                                "executionDuration": 40}}
        if not result.get("measurements"):  # exact (shots = 0): the service omits the empty list
            result.pop("measurements", None)
        elif result.get("resultTypes") and "value" not in result["resultTypes"][0]:
            # The service reports result types computed from the shots (the local simulator
            # leaves that to the SDK's local device).
            from braket.tasks import GateModelQuantumTaskResult

            specs = result["resultTypes"]
            values = GateModelQuantumTaskResult.from_object(raw).values
            result["resultTypes"] = [{"type": t, "value": float(v)} for t, v in zip(specs, values, strict=True)]
        self._put(f"{task['bucket']}/{task['dir']}/results.json", json.dumps(result))
        task["status"] = "COMPLETED"

    def _object(self, key: str) -> Path:
        return self.path.parent / (self.path.stem + "-s3") / hashlib.sha256(key.encode()).hexdigest()

    def _put(self, key: str, body: str) -> None:
        path = self._object(key)
        path.parent.mkdir(exist_ok=True)
        path.write_text(body)

    def _op_GetObject(self, st, params, region):
        path = self._object(f"{params['Bucket']}/{params['Key']}")
        if not path.exists():
            return ("error", "NoSuchKey", 404, "The specified key does not exist.")
        st["results"] += 1
        data = path.read_bytes()
        return ("ok", {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentLength": len(data)})


def _snake(op: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in op).lstrip("_")


def profile_toml(name: str, arn: str, **options) -> str:
    """A Braket AWS profile for the fake account (``requires_confirmation`` off for tests)."""
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in options.items())
    return (f'schema_version = 1\nname = "{name}"\nadapter = "braket"\n[options]\ndevice = "{arn}"\n'
            f'region = "us-east-1"\ns3_bucket = "{BUCKET}"\ns3_prefix = "qmu"\npoll_interval_s = 0.0\n{extra}'
            "[defaults]\nshots = 256\n[cost]\nper_task = 0.0\nper_shot = 0.0\nper_second = 0.00125\n"
            "min_billed_seconds = 3.0\n")
