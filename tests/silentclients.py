"""
Clients that connect and then say nothing, for the tests of deadlines and
refusals on real sockets (smtpd and pop3d, plain and TLS listeners).

Blocking code: run it in a thread (C{threads.deferToThread}) while the
reactor serves.  Every wait is bounded.
"""

from __future__ import annotations

import selectors
import socket
import time

__all__ = ["open_silent", "seconds_until_closed", "read_line"]


def open_silent(port: int, count: int, source: str = "127.0.0.1") -> list[socket.socket]:
    """C{count} connections to 127.0.0.1:C{port} from the address C{source}, which send nothing."""
    sockets = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((source, 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        sockets.append(s)
    return sockets


def read_line(s: socket.socket, limit: float = 10.0) -> bytes:
    """One line from C{s} (bytes up to LF, or what came before the end), within C{limit} seconds."""
    s.settimeout(limit)
    line = b""
    while not line.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        line += chunk
    return line


def seconds_until_closed(sockets: list[socket.socket], limit: float, since: float | None = None) -> list[float | None]:
    """
    For each socket, the seconds from C{since} (a C{time.monotonic()}, by
    default now) until the server closed it (an end of stream or a reset;
    what it sent is read and dropped), or None if it was still open
    C{limit} seconds after C{since}.  The sockets are closed.
    """
    start = time.monotonic() if since is None else since
    closed: dict[socket.socket, float] = {}
    selector = selectors.DefaultSelector()  # not select(): descriptors may be over FD_SETSIZE
    for s in sockets:
        selector.register(s, selectors.EVENT_READ)
    try:
        while len(closed) < len(sockets) and time.monotonic() - start < limit:
            for key, _ in selector.select(0.1):
                s = key.fileobj  # type: ignore[assignment]
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    closed[s] = time.monotonic() - start
                    selector.unregister(s)
        return [closed.get(s) for s in sockets]
    finally:
        selector.close()
        for s in sockets:
            s.close()
