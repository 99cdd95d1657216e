"""No network for a test: every connection that would leave the machine raises, in this process and its forks.

Unix sockets and the loopback interface (``127.0.0.1``, ``::1``, ``localhost``: what DDP's processes rendezvous on)
stay open. In-process: the ``offline`` fixture of a test calls :func:`block` through ``monkeypatch``; in a
subprocess, ``python -c "import no_network; no_network.block(); ..."`` (see ``tests/test_shards.py``).
"""

import ipaddress
import socket

ORIGINAL = {name: getattr(socket.socket, name) for name in ("connect", "connect_ex")}


class NetworkUsed(OSError):
    """A test that must not use the network tried to connect somewhere."""


def local(sock: socket.socket, address) -> bool:
    """Whether ``address`` is a Unix socket or on the loopback interface."""
    if sock.family == socket.AF_UNIX:
        return True
    host = address[0] if isinstance(address, tuple) else address
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it would be looked up, and leave the machine
        return False


def refusing(name: str):
    def connect(sock: socket.socket, address, *args, **kwargs):
        if local(sock, address):
            return ORIGINAL[name](sock, address, *args, **kwargs)
        raise NetworkUsed(f"network used in a test that must run offline: connect to {address}")

    return connect


def block(monkeypatch=None) -> None:
    """Make ``socket.connect`` and ``connect_ex`` refuse every address that is not local."""
    for name in ORIGINAL:
        if monkeypatch is None:
            setattr(socket.socket, name, refusing(name))
        else:
            monkeypatch.setattr(socket.socket, name, refusing(name))
