"""
smtpd on C{haproxy:ssl:PORT} (implicit TLS with pymta's certificate) on a
real socket: the PROXY header comes in clear before the TLS handshake, as
HAProxy in TCP mode sends it, and the session sees the client it names.
"""

from __future__ import annotations

import os
import socket

from twisted.internet import defer, reactor, threads
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from pymta.control import ControlReader
from pymta.smtpd.service import build_smtpd_service
from tests.proxyheaders import v1
from tests.smtpd.helpers import MemorySink, make_root
from tests.smtpd.tlsutil import write_cert
from tests.tlsclient import _context, _send_and_read


def header_then_tls(port: int, header: bytes, commands: bytes) -> bytes:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.sendall(header)
    return _send_and_read(_context().wrap_socket(raw), commands, 10.0)


class ImplicitTLSBehindProxy(TestCase):
    timeout = 30

    def setUp(self) -> None:
        root = make_root(self.mktemp(), trustedproxies="127.0.0.1")
        write_cert(os.path.join(root, "control", "servercert.pem"))
        self.svc = build_smtpd_service(root, ControlReader(root), MemorySink(), ["haproxy:ssl:0:interface=127.0.0.1"],
                                       [], reactor=reactor, portal_checkers=[])
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        [self.port] = [c._waitingForPort.result.getHost().port for c in self.svc if hasattr(c, "_waitingForPort")]
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    @defer.inlineCallbacks
    def test_header_before_the_handshake(self):  # type: ignore[no-untyped-def]
        replies = yield threads.deferToThread(header_then_tls, self.port, v1("192.0.2.44", "127.0.0.1"), b"QUIT\r\n")
        self.assertTrue(replies.startswith(b"220 mx.example.org ESMTP\r\n"), replies)
        self.assertTrue(replies.endswith(b"221 mx.example.org\r\n"), replies)
        self.assertIn("smtpd: ok 192.0.2.44 -> 127.0.0.1", [formatEvent(e) for e in self.events])
