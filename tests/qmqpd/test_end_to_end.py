"""
QMQP between a null client and a running C{twistd pymta --qmqp}: C{pymta
inject} in a second root with only control/qmqpservers (no queue, no
pymta-send) hands a message to the server, which delivers it to a local
Maildir; a client tcp.qmqp does not list is refused; with no server
answering, inject exits 111 and delivers nothing (the caller keeps the
message).  C{twistd pymta-smtpd} on a null client answers C{250} to an
SMTP client once the QMQP server has said C{K}, and keeps no queue.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile

from twisted.trial import unittest

from pymta.queue.framing import netstring
from tests.test_end_to_end import SRC, free_port, start_twistd, wait_for


class QMQPEndToEnd(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        base = tempfile.mkdtemp(prefix="pymta-qmqp-")
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, True)
        self.base = base

    def null_client(self, name: str, servers: str) -> str:
        """A root that is only a null client: control/me and control/qmqpservers."""
        root = os.path.join(self.base, name)
        os.makedirs(os.path.join(root, "control"))
        for file, text in (("me", "app.example"), ("qmqpservers", servers)):
            with open(os.path.join(root, "control", file), "w") as f:
                f.write(text + "\n")
        return root

    def inject(self, root: str, message: bytes) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pymta.cli.main", "inject", "--root", root, "-f", "app@app.example",
                               "alice@test.example"], input=message, capture_output=True, timeout=120, cwd=SRC,
                              env={**os.environ, "USER": "app"})

    def start_server(self) -> tuple[str, int, str]:
        """A running C{twistd pymta --qmqp} whose tcp.qmqp allows 127.0.0.1: its root, port and log."""
        root = os.path.join(self.base, "server")
        init = [root, "--me", "test.example", "--user", "alice:secret"]
        if os.getuid() == 0:
            init += ["--mail-uid", "4242:4242"]
        subprocess.run([sys.executable, "-m", "pymta.cli.main", "init", *init], check=True, cwd=SRC,
                       stdout=subprocess.DEVNULL)
        with open(os.path.join(root, "etc", "tcp.qmqp"), "w") as f:
            f.write("127.0.0.1:allow\n")
        qmqp = free_port()
        log = os.path.join(root, "twistd.log")
        start_twistd(self, [os.path.join(os.path.dirname(sys.executable), "twistd")],
                     ["pymta", "--root", root, "--qmqp", f"tcp:{qmqp}:interface=127.0.0.1"], log, [qmqp])
        return root, qmqp, log

    def test_null_client_to_qmqp_server(self) -> None:
        root, qmqp, log = self.start_server()
        # the first server listed does not answer: the second takes the message
        client = self.null_client("app", f"127.0.0.1:{free_port()}\n127.0.0.1:{qmqp}")
        result = self.inject(client, b"Subject: via QMQP\n\nfrom a null client\n")
        self.assertEqual((result.returncode, result.stderr), (0, b""))
        self.assertEqual(sorted(os.listdir(client)), ["control"])  # nothing kept on the null client
        maildir_new = os.path.join(root, "home", "alice", "Maildir", "new")
        [name] = wait_for(lambda: os.listdir(maildir_new), 60, "the Maildir delivery", log)
        with open(os.path.join(maildir_new, name), "rb") as f:
            delivered = f.read()
        self.assertIn(b"Received: from unknown (127.0.0.1)\n  by test.example with QMQP; ", delivered)
        self.assertIn(b"Return-Path: <app@app.example>", delivered)
        self.assertIn(b"Subject: via QMQP\n", delivered)
        self.assertTrue(delivered.endswith(b"\n\nfrom a null client\n"), delivered)

        # a client tcp.qmqp does not list: closed without a reply, nothing queued
        try:
            refused = socket.create_connection(("127.0.0.1", qmqp), timeout=30, source_address=("127.0.0.2", 0))
        except ConnectionResetError:
            refused = None  # aborted before connect() returned: refused all the same (the log line below)
        if refused is not None:
            with refused as s:
                try:
                    s.sendall(netstring(netstring(b"Subject: no\n\n") + netstring(b"") + netstring(b"alice@test.example")))
                except OSError:
                    pass  # already closed
                try:
                    self.assertEqual(s.recv(100), b"")
                except ConnectionResetError:
                    pass  # closed by an abort: refused all the same
        def logged() -> str:
            with open(log, encoding="utf-8", errors="replace") as f:
                return f.read()

        wait_for(lambda: "qmqpd: deny 127.0.0.2 (tcp.qmqp line 0)" in logged(), 30, "the refusal in the log", log)

        # no server answering: exit 111, the caller still has the message, nothing is delivered
        dead = self.null_client("dead", f"127.0.0.1:{free_port()}")
        result = self.inject(dead, b"Subject: lost?\n\nno\n")
        self.assertEqual(result.returncode, 111, result.stderr)
        self.assertIn(b"connection to mail server rejected (#4.4.1)", result.stderr)
        self.assertEqual(len(os.listdir(maildir_new)), 1)

    def test_pymta_smtpd_on_a_null_client_says_250_after_the_servers_k(self) -> None:
        root, qmqp, log = self.start_server()
        client = self.null_client("app", f"127.0.0.1:{qmqp}")
        run = os.path.join(client, "run")
        os.mkdir(run)
        if os.getuid() == 0:
            os.chown(run, 4242, 4242)  # the account pymta-smtpd runs as
            os.chmod(client, 0o755)
        smtp = free_port()
        client_log = os.path.join(client, "twistd.log")
        start_twistd(self, [os.path.join(os.path.dirname(sys.executable), "twistd")],
                     ["pymta-smtpd", "--root", client, "--listen", f"tcp:{smtp}:interface=127.0.0.1"], client_log, [smtp])
        with smtplib.SMTP("127.0.0.1", smtp, timeout=60) as s:
            # sendmail raises unless every reply is 2xx: the 250 after DATA came after the server's K
            refused = s.sendmail("app@app.example", ["alice@test.example"],
                                 b"Subject: via pymta-smtpd\r\n\r\nthrough a null client\r\n")
            self.assertEqual(refused, {})
        maildir_new = os.path.join(root, "home", "alice", "Maildir", "new")
        [name] = wait_for(lambda: os.listdir(maildir_new), 60, "the Maildir delivery", log)
        with open(os.path.join(maildir_new, name), "rb") as f:
            delivered = f.read()
        self.assertIn(b"  by app.example with SMTP; ", delivered)  # the null client's smtpd
        self.assertIn(b"  by test.example with QMQP; ", delivered)  # the server's
        self.assertTrue(delivered.endswith(b"Subject: via pymta-smtpd\n\nthrough a null client\n"), delivered)
        self.assertEqual(sorted(os.listdir(client)), ["control", "run", "twistd.log"])  # no queue there
