"""DNSBL through the real resolver (dnspython on a thread pool) against a twisted.names authority on 127.0.0.1."""

from __future__ import annotations

import socket

from twisted.internet import defer, reactor, threads
from twisted.names import dns as tdns
from twisted.trial.unittest import TestCase

from pymta.control import ControlReader
from pymta.dns import DNSResolver
from pymta.smtpd.service import build_smtpd_service
from tests.remote.dnsserver import DNSTestServer
from tests.smtpd.helpers import MemorySink, make_root


class LiveDNSBL(TestCase):
    timeout = 60

    def start(self, rbls: str):  # type: ignore[no-untyped-def]
        server = DNSTestServer(b"bl.test", {b"1.0.0.127.bl.test": [tdns.Record_TXT(b"listed: see https://bl.test/")]})
        self.addCleanup(server.stop)
        resolver = DNSResolver(reactor, resolver=server.dnspython_resolver(), lifetime=2.0)
        root = make_root(self.mktemp(), rbls=rbls)
        svc = build_smtpd_service(
            root, ControlReader(root), MemorySink(), ["tcp:0:interface=127.0.0.1"], [], reactor=reactor,
            portal_checkers=[], resolver=resolver,
        )
        svc.startService()
        self.addCleanup(svc.stopService)
        return next(iter(svc))._waitingForPort.result.getHost().port

    @staticmethod
    def talk(port: int) -> list[bytes]:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nQUIT\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return [line for line in data.split(b"\r\n") if line]

    @defer.inlineCallbacks
    def test_listed_client_permanent(self):  # type: ignore[no-untyped-def]
        port = self.start("bl.test:permanent")
        replies = yield threads.deferToThread(self.talk, port)
        self.assertEqual(
            replies,
            [b"220 rblsmtpd.local", b"250 rblsmtpd.local", b"250 rblsmtpd.local",
             b"553 listed: see https://bl.test/", b"221 rblsmtpd.local"],
        )

    @defer.inlineCallbacks
    def test_unlisted_zone_lets_client_through(self):  # type: ignore[no-untyped-def]
        port = self.start("other.bl.test")
        replies = yield threads.deferToThread(self.talk, port)
        self.assertEqual(replies[0], b"220 mx.example.org ESMTP")
        self.assertEqual(replies[-1], b"221 mx.example.org")
