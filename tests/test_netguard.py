"""The suite's outbound-network guard covers TCP, UDP and DNS, in this process and in the
Python subprocesses tests start (e.g. the ``qmu-hw`` CLI)."""

import socket
import subprocess
import sys

import pytest

MARK = "qmu-hw tests block outbound network"


def test_dns_lookups_are_refused():
    for fn in (lambda: socket.getaddrinfo("quantum.cloud.ibm.com", 443), lambda: socket.gethostbyname("example.com"),
               lambda: socket.gethostbyname_ex("braket.us-east-1.amazonaws.com")):
        with pytest.raises(OSError, match=MARK):
            fn()


def test_udp_and_tcp_to_remote_addresses_are_refused():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(OSError, match=MARK):
            s.sendto(b"x", ("8.8.8.8", 53))
        with pytest.raises(OSError, match=MARK):
            s.sendmsg([b"x"], [], 0, ("1.1.1.1", 53))
        with pytest.raises(OSError, match=MARK):
            s.connect(("8.8.8.8", 53))  # UDP "connect" is how resolvers pick a route
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(OSError, match=MARK):
            s.connect_ex(("93.184.216.34", 80))


def test_local_traffic_still_works():
    assert socket.getaddrinfo("localhost", 80)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        tx.sendto(b"ping", rx.getsockname())
        assert rx.recv(16) == b"ping"


@pytest.mark.parametrize("code", [
    "import socket; socket.getaddrinfo('quantum.cloud.ibm.com', 443)",
    "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('8.8.8.8', 53))",
    "import socket; socket.create_connection(('93.184.216.34', 443), timeout=2)",
])
def test_child_python_processes_are_guarded(code):
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and MARK in res.stderr, res.stderr


def test_numeric_addresses_parse_but_stay_unreachable():
    # getaddrinfo of an IP literal sends no query (Ray's agents call it on start); the
    # connect is what the guard must stop, and a reverse lookup does query.
    info = socket.getaddrinfo("192.0.2.2", 80, type=socket.SOCK_STREAM)
    assert info and info[0][4][0] == "192.0.2.2"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(OSError, match=MARK):
            s.connect(info[0][4])
    with pytest.raises(OSError, match=MARK):
        socket.gethostbyaddr("192.0.2.2")
