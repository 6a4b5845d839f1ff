"""
smtpd on real sockets with TLS: the deadline (timeoutsmtpd) and the
connection-limit refusals close a connection whose TLS handshake never
finished, so its slot and descriptor come back.
"""

from __future__ import annotations

import os
import socket
import time

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from pymta.control import ControlReader
from pymta.smtpd.service import build_smtpd_service
from tests.silentclients import open_silent, read_line, seconds_until_closed
from tests.smtpd.helpers import MemorySink, make_root
from tests.smtpd.tlsutil import write_cert

TIMEOUT = 2.0  # timeoutsmtpd
SLACK = 2.0  # scheduling on a loaded machine
WAIT = 15.0  # no wait in these tests is longer


class ImplicitTLSAndStartTLS(TestCase):
    """Plain and C{ssl:} listeners, timeoutsmtpd 2, at most 6 sessions, 3 per address."""

    timeout = 60

    def setUp(self) -> None:
        self.root = make_root(
            self.mktemp(), timeoutsmtpd=str(int(TIMEOUT)), concurrencyincoming="6", concurrencyperip="3"
        )
        os.makedirs(os.path.join(self.root, "etc"))
        with open(os.path.join(self.root, "etc", "tcp.smtp"), "w") as f:
            f.write(":allow\n")
        write_cert(os.path.join(self.root, "control", "servercert.pem"))
        self.svc = build_smtpd_service(
            self.root, ControlReader(self.root), MemorySink(),
            ["tcp:0:interface=127.0.0.1", "ssl:0:interface=127.0.0.1"], [],
            reactor=reactor, portal_checkers=[],
        )
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        self.plain_port, self.tls_port = [
            child._waitingForPort.result.getHost().port for child in self.svc if hasattr(child, "_waitingForPort")
        ]

    def assertClosedAtDeadline(self, took: float | None) -> None:
        self.assertIsNotNone(took, "still open")
        assert took is not None
        self.assertGreaterEqual(took, TIMEOUT - 0.5)
        self.assertLess(took, TIMEOUT + SLACK)

    def greeting_from(self, source: str) -> bytes:
        with socket.socket() as s:
            s.bind((source, 0))
            s.settimeout(10)
            s.connect(("127.0.0.1", self.plain_port))
            return read_line(s)

    @defer.inlineCallbacks
    def test_silent_implicit_tls_client_closed_at_the_deadline(self):  # type: ignore[no-untyped-def]
        def run() -> list[float | None]:
            return seconds_until_closed(open_silent(self.tls_port, 1), WAIT)

        (took,) = yield threads.deferToThread(run)
        self.assertClosedAtDeadline(took)

    @defer.inlineCallbacks
    def test_client_silent_after_starttls_closed_at_the_deadline(self):  # type: ignore[no-untyped-def]
        def run() -> tuple[bytes, list[float | None]]:
            (s,) = open_silent(self.plain_port, 1)
            read_line(s)
            s.sendall(b"EHLO client.example\r\n")
            while not read_line(s).startswith(b"250 "):
                pass
            s.sendall(b"STARTTLS\r\n")
            ready = read_line(s)
            return ready, seconds_until_closed([s], WAIT)

        ready, (took,) = yield threads.deferToThread(run)
        self.assertEqual(ready, b"220 ready to start TLS\r\n")
        self.assertClosedAtDeadline(took)

    @defer.inlineCallbacks
    def test_over_limit_refusals_on_tls_are_closed_at_once(self):  # type: ignore[no-untyped-def]
        """3 silent TLS clients hold the address's slots; 30 more are refused and closed, not kept."""

        def run() -> tuple[list[float | None], list[float | None]]:
            start = time.monotonic()
            holders = open_silent(self.tls_port, 3)
            refused = open_silent(self.tls_port, 30)  # accepted after the holders: one listening socket, in order
            return seconds_until_closed(refused, WAIT), seconds_until_closed(holders, WAIT, start)

        refused, held = yield threads.deferToThread(run)
        self.assertEqual([t is not None and t < 1.0 for t in refused], [True] * 30)
        for took in held:
            self.assertClosedAtDeadline(took)

    @defer.inlineCallbacks
    def test_silent_tls_clients_give_their_slots_back(self):  # type: ignore[no-untyped-def]
        """Two addresses fill all 6 slots with silent TLS sockets: port 25 is refused, then served again."""

        def run() -> tuple[list[float | None], bytes, list[float | None], bytes]:
            start = time.monotonic()
            silent = open_silent(self.tls_port, 3, "127.0.0.2") + open_silent(self.tls_port, 3, "127.0.0.3")
            seventh = seconds_until_closed(open_silent(self.tls_port, 1, "127.0.0.5"), WAIT)  # refused: all accepted
            full = self.greeting_from("127.0.0.4")
            times = seconds_until_closed(silent, WAIT, start)
            return seventh, full, times, self.greeting_from("127.0.0.4")

        seventh, full, times, later = yield threads.deferToThread(run)
        self.assertLess(seventh[0] or WAIT, 1.0)
        self.assertEqual(full, b"421 too many connections, try again later (#4.3.2)\r\n")
        for took in times:
            self.assertClosedAtDeadline(took)
        self.assertEqual(later, b"220 mx.example.org ESMTP\r\n")
