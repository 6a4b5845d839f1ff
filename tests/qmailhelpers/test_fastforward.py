"""Tests for the fastforward helper: run as a .qmail program line, forwarding into a real queue directory."""

from __future__ import annotations

import os
import struct

from pymta.forwarding.aliasfile import parse_aliases
from pymta.forwarding.database import write_database
from pymta.inject.rewrite import Rewriter
from tests.qmailhelpers.helpers import MESSAGE, run_line
from tests.qmailhelpers.test_forward import QueueFixture

ALIASES = """\
root: alice, bob@remote.example
staff: :include:{lists}/staff
owner-staff: root
prog: "|cat > {out}; exit $CODE"
"""


class FastforwardTests(QueueFixture):
    def setUp(self) -> None:
        super().setUp()
        os.mkdir(os.path.join(self.root, "control"))
        with open(os.path.join(self.root, "control", "me"), "w") as f:
            f.write("me.example\n")
        self.lists = os.path.join(self.root, "lists")
        os.mkdir(self.lists)
        with open(os.path.join(self.lists, "staff"), "w") as f:
            f.write("carol, dave@remote.example\n")
        self.out = os.path.join(self.root, "prog.out")
        self.db = os.path.join(self.root, "aliases.idx")
        text = ALIASES.format(lists=self.lists, out=self.out)
        write_database(self.db, parse_aliases(text, Rewriter("me.example", "me.example", "me.example")), "aliases")

    def ff(self, options: str, local: str, **extra: str) -> tuple[int, str]:
        env = self.env(DEFAULT=local, HOST="me.example", EXT=local, **extra)
        return run_line(f"fastforward {options} {self.db}", env=env)

    def test_forwards_from_newsender(self) -> None:
        code, output = self.ff("-d", "Root")
        self.assertEqual(code, 0)
        self.assertRegex(output, r"^fastforward: qp \d+\n$")
        self.assertEqual(self.queued(), [("alice@example.com", ("alice@me.example", "bob@remote.example"),
                                          b"Delivered-To: joe-x@example.org\n" + MESSAGE)])

    def test_passthrough(self) -> None:
        self.assertEqual(self.ff("-pd", "root")[0], 99)
        self.assertEqual(self.ff("-pd", "nobody"), (0, ""))
        self.assertEqual(len(self.queued()), 1)

    def test_no_alias_bounces(self) -> None:
        self.assertEqual(self.ff("-d", "nobody"), (100, "Sorry, no mailbox here by that name. (#5.1.1)\n"))
        # without -d the recipient is $RECIPIENT (joe-x@example.org), not an alias either
        self.assertEqual(self.ff("", "root")[0], 100)
        self.assertEqual(self.queued(), [])

    def test_include_with_owner(self) -> None:
        self.assertEqual(self.ff("-d", "staff")[0], 0)
        self.assertEqual([q[:2] for q in self.queued()],
                         [("owner-staff@me.example", ("carol@me.example", "dave@remote.example"))])

    def test_missing_include_defers(self) -> None:
        os.unlink(os.path.join(self.lists, "staff"))
        code, output = self.ff("-d", "staff")
        self.assertEqual(code, 111)
        self.assertIn("fastforward: fatal: unable to open ", output)
        self.assertEqual(self.queued(), [])

    def test_program(self) -> None:
        self.assertEqual(self.ff("-d", "prog", CODE="0"), (0, ""))
        with open(self.out, "rb") as f:
            self.assertEqual(f.read(), b"From alice@example.com Tue Nov 24 21:49:31 2026\n"
                                       b"Return-Path: <alice@example.com>\nDelivered-To: joe-x@example.org\n" + MESSAGE)
        self.assertEqual(self.ff("-d", "prog", CODE="100")[0], 100)
        code, output = self.ff("-d", "prog", CODE="75")
        self.assertEqual(code, 111)
        self.assertIn("exited 75", output)

    def test_show(self) -> None:
        self.assertEqual(self.ff("-nd", "staff"), (0, "?owner-staff@me.example\n&carol@me.example\n&dave@remote.example\n"))
        self.assertEqual(self.ff("-nd", "prog")[1], f"|cat > {self.out}; exit $CODE\n")
        self.assertEqual(self.queued(), [])

    def test_usage_and_bad_database(self) -> None:
        self.assertEqual(run_line("fastforward -x db", env=self.env()),
                         (100, "fastforward: fatal: usage: fastforward [ -nNpPdD ] aliases\n"))
        with open(self.db, "wb") as f:
            f.write(b"\x00" * 2048)
        code, output = self.ff("-d", "root")
        self.assertEqual(code, 111)
        self.assertIn("is not an alias database of pymta newaliases", output)

    def test_a_database_it_cannot_read_goes_to_the_original_fastforward(self) -> None:
        """fastforward's own aliases.cdb is read by the original program on the PATH (Debian's), not refused."""
        cdb = os.path.join(self.root, "aliases.cdb")
        with open(cdb, "wb") as f:
            f.write(struct.pack("<512I", *[2048, 0] * 256))  # an empty cdb: every slot table empty
        other = os.path.join(self.root, "otherbin")
        os.mkdir(other)
        with open(os.path.join(other, "fastforward"), "w") as f:
            f.write('#!/bin/sh\necho "original fastforward $*"\nexit 99\n')
        os.chmod(os.path.join(other, "fastforward"), 0o755)
        env = self.env(DEFAULT="root", HOST="me.example", EXT="root")
        env["PATH"] = os.pathsep.join([d for d in env["PATH"].split(os.pathsep) if "qmailbin" in d] + [other]
                                      + [d for d in env["PATH"].split(os.pathsep) if "qmailbin" not in d])
        self.assertEqual(run_line(f"fastforward -d {cdb}", env=env), (99, f"original fastforward -d {cdb}\n"))
        # without one, a database that is not pymta's defers, naming the fix
        env = self.env(DEFAULT="root", HOST="me.example", EXT="root")
        env["PATH"] = os.pathsep.join(d for d in env["PATH"].split(os.pathsep)
                                      if not os.path.exists(os.path.join(d, "fastforward")) or "qmailbin" in d)
        code, output = run_line(f"fastforward -d {cdb}", env=env)
        self.assertEqual(code, 111)
        self.assertIn("run pymta newaliases", output)
