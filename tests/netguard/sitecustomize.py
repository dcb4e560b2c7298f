"""Imported at start-up by every Python process whose PYTHONPATH starts with this folder
(the test suite's subprocesses): installs the same outbound-network guard as the tests."""

import qmu_netguard

qmu_netguard.install()
