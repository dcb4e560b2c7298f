"""Native device objects → adapters: ``get_backend(FakeSherbrooke())``, ``get_backend(
AerSimulator(noise_model=nm))``, an ``IBMBackend``, a Braket ``LocalSimulator`` / ``AwsDevice``,
a PennyLane device.

Each object becomes an in-memory :class:`Profile` whose ``sha256`` is the device's
*fingerprint* — what decides its results: the device name plus its calibration time, or a
hash of the noise model — so the journal and the study's cell ids treat it exactly like a
profile file (a recalibrated device is a new cell; the same one resumes). When a shipped
profile names the same device (e.g. ``ibm-brisbane`` for ``ibm_brisbane``, ``braket-sv1``
for SV1's ARN), its cost table, limits, credentials and confirmation flag are inherited, so
a billed device is estimated and confirmed as with its profile.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

from ..core.exceptions import InvalidRequestError, UnsupportedFeatureError
from ..core.profiles import SCHEMA_VERSION, Profile, builtin_profiles, load_profile_file
from ..core.toml_write import toml_table, toml_value

BRAKET_LOCAL = {"StateVectorSimulator": "braket_sv", "DensityMatrixSimulator": "braket_dm"}


def _sha(*parts: Any) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


def _mro_names(obj: Any) -> set[str]:
    return {f"{c.__module__}.{c.__qualname__}" for c in type(obj).__mro__}


def noise_model_hash(noise_model) -> str:
    """sha256 of a Qiskit NoiseModel's serialised content (None → the ideal model)."""
    if noise_model is None:
        return _sha("ideal")
    errors = noise_model.to_dict(serializable=True).get("errors", [])
    # Each error carries a random uuid "id": identical models must hash alike, so it is dropped.
    content = [{k: v for k, v in e.items() if k != "id"} for e in errors]
    return _sha(json.dumps([sorted(noise_model.basis_gates), content], sort_keys=True, default=str))


def _shipped(adapter: str, device: str) -> Profile | None:
    """A shipped profile of ``adapter`` naming ``device`` with no noise of its own."""
    for path in builtin_profiles().values():
        try:
            p = load_profile_file(path)
        except InvalidRequestError:  # pragma: no cover - shipped profiles are tested
            continue
        if p.adapter == adapter and str(p.options.get("device")) == device and p.noise_kind == "none":
            return p
    return None


def _profile(adapter: str, name: str, fingerprint: str, options: dict, noise: dict,
             description: str, inherit_device: str | None = None) -> Profile:
    base = _shipped(adapter, inherit_device) if inherit_device else None
    if base is not None:
        return replace(base, name=name, path=f"<device {name}>", sha256=fingerprint,
                       options={**base.options, **options}, noise=noise, description=description)
    return Profile(name=name, adapter=adapter, path=f"<device {name}>", sha256=fingerprint,
                   description=description, options=options, noise=noise)


def describe_device(obj: Any) -> tuple[Profile, dict[str, Any]]:
    """``(profile, adapter keyword arguments)`` for a native device object.

    Raises:
        InvalidRequestError: the object is none of the supported device types (listed).
    """
    mro = _mro_names(obj)
    if "qiskit.providers.backend.BackendV2" in mro:
        return _qiskit(obj, mro)
    if "braket.devices.local_simulator.LocalSimulator" in mro:
        dev = BRAKET_LOCAL.get(obj.name)
        if dev is None:
            raise InvalidRequestError(f"Braket LocalSimulator {obj.name!r}: expected one of {sorted(BRAKET_LOCAL)}")
        name = f"braket:{dev}"
        return _profile("braket", name, _sha("braket-local", dev), {"device": dev}, {"kind": "none"},
                        f"Braket LocalSimulator {obj.name}"), {}
    if "braket.aws.aws_device.AwsDevice" in mro:
        arn = obj.arn
        service = getattr(getattr(obj, "properties", None), "service", None)
        updated = getattr(service, "updatedAt", None)
        name = f"braket:{obj.name}"
        return _profile("braket", name, _sha("braket-aws", arn, updated), {"device": arn}, {"kind": "none"},
                        f"Braket {obj.name} ({arn}), properties of {updated}", inherit_device=arn), {}
    if "pennylane.devices.device_api.Device" in mro:
        wires = None if obj.wires is None else list(obj.wires)
        name = f"pennylane:{obj.name}"
        fp = _sha("pennylane", obj.name, wires, type(obj).__qualname__)
        return _profile("pennylane", name, fp, {"device": obj.name}, {"kind": "none"},
                        f"PennyLane device {obj.name} (the object itself runs every request)"), {"native": obj}
    raise InvalidRequestError(
        f"get_backend: cannot use a {type(obj).__module__}.{type(obj).__qualname__}; expected a profile "
        "name or path, a Profile, a Qiskit BackendV2 (fake backend, AerSimulator, IBMBackend), a Braket "
        "LocalSimulator or AwsDevice, or a PennyLane device"
    )


def _calibration_time(backend) -> str | None:
    try:
        props = backend.properties()
    except Exception:  # V2 backends without properties; IBM may need the network
        return None
    stamp = getattr(props, "last_update_date", None)
    return None if stamp is None else str(stamp)


def _qiskit(obj, mro: set[str]) -> tuple[Profile, dict[str, Any]]:
    if "qiskit_aer.backends.aer_simulator.AerSimulator" in mro:
        nm = obj.options.noise_model
        h = noise_model_hash(nm)
        ideal = nm is None or nm.is_ideal()
        coupled = obj.coupling_map is not None
        fp = _sha("aer-simulator", h, None if not coupled else sorted(map(tuple, obj.coupling_map.get_edges())))
        noise = {"kind": "none"} if ideal else {"kind": "noise-model", "device": f"{obj.name} noise model {h[:12]}"}
        name = f"aer:{obj.name}" + ("" if ideal else f"-{h[:12]}")
        return _profile("aer", name, fp, {}, noise, f"AerSimulator {obj.name}"), {
            "native": obj, "noise_model": None if ideal else nm}
    if "qiskit_ibm_runtime.fake_provider.fake_backend.FakeBackendV2" in mro:
        cal = _calibration_time(obj)
        name = f"aer:{obj.name}"
        return _profile("aer", name, _sha("fake", type(obj).__name__, cal), {"initial_layout": "chain"},
                        {"kind": "fake-device", "device": type(obj).__name__},
                        f"Aer with the calibrated noise of {type(obj).__name__} ({cal})"), {"native": obj}
    if "qiskit_ibm_runtime.ibm_backend.IBMBackend" in mro:
        cal = _calibration_time(obj)
        name = f"ibm:{obj.name}"
        return _profile("ibm", name, _sha("ibm", obj.name, cal), {"device": obj.name}, {"kind": "none"},
                        f"IBM {obj.name} (calibration {cal})", inherit_device=obj.name), {"native": obj}
    raise InvalidRequestError(
        f"get_backend: Qiskit backend {type(obj).__qualname__} ({getattr(obj, 'name', '?')}) is not supported; "
        "expected a fake backend (qiskit_ibm_runtime.fake_provider), an AerSimulator or an IBMBackend"
    )


def device_profile_toml(obj: Any) -> tuple[str, str]:
    """``(file stem, TOML text)`` of a profile that rebuilds ``obj``'s backend by name, for
    studies (whose configs name backends). The fingerprint is part of the text, so the
    profile's sha256 — and with it the study's cell ids — changes when the device is
    recalibrated, and a rerun resumes the same cells otherwise.

    Raises:
        UnsupportedFeatureError: an AerSimulator with a custom noise model (a noise model is
            not expressible in a profile; use ``get_backend(sim)`` directly, or a profile
            with ``[noise]``).
    """
    profile, _ = describe_device(obj)
    if profile.noise_kind == "noise-model":
        raise UnsupportedFeatureError(
            f"{profile.name}: an AerSimulator with a custom noise model cannot be named in a study config; "
            "describe the noise in a profile ([noise] kind = \"depolarizing\" ...) or use get_backend(sim) "
            "with a QuantumLayer directly"
        )
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in profile.name)
    top = {"schema_version": SCHEMA_VERSION, "name": stem, "adapter": profile.adapter,
           "description": f"{profile.description}; device fingerprint {profile.sha256}"}
    if profile.requires_confirmation:
        top["requires_confirmation"] = True
    lines = toml_table(None, top, "device profile")
    for section in ("options", "noise", "limits", "budget", "cost", "credentials"):
        table = dict(getattr(profile, section))
        if section == "noise" and table.get("kind") == "none":
            continue
        if table:
            lines += ["", *toml_table(section, table, f"device profile [{section}]")]
    if profile.shots is not None:
        lines += ["", "[defaults]", f"shots = {toml_value(profile.shots, 'shots')}"]
    return stem, "\n".join(lines) + "\n"
