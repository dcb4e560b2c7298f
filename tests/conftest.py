"""Test-session guards: no outbound network, no real credentials, seeded randomness."""

from __future__ import annotations

import os
import socket
import tempfile

import numpy as np
import pytest

# Credentials lookups point at empty places BEFORE any SDK is imported, so a missing
# account fails fast with qmu-hw's own error instead of finding a developer's real one.
_EMPTY = tempfile.mkdtemp(prefix="qmu-hw-empty-home-")
for var in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_CHANNEL", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
    os.environ.pop(var, None)
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(_EMPTY, "aws-credentials")
os.environ["AWS_CONFIG_FILE"] = os.path.join(_EMPTY, "aws-config")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["QISKIT_SETTINGS"] = os.path.join(_EMPTY, "qiskit-settings.conf")
os.environ["HOME"] = _EMPTY
os.environ.setdefault("MPLBACKEND", "Agg")

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = str(address[0])
    return host in ("localhost", "::1") or host.startswith("127.")


def _guarded_connect(self, address):
    if not _is_local(address):
        raise OSError(f"qmu-hw tests block outbound network: connect to {address!r} refused")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if not _is_local(address):
        raise OSError(f"qmu-hw tests block outbound network: connect to {address!r} refused")
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
