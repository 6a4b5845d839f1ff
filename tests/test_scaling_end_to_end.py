"""
Issue 18's acceptance: the tiers on loopback, every part a real process.

Debian's haproxy (send-proxy-v2, health checks) is in front of two
front-ends, each a C{twistd pymta} with its own root and queue; a null
client (a root with only control/qmqpservers) injects through the
front-ends' QMQP listeners; Debian's dovecot-lmtpd holds the mailboxes,
reached over LMTP from both front-ends (L{tests.scaling} builds all of it).

  - Mail from every entry point (SMTP through HAProxy to each front-end,
    QMQP from the null client) lands in Dovecot, read back with doveadm.
  - Behind the proxy the client's address (127.0.0.2, 127.0.0.3) is what
    the Received line names and what etc/tcp.smtp judges: the proxy's own
    address may relay, the client may not; the client a rule denies gets
    no greeting.  A PROXY header sent straight to a front-end from an
    address not in control/trustedproxies is refused (the proxy listener's
    own end-to-end test, tests/test_haproxy_end_to_end.py, covers the
    same refusal for a lone front-end).
  - Under load from parallel SMTP clients, one front-end is SIGKILLed: the
    health checks mark it down and every session started after that
    succeeds on the other; the null client falls back to the second QMQP
    server.  The killed front-end is restarted on the same root, both
    queues drain, and every message a client got C{250} for is in Dovecot
    (copies counted: a delivery done but not yet recorded when the
    front-end died is made again, as qmail does).
"""

from __future__ import annotations

import os
import shutil
import smtplib
import socket
import tempfile
import time

from twisted.logger import Logger
from twisted.trial import unittest

from tests.dovecot import DovecotLMTP, missing
from tests.packages import ensure_program
from tests.proxyheaders import v2
from tests.scaling import (MAILBOX_DOMAIN, FrontEnd, HAProxy, SMTPLoad, committed_pending, delivered_tags, inject,
                           null_client)
from tests.test_end_to_end import free_port, wait_for
from tests.test_haproxy_end_to_end import received

log = Logger()

#: the proxy (127.0.0.1) may relay; 127.0.0.3 is denied; everybody else is an ordinary client
TCP_SMTP = '127.0.0.1:allow,RELAYCLIENT=""\n127.0.0.3:deny\n:allow\n'
BOB = f"bob@{MAILBOX_DOMAIN}"
CAROL = f"carol@{MAILBOX_DOMAIN}"
#: the load's bounds: sessions, seconds, parallel clients
LOAD_SESSIONS = 400
LOAD_SECONDS = 30.0
LOAD_CLIENTS = 4
#: sessions that must succeed after the health checks marked the killed front-end down
AFTER_DOWN = 10


class ScalingEndToEnd(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        haproxy = ensure_program("haproxy", "haproxy")
        if haproxy is None:
            raise unittest.SkipTest("needs haproxy from Debian (install as root on Debian)")
        reason = missing()
        if reason is not None:
            raise unittest.SkipTest(reason)
        base = tempfile.mkdtemp(prefix="pymta-tiers-")  # short: unix socket paths are limited
        os.chmod(base, 0o755)
        if not os.environ.get("PYMTA_SCALING_KEEP"):  # set it to look at the roots and logs afterwards
            self.addCleanup(shutil.rmtree, base, True)
        log.info("scaling: roots under {base}", base=base)
        os.mkdir(os.path.join(base, "dovecot"))
        self.dovecot = DovecotLMTP(os.path.join(base, "dovecot"), ["bob", "carol"], free_port())
        self.dovecot.start()
        self.addCleanup(self.dovecot.stop)
        self.fe1 = FrontEnd(base, "fe1", self.dovecot, TCP_SMTP)
        self.fe2 = FrontEnd(base, "fe2", self.dovecot, TCP_SMTP)
        self.fe1.start(self)
        self.fe2.start(self)
        self.proxy = HAProxy(self, haproxy, base, [("fe1", self.fe1.smtp), ("fe2", self.fe2.smtp)])
        self.app = null_client(base, "app", [self.fe1.qmqp, self.fe2.qmqp])
        self.logs = f"{self.fe1.log} / {self.fe2.log} / {self.proxy.errors}"

    def trouble(self, acked: set[str]) -> str:
        """What is left: each queue's pending count, the missing tags, each front-end's delivery lines that are no success."""
        lines = [f"{front.name}: {committed_pending(front.root)} pending" for front in (self.fe1, self.fe2)]
        lines.append(f"not in Dovecot: {sorted(acked - set(delivered_tags(self.dovecot, 'bob')))}")
        for front in (self.fe1, self.fe2):
            lines += [f"{front.name}: {line}" for line in front.logged().splitlines()
                      if ": deferral: " in line or ": failure: " in line or "rror" in line][:10]
        return "\n".join(lines)

    def both_up(self) -> None:
        wait_for(lambda: self.proxy.status() == {"fe1": "UP", "fe2": "UP"}, 30, "both front-ends UP in HAProxy")

    def either_logged(self, text: str) -> bool:
        return text in self.fe1.logged() or text in self.fe2.logged()

    def test_every_entry_point_and_a_killed_front_end(self) -> None:
        self.both_up()
        self.check_entry_points()
        self.check_killed_front_end()

    def check_entry_points(self) -> None:
        # SMTP through HAProxy from 127.0.0.2: round robin reaches both; relay refused although the proxy may relay
        for n in range(4):
            with smtplib.SMTP("127.0.0.1", self.proxy.port, timeout=30, source_address=("127.0.0.2", 0)) as client:
                client.ehlo("client.example")
                client.mail("sender@client.example")
                code, text = client.rcpt("someone@far.example")
                self.assertEqual(code, 553, text)
                self.assertEqual(client.rcpt(BOB)[0], 250)
                message = f"Subject: entry {n}\r\nX-Scale-Tag: entry-{n}\r\n\r\nthrough haproxy\r\n"
                self.assertEqual(client.data(message.encode())[0], 250)
        for front in (self.fe1, self.fe2):
            self.assertIn("smtpd: ok 127.0.0.2 -> 127.0.0.1", front.logged(), front.name)

        # 127.0.0.3 behind the proxy: its deny rule applies, no greeting
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=30,
                                      source_address=("127.0.0.3", 0)) as s:
            self.assertEqual(received(s), b"")
        wait_for(lambda: self.either_logged("smtpd: deny 127.0.0.3 (tcp.smtp line 2)"), 30, "the deny line", self.logs)

        # a PROXY header straight to a front-end from an address that is no trusted proxy: refused
        try:
            with socket.create_connection(("127.0.0.1", self.fe1.smtp), timeout=30,
                                          source_address=("127.0.0.4", 0)) as s:
                s.sendall(v2("203.0.113.9", "127.0.0.1", 40000, 25) + b"EHLO x\r\n")
                self.assertEqual(received(s), b"")
        except ConnectionResetError:
            pass  # aborted before connect() or send returned: refused all the same (the log line below)
        wait_for(lambda: "proxy: refused 127.0.0.4: not in control/trustedproxies" in self.fe1.logged(), 30,
                 "the refusal", self.fe1.log)

        # QMQP from the null client (nothing kept there)
        result = inject(self.app, CAROL, b"Subject: from the app\nX-Scale-Tag: qmqp-1\n\nnull client\n")
        self.assertEqual((result.returncode, result.stderr), (0, b""))
        self.assertEqual(os.listdir(self.app), ["control"])

        # all in Dovecot, read by doveadm; the Received lines name the client and each front-end
        wanted = {f"entry-{n}" for n in range(4)}
        wait_for(lambda: wanted <= set(delivered_tags(self.dovecot, "bob")), 60, "the SMTP entries in Dovecot",
                 self.logs)
        wait_for(lambda: "qmqp-1" in delivered_tags(self.dovecot, "carol"), 60, "the QMQP entry in Dovecot",
                 self.logs)
        bob = self.dovecot.fetch("bob", "hdr")
        self.assertEqual(bob.count("Received: from unknown (HELO client.example) (127.0.0.2)\n"), 4)
        self.assertIn("  by fe1.example with SMTP; ", bob)
        self.assertIn("  by fe2.example with SMTP; ", bob)
        self.assertNotIn("(127.0.0.1)\n  by fe", bob)
        carol = self.dovecot.fetch("carol", "hdr")
        self.assertIn("Received: from unknown (127.0.0.1)\n  by fe1.example with QMQP; ", carol)

    def check_killed_front_end(self) -> None:
        load = SMTPLoad(self.proxy.port, BOB, threads=LOAD_CLIENTS, limit=LOAD_SESSIONS, seconds=LOAD_SECONDS)
        self.addCleanup(load.stop)
        load.start()
        wait_for(lambda: len(load.acknowledged()) >= 8, 30, "the first acknowledged messages under load", self.logs)
        killed = time.monotonic()
        self.fe1.kill()
        left_on_fe1 = committed_pending(self.fe1.root)  # acknowledged by fe1, waiting for it on its disk
        wait_for(lambda: self.proxy.status().get("fe1") == "DOWN", 15, "HAProxy marking fe1 down", self.proxy.errors)
        down = time.monotonic()

        # the null client's first QMQP server is gone: the second takes the message
        result = inject(self.app, CAROL, b"Subject: from the app\nX-Scale-Tag: qmqp-2\n\nwhile fe1 is down\n")
        self.assertEqual((result.returncode, result.stderr), (0, b""))

        def after_down() -> list:
            return [s for s in list(load.sessions) if s.began >= down and s.ended]

        wait_for(lambda: len(after_down()) >= AFTER_DOWN, 30, "sessions after fe1 went down", self.logs)
        load.stop()
        failed_after = [(s.tag, s.error) for s in after_down() if not s.acknowledged]
        self.assertEqual(failed_after, [], "sessions started after HAProxy marked fe1 down must succeed")
        in_outage = [s for s in load.sessions if killed - 5 <= s.began < down and not s.acknowledged]

        # fe1 back on the same root: its health checks pass again, its queue is delivered, both queues drain
        self.fe1.start(self)
        # answered checks also mean every service has started: from then on SIGALRM (a queue run) is handled
        wait_for(lambda: self.proxy.status() == {"fe1": "UP", "fe2": "UP"}, 30, "fe1 UP again in HAProxy",
                 self.proxy.errors)
        acked = {s.tag for s in load.acknowledged()}
        last_flush = 0.0

        def drained() -> bool:
            nonlocal last_flush
            if time.monotonic() - last_flush > 3:  # a queue run now, not at the retry schedule
                self.fe1.flush()
                self.fe2.flush()
                last_flush = time.monotonic()
            return (committed_pending(self.fe1.root) == 0 and committed_pending(self.fe2.root) == 0
                    and acked <= set(delivered_tags(self.dovecot, "bob")))

        try:
            wait_for(drained, 90, "both queues empty and every acknowledged message in Dovecot")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.trouble(acked)}") from None
        copies = delivered_tags(self.dovecot, "bob")
        missing_ones = sorted(acked - set(copies))
        self.assertEqual(missing_ones, [])
        self.assertIn("qmqp-2", delivered_tags(self.dovecot, "carol"))
        self.assertIn("  by fe2.example with QMQP; ", self.dovecot.fetch("carol", "hdr"))
        duplicates = {tag: n for tag, n in copies.items() if n > 1}
        unacknowledged = sorted(tag for tag in copies if tag.startswith("load-") and tag not in acked)
        log.info("scaling: {sessions} sessions, {acked} acknowledged, {left} left in fe1's queue at the kill, "
                 "{failed} failed around the kill, "
                 "{dups} delivered twice {dup_tags}, {unacked} delivered without a 250 {unacked_tags}",
                 sessions=len(load.sessions), acked=len(acked), left=left_on_fe1, failed=len(in_outage), dups=len(duplicates),
                 dup_tags=duplicates, unacked=len(unacknowledged), unacked_tags=unacknowledged)
        self.assertGreater(len(acked), 8 + AFTER_DOWN - 1)
