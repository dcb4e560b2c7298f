"""The test suite's outbound-network guard, shared by the pytest process and every child
Python process it starts (``sitecustomize.py`` in this folder is put first on the children's
PYTHONPATH, so a CLI subprocess is guarded the same way).

Blocked: TCP/UDP ``connect``/``connect_ex`` to a non-local address, UDP ``sendto``/``sendmsg``
to one, and DNS lookups (``getaddrinfo``, ``gethostbyname[_ex]``, ``gethostbyaddr``) of any
name other than this machine's own and localhost. A numeric address given to ``getaddrinfo``
is parsed without any query (Ray's agents do this on start), so it passes; connecting to it
does not. Each refusal is an ``OSError`` whose message
says it came from this guard.
"""

from __future__ import annotations

import socket

MARK = "qmu-hw tests block outbound network"
_real = {}


def _local_names() -> set[str]:
    names = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", ""}
    try:
        names.add(socket.gethostname())
    except OSError:  # pragma: no cover
        pass
    return names


def _is_local_host(host) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): a local bind address
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]")
    return host in _LOCAL or host == "::1" or host.startswith("127.") or host in ("0.0.0.0", "::")


def _is_local_address(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    return _is_local_host(address[0])


def _is_ip_literal(host) -> bool:
    import ipaddress

    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    try:
        ipaddress.ip_address(str(host).strip("[]"))
    except ValueError:
        return False
    return True


def _refuse(what: str, target) -> OSError:
    return OSError(f"{MARK}: {what} {target!r} refused")


def install() -> None:
    """Patch the socket module (idempotent)."""
    if _real:
        return
    global _LOCAL
    _LOCAL = _local_names()
    sock = socket.socket
    for name in ("connect", "connect_ex", "sendto", "sendmsg", "getaddrinfo", "gethostbyname", "gethostbyname_ex",
                 "gethostbyaddr"):
        _real[name] = getattr(sock, name, None) if name in ("connect", "connect_ex", "sendto", "sendmsg") \
            else getattr(socket, name)

    def connect(self, address):
        if not _is_local_address(address):
            raise _refuse("connect to", address)
        return _real["connect"](self, address)

    def connect_ex(self, address):
        if not _is_local_address(address):
            raise _refuse("connect to", address)
        return _real["connect_ex"](self, address)

    def sendto(self, data, *args):
        address = args[-1]
        if not _is_local_address(address):
            raise _refuse("UDP send to", address)
        return _real["sendto"](self, data, *args)

    def sendmsg(self, buffers, ancdata=(), flags=0, address=None):
        if address is not None and not _is_local_address(address):
            raise _refuse("UDP send to", address)
        if address is None:
            return _real["sendmsg"](self, buffers, ancdata, flags)
        return _real["sendmsg"](self, buffers, ancdata, flags, address)

    def lookup(name):
        real = _real[name]

        def guarded(host, *args, **kwargs):
            # A numeric address is parsed, not looked up (getaddrinfo sends no query for it; a
            # connect to it is still checked above). gethostbyaddr does query: always guarded.
            if not _is_local_host(host) and (name == "gethostbyaddr" or not _is_ip_literal(host)):
                raise socket.gaierror(socket.EAI_NONAME, f"{MARK}: DNS lookup of {host!r} refused")
            return real(host, *args, **kwargs)

        guarded.__name__ = name
        return guarded

    sock.connect = connect
    sock.connect_ex = connect_ex
    sock.sendto = sendto
    sock.sendmsg = sendmsg
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        setattr(socket, name, lookup(name))


_LOCAL: set[str] = set()
