"""A private Ray (``--executor ray`` without ``--address``) listens on loopback only: no
socket of the driver, gcs_server, raylet, agents or workers accepts connections from the
network while a task runs."""

import ipaddress
import os
import time

import pytest

psutil = pytest.importorskip("psutil")
pytest.importorskip("ray")


def _sleep_pid(seconds):
    time.sleep(seconds)
    return os.getpid()


def _listeners(pids):
    out = []
    for c in psutil.net_connections("inet"):
        if c.status == psutil.CONN_LISTEN and c.pid in pids:
            try:
                name = psutil.Process(c.pid).name()
            except psutil.Error:
                name = "?"
            out.append((c.laddr.ip, c.laddr.port, name))
    return out


def _loopback(ip):
    addr = ipaddress.ip_address(ip.split("%")[0])
    if getattr(addr, "ipv4_mapped", None) is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


@pytest.mark.ray
def test_a_local_ray_run_has_no_listener_beyond_loopback():
    from qmu_hw.study.executor_backends import RayExecutor

    pool = RayExecutor(1, None)
    pool.start()
    try:
        handle = pool.submit(_sleep_pid, (3.0,), [], {"num_cpus": 1})
        time.sleep(1.5)  # the worker is running the task now
        me = psutil.Process()
        pids = {me.pid} | {p.pid for p in me.children(recursive=True)}
        found = _listeners(pids)
        worker_pid = pool.result(handle)
    finally:
        pool.close()
    names = {n for _, _, n in found}
    # The check sees Ray's servers (so it cannot pass on an empty list) ...
    assert {"gcs_server", "raylet"} <= names, found
    assert worker_pid in pids and any(p for p in found), found
    # ... and every one of them is bound to a loopback address.
    exposed = [f for f in found if not _loopback(f[0])]
    assert not exposed, f"listening beyond loopback: {exposed}"
    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") is None  # restored for later --address joins
