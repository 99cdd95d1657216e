"""No network for a test: every socket connection but a local (``AF_UNIX``) one raises, in this process and its forks.

In-process: the ``offline`` fixture of a test calls :func:`block` through ``monkeypatch``; in a subprocess,
``python -c "import no_network; no_network.block(); ..."`` (see ``tests/test_shards.py``).
"""

import socket

ORIGINAL = socket.socket.connect


class NetworkUsed(OSError):
    """A test that must not use the network tried to connect somewhere."""


def refuse(sock: socket.socket, address, *args, **kwargs):
    if sock.family == socket.AF_UNIX:
        return ORIGINAL(sock, address, *args, **kwargs)
    raise NetworkUsed(f"network used in a test that must run offline: connect to {address}")


def block(monkeypatch=None) -> None:
    """Make ``socket.connect`` and ``connect_ex`` refuse every address but a Unix socket's."""
    for name in ("connect", "connect_ex"):
        if monkeypatch is None:
            setattr(socket.socket, name, refuse)
        else:
            monkeypatch.setattr(socket.socket, name, refuse)
