"""Test-session guards: no outbound network, no real credentials, seeded randomness."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

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

# The outbound-network guard (TCP, UDP, DNS), here and in every child Python process: the
# guard's folder goes first on PYTHONPATH, where its sitecustomize.py installs it at start-up.
_GUARD_DIR = str(Path(__file__).resolve().parent / "netguard")
sys.path.insert(0, _GUARD_DIR)
import qmu_netguard  # noqa: E402

qmu_netguard.install()
os.environ["PYTHONPATH"] = os.pathsep.join([_GUARD_DIR, *filter(None, [os.environ.get("PYTHONPATH")])])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
