"""Tests for the forward helper (and pymta.qmailhelpers.requeue) against a real queue directory."""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.trial import unittest

from pymta.queue.envelope import parse_todo
from pymta.queue.layout import QueueLayout
from tests.qmailhelpers.helpers import MESSAGE, helper_environment, run_line


class QueueFixture(unittest.SynchronousTestCase):
    """A pymta root with a queue and no queue manager: the helpers write it directly, as its owner."""

    def setUp(self) -> None:
        self.root = tempfile.mkdtemp(prefix="pymta-qh-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.layout = QueueLayout(os.path.join(self.root, "queue"))
        self.layout.create()

    def env(self, **extra: str) -> dict[str, str]:
        return helper_environment({"PYMTA_ROOT": self.root, **extra})

    def queued(self) -> list[tuple[str, tuple[str, ...], bytes]]:
        """(sender, recipients, message without the Received line) of every queued message."""
        out = []
        todo = os.path.join(self.layout.queuedir, "todo")
        for dirpath, _, names in os.walk(todo):
            for name in names:
                number = int(name)
                with open(os.path.join(dirpath, name), "rb") as f:
                    envelope = parse_todo(f.read())
                with open(self.layout.mess(number), "rb") as f:
                    received = f.readline()
                    self.assertIn(b"invoked by uid %d);" % os.getuid(), received)
                    out.append((envelope.sender, envelope.recipients, f.read()))
        return out


class ForwardTests(QueueFixture):
    def test_forward(self) -> None:
        code, output = run_line("forward bob@example.net carol", env=self.env(NEWSENDER="joe-list-owner@example.org"))
        self.assertEqual(code, 0)
        self.assertRegex(output, r"^forward: qp \d+\n$")
        self.assertEqual(self.queued(), [("joe-list-owner@example.org", ("bob@example.net", "carol"),
                                          b"Delivered-To: joe-x@example.org\n" + MESSAGE)])

    def test_null_sender(self) -> None:
        code, _ = run_line("forward bob@example.net", env=self.env(NEWSENDER=""))
        self.assertEqual(code, 0)
        self.assertEqual(self.queued()[0][0], "")

    def test_reads_from_the_current_offset(self) -> None:
        code, _ = run_line("read -r first; forward bob@example.net", env=self.env())
        self.assertEqual(code, 0)
        self.assertEqual(self.queued()[0][2], b"Delivered-To: joe-x@example.org\n" + MESSAGE.split(b"\n", 1)[1])

    def test_usage(self) -> None:
        self.assertEqual(run_line("forward", env=self.env()), (100, "forward: fatal: usage: forward address [ address ... ]\n"))

    def test_outside_a_delivery(self) -> None:
        env = self.env()
        del env["NEWSENDER"]
        self.assertEqual(run_line("forward bob@example.net", env=env), (100, "forward: fatal: NEWSENDER not set\n"))
        env = self.env()
        del env["DTLINE"]
        self.assertEqual(run_line("forward bob@example.net", env=env), (100, "forward: fatal: DTLINE not set\n"))
        self.assertEqual(self.queued(), [])

    def test_permanent_refusal_is_100(self) -> None:
        code, output = run_line("forward " + "a" * 2000 + "@example.net", env=self.env())
        self.assertEqual(code, 100)
        self.assertIn("forward: fatal: envelope address too long for qq (#5.1.3)", output)
        self.assertEqual(self.queued(), [])

    def test_temporary_refusal_is_111(self) -> None:
        code, output = run_line("forward bob@example.net", env=self.env(PYMTA_ROOT=os.path.join(self.root, "nope")))
        self.assertEqual((code, output), (111, "forward: fatal: qq trouble making network connection (#4.3.0)\n"))
