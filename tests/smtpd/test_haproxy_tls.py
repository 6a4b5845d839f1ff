"""
smtpd behind C{haproxy:ssl:} on a real socket: Twisted's TLS layer does not
tell the protocol under the HAProxy wrapper that its handshake finished,
so the first decrypted bytes do; a pipelined message and QUIT then get
their 250 and 221 instead of an abort after C{354}; so does STARTTLS
behind C{haproxy:tcp:}.
"""

from __future__ import annotations

import os

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from pymta.control import ControlReader
from pymta.smtpd.service import build_smtpd_service
from tests.smtpd.helpers import MemorySink, make_root
from tests.smtpd.tlsutil import write_cert
from tests.tlsclient import pipeline_after_starttls, pipeline_over_tls

PROXY_HEADER = b"PROXY TCP4 127.0.0.2 127.0.0.1 1111 25\r\n"
MESSAGE = b"Subject: x\r\n\r\n" + (b"b" * 70 + b"\r\n") * 3000 + b".\r\n"
COMMANDS = b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n" + MESSAGE + b"QUIT\r\n"


class HAProxyOverTLS(TestCase):
    timeout = 30

    def setUp(self) -> None:
        root = make_root(self.mktemp())
        os.makedirs(os.path.join(root, "etc"))
        with open(os.path.join(root, "etc", "tcp.smtp"), "w") as f:
            f.write(':allow,RELAYCLIENT=""\n')
        pem = os.path.join(root, "control", "servercert.pem")
        write_cert(pem)
        with open(os.path.join(root, "control", "trustedproxies"), "w") as f:
            f.write("127.0.0.1\n")  # the test's client is the proxy
        self.sink = MemorySink()
        self.svc = build_smtpd_service(
            root, ControlReader(root), self.sink,
            [
                f"haproxy:ssl:0:interface=127.0.0.1:privateKey={pem}:certKey={pem}", "ssl:0:interface=127.0.0.1",
                "haproxy:tcp:0:interface=127.0.0.1",
            ], [],
            reactor=reactor, portal_checkers=[],
        )
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        self.haproxy_port, self.ssl_port, self.haproxy_tcp_port = [
            c._waitingForPort.result.getHost().port for c in self.svc if hasattr(c, "_waitingForPort")
        ]

    @defer.inlineCallbacks
    def test_pipelined_message_and_quit_get_their_replies(self):  # type: ignore[no-untyped-def]
        for port, header in ((self.ssl_port, b""), (self.haproxy_port, PROXY_HEADER)):
            replies = yield threads.deferToThread(pipeline_over_tls, port, COMMANDS, header)
            self.assertIn(b"250 ok", replies.partition(b"354 go ahead\r\n")[2], (port, replies[-200:]))  # queued
            self.assertTrue(replies.endswith(b"\r\n221 mx.example.org\r\n"), (port, replies[-200:]))
        self.assertEqual(len(self.sink.queued), 2)

    @defer.inlineCallbacks
    def test_starttls_behind_haproxy_tcp(self):  # type: ignore[no-untyped-def]
        before = PROXY_HEADER + b"EHLO x\r\nSTARTTLS\r\n"
        replies = yield threads.deferToThread(
            pipeline_after_starttls, self.haproxy_tcp_port, before, b"220 ready to start TLS\r\n", COMMANDS
        )
        self.assertIn(b"250 ok", replies.partition(b"354 go ahead\r\n")[2], replies[-200:])
        self.assertTrue(replies.endswith(b"\r\n221 mx.example.org\r\n"), replies[-200:])
        self.assertEqual(len(self.sink.queued), 1)
