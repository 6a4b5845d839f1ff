"""
pop3d on real sockets with TLS: the deadline (--timeout) and the
connection-limit refusals close a connection whose TLS handshake never
finished, so its slot and descriptor come back.
"""

from __future__ import annotations

import os
import time

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from pymta.control import ControlReader
from pymta.passwdfile import set_password
from pymta.pop3d.opener import MailboxOpener
from pymta.pop3d.service import build_pop3_service
from tests.pop3d.helpers import sample_maildir
from tests.silentclients import open_silent, read_line, seconds_until_closed
from tests.smtpd.tlsutil import write_cert

TIMEOUT = 2.0  # pymta-pop3d --timeout
SLACK = 2.0  # scheduling on a loaded machine
WAIT = 15.0  # no wait in these tests is longer


class ImplicitTLSAndSTLS(TestCase):
    """A plain and an C{ssl:} listener, timeout 2 s, at most 6 sessions, 3 per address."""

    timeout = 60

    def setUp(self) -> None:
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "control"))
        for name, value in (("concurrencypop3", "6"), ("concurrencypop3perip", "3")):
            with open(os.path.join(root, "control", name), "w") as f:
                f.write(value + "\n")
        write_cert(os.path.join(root, "control", "servercert.pem"))
        home = os.path.join(root, "home", "alice")
        sample_maildir(os.path.join(home, "Maildir"))
        uid = os.getuid() or 4242
        set_password(os.path.join(root, "users", "passwd"), "alice", "secret", uid, uid, home, scheme="PLAIN")
        self.svc = build_pop3_service(
            root, ControlReader(root), ["tcp:0:interface=127.0.0.1", "ssl:0:interface=127.0.0.1"], reactor=reactor,
            timeout=TIMEOUT, open_mailbox=MailboxOpener(reactor, euid=lambda: os.getuid() or 4242),
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

    @defer.inlineCallbacks
    def test_silent_pop3s_client_closed_at_the_deadline(self):  # type: ignore[no-untyped-def]
        def run() -> list[float | None]:
            return seconds_until_closed(open_silent(self.tls_port, 1), WAIT)

        (took,) = yield threads.deferToThread(run)
        self.assertClosedAtDeadline(took)

    @defer.inlineCallbacks
    def test_client_silent_after_stls_closed_at_the_deadline(self):  # type: ignore[no-untyped-def]
        def run() -> tuple[bytes, list[float | None]]:
            (s,) = open_silent(self.plain_port, 1)
            read_line(s)
            s.sendall(b"STLS\r\n")
            ready = read_line(s)
            return ready, seconds_until_closed([s], WAIT)

        ready, (took,) = yield threads.deferToThread(run)
        self.assertEqual(ready, b"+OK begin TLS negotiation\r\n")
        self.assertClosedAtDeadline(took)

    @defer.inlineCallbacks
    def test_over_limit_refusals_on_pop3s_are_closed_at_once(self):  # type: ignore[no-untyped-def]
        """3 silent POP3S clients hold the address's slots; 30 more are refused and closed, not kept."""

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
    def test_silent_pop3s_clients_give_their_slots_back(self):  # type: ignore[no-untyped-def]
        """Two addresses fill all 6 slots with silent POP3S sockets: port 110 is refused, then served again."""

        def greeting() -> bytes:
            (s,) = open_silent(self.plain_port, 1, "127.0.0.4")
            with s:
                return read_line(s)

        def run() -> tuple[bytes, list[float | None], bytes]:
            start = time.monotonic()
            silent = open_silent(self.tls_port, 3, "127.0.0.2") + open_silent(self.tls_port, 3, "127.0.0.3")
            seconds_until_closed(open_silent(self.tls_port, 1, "127.0.0.5"), WAIT)  # refused: all six accepted
            full = greeting()
            times = seconds_until_closed(silent, WAIT, start)
            return full, times, greeting()

        full, times, later = yield threads.deferToThread(run)
        self.assertEqual(full, b"-ERR [SYS/TEMP] too many connections, try again later\r\n")
        for took in times:
            self.assertClosedAtDeadline(took)
        self.assertTrue(later.startswith(b"+OK <"), later)
