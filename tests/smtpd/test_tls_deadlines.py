"""
smtpd on real sockets with TLS: the deadline (timeoutsmtpd) and the
connection-limit refusals close a connection whose TLS handshake never
finished, so its slot and descriptor come back.
"""

from __future__ import annotations

import os

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from pymta.control import ControlReader
from pymta.smtpd.service import build_smtpd_service
from tests.silentclients import SilentTLSScenarios, open_silent, read_line, seconds_until_closed
from tests.smtpd.helpers import MemorySink, make_root
from tests.smtpd.tlsutil import write_cert

TIMEOUT = SilentTLSScenarios.TIMEOUT  # timeoutsmtpd
WAIT = SilentTLSScenarios.WAIT


class ImplicitTLSAndStartTLS(SilentTLSScenarios, TestCase):
    """Plain and C{ssl:} listeners, timeoutsmtpd 1, at most 6 sessions, 3 per address."""

    timeout = 60
    FULL_REPLY = b"421 too many connections, try again later (#4.3.2)\r\n"
    GREETING = b"220 mx.example.org ESMTP\r\n"

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
