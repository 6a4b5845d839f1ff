"""
pop3d on a real C{ssl:} socket: a message downloaded with a pipelined
C{RETR 1}, C{DELE 1}, C{QUIT} reaches a client that stops reading for
longer than the close grace, although QUIT has already deleted it: after a
complete reply the connection drains while its output moves, and is
aborted only after the session timeout without progress.  The service's
close grace is shortened (0.5 s instead of 5 s), so the stall is too.
"""

from __future__ import annotations

import glob
import os
import time

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from pymta.control import ControlReader
from pymta.passwdfile import set_password
from pymta.pop3d.opener import MailboxOpener
from pymta.pop3d.service import build_pop3_service
from tests.pop3d.helpers import make_maildir, put_message
from tests.smtpd.tlsutil import write_cert
from tests.tlsclient import pipeline_over_tls

TIMEOUT = 30.0  # pymta-pop3d --timeout: longer than the stall
CLOSE_GRACE = 0.5  # the server looks at a closing connection's output this often
STALL = CLOSE_GRACE * 3  # the client reads nothing this long after sending QUIT: the server looks twice or more
WAIT = 20.0  # no read waits longer


def download_with_a_stall(port: int) -> bytes:
    """Pipeline a download and QUIT over TLS, stall, then read everything."""
    return pipeline_over_tls(
        port, b"USER alice\r\nPASS secret\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n", wait=WAIT, stall=STALL,
        receive_buffer=16384,  # the server's side holds most of the message
    )


class DownloadThenQuit(TestCase):
    timeout = 60

    def setUp(self) -> None:
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "control"))
        home = os.path.join(root, "home", "alice")
        self.maildir = os.path.join(home, "Maildir")
        make_maildir(self.maildir)
        self.body = b"Subject: big\n\n" + (b"x" * 76 + b"\n") * 30000  # about 2.3 MB
        put_message(self.maildir, "1000.A.host", self.body, mtime=time.time() - 100)
        uid = os.getuid() or 4242
        set_password(os.path.join(root, "users", "passwd"), "alice", "secret", uid, uid, home, scheme="PLAIN")
        write_cert(os.path.join(root, "control", "servercert.pem"))
        self.svc = build_pop3_service(
            root, ControlReader(root), ["ssl:0:interface=127.0.0.1"], reactor=reactor,
            allow_plaintext=True, timeout=TIMEOUT, close_grace=CLOSE_GRACE, open_mailbox=MailboxOpener(reactor, euid=lambda: os.getuid() or 4242),
        )
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        self.port = [c._waitingForPort.result.getHost().port for c in self.svc if hasattr(c, "_waitingForPort")][0]

    @defer.inlineCallbacks
    def test_client_stalling_after_quit_gets_the_whole_message(self):  # type: ignore[no-untyped-def]
        got = yield threads.deferToThread(download_with_a_stall, self.port)
        self.assertEqual(glob.glob(os.path.join(self.maildir, "*", "*")), [], "QUIT did not delete")
        self.assertTrue(got.endswith(b"\r\n.\r\n+OK \r\n+OK \r\n"), got[-120:])
        lines = self.body.count(b"\n")
        self.assertEqual(got.count(b"x" * 76 + b"\r\n"), lines - 2)
