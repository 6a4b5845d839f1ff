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

from twisted.internet import defer, threads

__all__ = ["open_silent", "seconds_until_closed", "read_line", "SilentTLSScenarios"]


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


class SilentTLSScenarios:
    """
    The scenarios smtpd and pop3d share, mixed into a C{TestCase} whose
    setUp starts a server with a plain listener (C{plain_port}) and an
    implicit-TLS one (C{tls_port}), a deadline of C{TIMEOUT} seconds, at
    most 6 sessions and 3 per address.  C{FULL_REPLY}: the answer to a
    client over the total limit; C{GREETING}: how a served client's
    greeting starts.
    """

    TIMEOUT = 1.0  # the shortest timeoutsmtpd there is (a whole number of seconds, at least 1)
    EARLY = 0.25  # a close at the deadline may be seen this much early (the clock starts before the connect returns)
    AT_ONCE = TIMEOUT / 2  # a refusal is closed sooner than this: well before the deadline
    SLACK = 2.0  # scheduling on a loaded machine
    WAIT = 15.0  # no wait in these tests is longer
    FULL_REPLY: bytes
    GREETING: bytes
    plain_port: int
    tls_port: int

    def assertClosedAtDeadline(self, took: float | None) -> None:
        self.assertIsNotNone(took, "still open")  # type: ignore[attr-defined]
        assert took is not None
        self.assertGreaterEqual(took, self.TIMEOUT - self.EARLY)  # type: ignore[attr-defined]
        self.assertLess(took, self.TIMEOUT + self.SLACK)  # type: ignore[attr-defined]

    def greeting_from(self, source: str) -> bytes:
        (s,) = open_silent(self.plain_port, 1, source)
        with s:
            return read_line(s)

    @defer.inlineCallbacks
    def test_silent_implicit_tls_client_closed_at_the_deadline(self):  # type: ignore[no-untyped-def]
        def run() -> list[float | None]:
            return seconds_until_closed(open_silent(self.tls_port, 1), self.WAIT)

        (took,) = yield threads.deferToThread(run)
        self.assertClosedAtDeadline(took)

    @defer.inlineCallbacks
    def test_over_limit_refusals_on_tls_are_closed_at_once(self):  # type: ignore[no-untyped-def]
        """3 silent TLS clients hold the address's slots; 30 more are refused and closed, not kept."""

        def run() -> tuple[list[float | None], list[float | None]]:
            start = time.monotonic()
            holders = open_silent(self.tls_port, 3)
            refused = open_silent(self.tls_port, 30)  # accepted after the holders: one listening socket, in order
            return seconds_until_closed(refused, self.WAIT), seconds_until_closed(holders, self.WAIT, start)

        refused, held = yield threads.deferToThread(run)
        self.assertEqual([t is not None and t < self.AT_ONCE for t in refused], [True] * 30)  # type: ignore[attr-defined]
        for took in held:
            self.assertClosedAtDeadline(took)

    @defer.inlineCallbacks
    def test_silent_tls_clients_give_their_slots_back(self):  # type: ignore[no-untyped-def]
        """Two addresses fill all 6 slots with silent TLS sockets: the plain port is refused, then served again."""

        def run() -> tuple[list[float | None], bytes, list[float | None], bytes]:
            start = time.monotonic()
            silent = open_silent(self.tls_port, 3, "127.0.0.2") + open_silent(self.tls_port, 3, "127.0.0.3")
            seventh = seconds_until_closed(open_silent(self.tls_port, 1, "127.0.0.5"), self.WAIT)  # refused
            full = self.greeting_from("127.0.0.4")
            times = seconds_until_closed(silent, self.WAIT, start)
            return seventh, full, times, self.greeting_from("127.0.0.4")

        seventh, full, times, later = yield threads.deferToThread(run)
        self.assertLess(seventh[0] or self.WAIT, self.AT_ONCE)  # type: ignore[attr-defined]
        self.assertEqual(full, self.FULL_REPLY)  # type: ignore[attr-defined]
        for took in times:
            self.assertClosedAtDeadline(took)
        self.assertTrue(later.startswith(self.GREETING), later)  # type: ignore[attr-defined]
