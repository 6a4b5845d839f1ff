"""
QMTP in both directions through a running C{twistd pymta --qmtp}.

In: a QMTP client (written here, from the protocol) hands a message to
pymta's QMTP listener and it lands in a local Maildir; a relay attempt
from a client without RELAYCLIENT is refused (C{D}).  Out: a message to a
domain in control/qmtproutes is delivered over QMTP to Debian's
C{mailfront} (a QMTP server pymta did not write), run under C{tcpserver}
with its qmail backend and a QMAILQUEUE script that saves the envelope and
the message.  mailfront answers once per message where QMTP answers once
per recipient (its protocol-qmtp sends one response per package): pymta
takes that one reply as the first recipient's and defers the others when
the wait for their replies ends (control/timeoutremote), "Possible
duplicate!", as the test shows.  Debian has no QMTP client (nullmailer 2.2 ships only its smtp
and qmqp modules), so the incoming side's client is this test's own.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile

from twisted.trial import unittest

from pymta.queue.framing import NetstringParser, netstring
from tests.packages import ensure_program
from tests.test_end_to_end import free_port, init_root, start_listening, start_twistd, wait_for

QUEUE_SCRIPT = """#!/bin/sh
# qmail-queue's interface: the message on fd 0, the envelope on fd 1
n=$$
cat > {out}/$n.tmp && cat <&1 > {out}/$n.env && mv {out}/$n.tmp {out}/$n.msg
"""


def qmtp_send(port: int, body: bytes, sender: bytes, recipients: list[bytes], source: str = "127.0.0.1") -> list[bytes]:
    """One message over QMTP; the payloads of the reply netstrings, one per recipient."""
    with socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0)) as s:
        s.sendall(netstring(b"\n" + body) + netstring(sender) + netstring(b"".join(netstring(r) for r in recipients)))
        parser = NetstringParser(10000)
        replies: list[bytes] = []
        while len(replies) < len(recipients):
            reply = parser.next()
            if reply is not None:
                replies.append(reply)
                continue
            data = s.recv(4096)
            if not data:
                raise AssertionError(f"connection closed after {len(replies)} replies")
            parser.feed(data)
        return replies


class QMTPEndToEnd(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        base = tempfile.mkdtemp(prefix="pymta-qmtp-")
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, True)
        self.base = base
        self.root = os.path.join(base, "root")

    def mailfront(self) -> tuple[int, str]:
        """tcpserver running mailfront's QMTP front end on a free port, and the directory it queues into."""
        tcpserver = ensure_program("tcpserver", "ucspi-tcp")
        mailfront = ensure_program("mailfront", "mailfront")
        if tcpserver is None or mailfront is None:
            raise unittest.SkipTest("needs tcpserver (ucspi-tcp) and mailfront from Debian (install as root on Debian)")
        out = os.path.join(self.base, "mailfront-queue")
        os.mkdir(out)
        script = os.path.join(self.base, "qmail-queue")
        with open(script, "w") as f:
            f.write(QUEUE_SCRIPT.format(out=out))
        os.chmod(script, 0o755)
        port = free_port()
        errors = os.path.join(self.base, "mailfront.log")
        with open(errors, "w") as stderr:
            start_listening(self, [tcpserver, "-R", "-H", "127.0.0.1", str(port), mailfront, "qmtp", "qmail", "accept"],
                            "tcpserver", errors, [port], timeout=30, env=dict(os.environ, QMAILQUEUE=script),
                            stderr=stderr)
        return port, out

    def test_qmtp_both_ways(self) -> None:
        far_port, far_queue = self.mailfront()
        root = self.root
        init_root(root, "alice:secret")
        with open(os.path.join(root, "control", "qmtproutes"), "w") as f:
            f.write(f"far.example:127.0.0.1:{far_port}\n")
        with open(os.path.join(root, "etc", "tcp.smtp"), "w") as f:
            f.write('127.0.0.1:allow,RELAYCLIENT=""\n')
        with open(os.path.join(root, "control", "timeoutremote"), "w") as f:
            f.write("3\n")  # how long pymta waits for the replies mailfront does not send
        qmtp = free_port()
        log = os.path.join(root, "twistd.log")
        start_twistd(self, [os.path.join(os.path.dirname(sys.executable), "twistd")],
                     ["pymta", "--root", root, "--qmtp", f"tcp:{qmtp}:interface=127.0.0.1"], log, [qmtp])

        # in: to a local Maildir
        [reply] = qmtp_send(qmtp, b"Subject: in\n\nover QMTP\n", b"sender@far.example", [b"alice@test.example"])
        self.assertTrue(reply.startswith(b"Kok "), reply)
        maildir_new = os.path.join(root, "home", "alice", "Maildir", "new")
        [name] = wait_for(lambda: os.listdir(maildir_new), 60, "the Maildir delivery", log)
        with open(os.path.join(maildir_new, name), "rb") as f:
            delivered = f.read()
        self.assertIn(b"  by test.example with QMTP; ", delivered)
        self.assertIn(b"Return-Path: <sender@far.example>", delivered)
        self.assertTrue(delivered.endswith(b"Subject: in\n\nover QMTP\n"), delivered)

        # a relay attempt from a client without RELAYCLIENT
        replies = qmtp_send(qmtp, b"Subject: relay\n\nno\n", b"x@test.example", [b"alice@test.example", b"bob@far.example"],
                            source="127.0.0.2")
        self.assertTrue(replies[0].startswith(b"Kok "), replies)  # one reply per recipient, in order
        self.assertEqual(replies[1], b"Dsorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)")

        # out: RELAYCLIENT relays to far.example, which qmtproutes sends over QMTP to mailfront
        replies = qmtp_send(qmtp, b"Subject: out\n\nto mailfront\n", b"alice@test.example",
                            [b"bob@far.example", b"carol@far.example"])
        self.assertEqual([r[:3] for r in replies], [b"Kok"] * 2)
        [msg] = wait_for(lambda: [n for n in os.listdir(far_queue) if n.endswith(".msg")], 60,
                         "mailfront to queue the message", log)
        with open(os.path.join(far_queue, msg), "rb") as f:
            self.assertTrue(f.read().endswith(b"Subject: out\n\nto mailfront\n"))
        with open(os.path.join(far_queue, msg[:-4] + ".env"), "rb") as f:
            self.assertEqual(f.read(), b"Falice@test.example\0Tbob@far.example\0Tcarol@far.example\0\0")

        def logged() -> str:
            with open(log, encoding="utf-8", errors="replace") as f:
                return f.read()

        # mailfront's one reply is bob's; carol's never comes: deferred, not taken for a success
        wait_for(lambda: ": deferral: Connected_to_127.0.0.1_but_connection_died._Possible_duplicate!_(#4.4.2)/"
                 in logged(), 60, "carol's deferral", log)
        self.assertEqual(logged().count(": success: 127.0.0.1_accepted_message./Remote_host_said:_2.6.0_Accepted"), 1)
        self.assertEqual(logged().count(": deferral: "), 1)
