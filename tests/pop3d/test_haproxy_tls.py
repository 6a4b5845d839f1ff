"""
pop3d behind C{haproxy:ssl:} on a real socket: the first decrypted bytes end
the TLS handshake for the closer (Twisted does not pass
C{handshakeCompleted} through the HAProxy wrapper), so pipelined commands
and QUIT get all their replies instead of an abort at QUIT.
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
from tests.smtpd.tlsutil import write_cert
from tests.tlsclient import pipeline_over_tls

PROXY_HEADER = b"PROXY TCP4 127.0.0.2 127.0.0.1 1111 110\r\n"
COMMANDS = b"USER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nRETR 1\r\nQUIT\r\n"


class HAProxyOverTLS(TestCase):
    timeout = 30

    def setUp(self) -> None:
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "control"))
        pem = os.path.join(root, "control", "servercert.pem")
        write_cert(pem)
        with open(os.path.join(root, "control", "trustedproxies"), "w") as f:
            f.write("127.0.0.1\n")  # the test's client is the proxy
        home = os.path.join(root, "home", "alice")
        sample_maildir(os.path.join(home, "Maildir"))
        uid = os.getuid() or 4242
        set_password(os.path.join(root, "users", "passwd"), "alice", "secret", uid, uid, home, scheme="PLAIN")
        self.svc = build_pop3_service(
            root, ControlReader(root),
            [f"haproxy:ssl:0:interface=127.0.0.1:privateKey={pem}:certKey={pem}", "ssl:0:interface=127.0.0.1"],
            reactor=reactor, timeout=10, open_mailbox=MailboxOpener(reactor, euid=lambda: os.getuid() or 4242),
        )
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        self.haproxy_port, self.ssl_port = [
            c._waitingForPort.result.getHost().port for c in self.svc if hasattr(c, "_waitingForPort")
        ]

    @defer.inlineCallbacks
    def test_pipelined_commands_and_quit_get_their_replies(self):  # type: ignore[no-untyped-def]
        answers = []
        for port, header in ((self.ssl_port, b""), (self.haproxy_port, PROXY_HEADER)):
            replies = yield threads.deferToThread(pipeline_over_tls, port, COMMANDS, header)
            self.assertTrue(replies.endswith(b"\r\n.\r\n+OK \r\n"), (port, replies[-200:]))
            answers.append(replies.split(b"\r\n", 1)[1])  # after the greeting (its timestamp differs)
        self.assertEqual(answers[0], answers[1])
