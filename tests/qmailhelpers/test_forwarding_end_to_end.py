"""
fastforward and dot-forward end to end: C{twistd pymta} as a real process,
mail in over SMTP, and the result read from the mailboxes, the program
output, an SMTP sink behind C{control/smtproutes} and the qmail-send log.

- aliases: C{ROOT/etc/aliases} compiled by C{pymta newaliases},
  C{ROOT/alias/.qmail-default} holding C{| fastforward -d ...}: an alias to
  a local and a remote address, a list through C{:include:} with an owner
  (the forwarded copy's envelope sender), an alias to a program (run as the
  alias user), and an unknown alias bounced to the sender;
- C{.forward}: C{control/defaultdelivery} C{|dot-forward .forward} then
  C{./Maildir/} (qmail's documented setup): an address, a C{|program}, a
  C{/file} and C{\\alice} (the message also reaches her Maildir); a second
  file through a C{.qmail-EXT} line, without direct delivery (exit 99: the
  next line is skipped).
"""

from __future__ import annotations

import os
import re
import socketserver
import subprocess
import sys
import threading

from tests.qmailhelpers.test_end_to_end import HelpersFixture
from tests.test_end_to_end import SRC, SinkHandler, wait_for


class ForwardingEndToEndTests(HelpersFixture):
    def setUp(self) -> None:
        super().setUp()
        self.sink = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SinkHandler)
        self.sink.daemon_threads = True
        self.sink.messages = []  # type: ignore[attr-defined]  # an attribute SinkHandler appends to
        threading.Thread(target=self.sink.serve_forever, daemon=True).start()
        self.addCleanup(self.sink.server_close)
        self.addCleanup(self.sink.shutdown)
        with open(os.path.join(self.root, "control", "smtproutes"), "w") as f:
            f.write(f"remote.example:127.0.0.1:{self.sink.server_address[1]}\n")
        self.alias = os.path.join(self.root, "alias")
        for name in ("fwd", "cond", "rest"):
            self.dotqmail(name, f"./{name}/\n")

    def write_as_owner(self, path: str, text: str) -> None:
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        if self.owner:
            os.chown(path, *self.owner)

    def newaliases(self) -> str:
        done = subprocess.run([sys.executable, "-m", "pymta.cli.main", "newaliases", "--root", self.root], cwd=SRC,
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stdout

    def test_fastforward_aliases(self) -> None:
        etc = os.path.join(self.root, "etc")
        os.makedirs(etc, exist_ok=True)
        members = os.path.join(etc, "ffmembers")
        self.write_as_owner(members, "# the list\nalice-rest, far2@remote.example\n")
        self.write_as_owner(os.path.join(etc, "aliases"),
                            "# aliases of the test\n"
                            "ffteam: alice-fwd,\n"
                            "   Far Away <far@remote.example>\n"
                            f"fflist: :include:{members}\n"
                            "owner-fflist: alice-cond\n"
                            'ffprog: "|cat > ffprog.out; echo $(id -u) >> ffprog.out"\n')
        self.assertIn("4 aliases compiled into ", self.newaliases())
        self.write_as_owner(os.path.join(self.alias, ".qmail-default"),
                            f"| fastforward -d {os.path.join(etc, 'aliases.idx')}\n")
        self.start()
        self.send("ffteam@test.example", "to the team", sender="sender@remote.example")
        self.send("fflist@test.example", "to the list", sender="sender@remote.example")
        self.send("ffprog@test.example", "to the program", sender="sender@remote.example")
        self.send("ffnosuch@test.example", "to nobody")

        # a local and a remote target, both from the original sender, with the alias's Delivered-To line
        [team] = self.maildir("fwd", 1)
        self.assertRegex(team, rb"^Return-Path: <sender@remote.example>\nDelivered-To: alice-fwd@test.example\n"
                               rb"Received: \(pymta \d+ invoked by uid %d\); [^\n]*\n"
                               rb"Delivered-To: ffteam@test.example\n" % self.uid())
        wait_for(lambda: len(self.sink.messages) >= 2, 60, "two remote deliveries", self.log)
        remote = {m["rcpt"][0]: m for m in self.sink.messages}
        self.assertEqual(remote["RCPT TO:<far@remote.example>"]["from"], "MAIL FROM:<sender@remote.example>")
        self.assertIn(b"Delivered-To: ffteam@test.example\r\n", remote["RCPT TO:<far@remote.example>"]["data"])
        # the :include: list: completed addresses, sent from the list's owner
        [member] = self.maildir("rest", 1)
        self.assertRegex(member, rb"^Return-Path: <owner-fflist@test.example>\nDelivered-To: alice-rest@test.example\n")
        self.assertIn(b"body of to the list", member)
        self.assertEqual(remote["RCPT TO:<far2@remote.example>"]["from"], "MAIL FROM:<owner-fflist@test.example>")
        # the program: run as the alias user in the alias home, the message after From_, Return-Path, Delivered-To
        out = os.path.join(self.alias, "ffprog.out")
        wait_for(lambda: os.path.exists(out) and b"\n%d\n" % self.uid() in open(out, "rb").read(), 60,
                 "the alias program", self.log)
        with open(out, "rb") as f:
            lines = f.read().split(b"\n")
        self.assertTrue(lines[0].startswith(b"From sender@remote.example "), lines[0])
        self.assertEqual(lines[1:3], [b"Return-Path: <sender@remote.example>", b"Delivered-To: ffprog@test.example"])
        # the unknown alias: bounced to the sender with fastforward's text
        [bounce] = self.maildir("bounces", 1)
        self.assertIn(b"<ffnosuch@test.example>:\nSorry, no mailbox here by that name. (#5.1.1)", bounce)

        # four messages in, two forwarded copies (team, list), one bounce
        wait_for(lambda: self.logged().count("end msg ") >= 7, 60, "every message to finish", self.log)
        text = self.logged()
        self.assertEqual(len(re.findall(r": success: fastforward:_qp_\d+/did_0\+0\+1/", text)), 2)
        self.assertEqual(len(re.findall(r": success: did_0\+0\+1/", text)), 1)
        self.assertIn(": failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)", text)
        self.assertNotIn(": deferral: ", text)

    def test_dot_forward(self) -> None:
        with open(os.path.join(self.root, "control", "defaultdelivery"), "w") as f:
            f.write("|dot-forward .forward\n./Maildir/\n")
        mbox = os.path.join(self.home, "forward.mbox")
        self.write(".forward", "# alice's forwarding\n"
                               f'\\alice, alice-fwd, "|cat > dotprog.out", {mbox}\n')
        self.write(".forward-away", "Alice Away <alice-cond@test.example>\n")
        self.dotqmail("away", "|dot-forward .forward-away\n./rest/\n")
        self.start()
        self.send("alice@test.example", "to alice", sender="sender@remote.example")
        self.send("alice-away@test.example", "to alice away", sender="sender@remote.example")

        # \alice: the message is delivered to her Maildir too (dot-forward exits 0)
        [kept] = self.maildir("Maildir", 1)
        self.assertRegex(kept, rb"^Return-Path: <sender@remote.example>\nDelivered-To: alice@test.example\n")
        [forwarded] = self.maildir("fwd", 1)
        self.assertRegex(forwarded, rb"^Return-Path: <sender@remote.example>\nDelivered-To: alice-fwd@test.example\n"
                                    rb"Received: \(pymta \d+ invoked by uid %d\); [^\n]*\n"
                                    rb"Delivered-To: alice@test.example\n" % self.uid())
        out = os.path.join(self.home, "dotprog.out")
        wait_for(lambda: os.path.exists(out) and b"body of to alice" in open(out, "rb").read(), 60,
                 "the .forward program", self.log)
        with open(out, "rb") as f:
            lines = f.read().split(b"\n")
        self.assertTrue(lines[0].startswith(b"From sender@remote.example "), lines[0])
        self.assertEqual(lines[1:3], [b"Return-Path: <sender@remote.example>", b"Delivered-To: alice@test.example"])
        with open(mbox, "rb") as f:
            lines = f.read().split(b"\n")
        self.assertTrue(lines[0].startswith(b"From sender@remote.example "), lines[0])
        self.assertIn(b"body of to alice", lines)
        if self.owner:
            self.assertEqual((os.stat(mbox).st_uid, os.stat(out).st_uid), (self.owner[0], self.owner[0]))
        # no direct delivery: forwarded, and ./rest/ skipped (exit 99)
        [away] = self.maildir("cond", 1)
        self.assertRegex(away, rb"^Return-Path: <sender@remote.example>\nDelivered-To: alice-cond@test.example\n")
        self.assertIn(b"Delivered-To: alice-away@test.example\n", away)

        wait_for(lambda: self.logged().count("end msg ") >= 4, 60, "every message to finish", self.log)
        text = self.logged()
        self.assertEqual(len(re.findall(r": success: dot-forward:_qp_\d+/did_1\+0\+1/", text)), 1)
        self.assertEqual(len(re.findall(r": success: dot-forward:_qp_\d+/did_0\+0\+1/", text)), 1)
        self.assertEqual(os.listdir(os.path.join(self.home, "rest", "new")), [])
        self.assertNotIn(": deferral: ", text)
