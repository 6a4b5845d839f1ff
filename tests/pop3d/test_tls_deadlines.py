"""
pop3d on real sockets with TLS: the deadline (--timeout) and the
connection-limit refusals close a connection whose TLS handshake never
finished, so its slot and descriptor come back.
"""

from __future__ import annotations

import os

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from pymta.control import ControlReader
from pymta.passwdfile import set_password
from pymta.pop3d.opener import MailboxOpener
from pymta.pop3d.service import build_pop3_service
from tests.pop3d.helpers import sample_maildir
from tests.silentclients import SilentTLSScenarios, open_silent, read_line, seconds_until_closed
from tests.smtpd.tlsutil import write_cert

TIMEOUT = SilentTLSScenarios.TIMEOUT  # pymta-pop3d --timeout
WAIT = SilentTLSScenarios.WAIT


class ImplicitTLSAndSTLS(SilentTLSScenarios, TestCase):
    """A plain and an C{ssl:} listener, timeout 1 s, at most 6 sessions, 3 per address."""

    timeout = 60
    FULL_REPLY = b"-ERR [SYS/TEMP] too many connections, try again later\r\n"
    GREETING = b"+OK <"

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
