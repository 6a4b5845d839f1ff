"""Tests for pymta.cli.qstat."""

import io
import os

from twisted.trial import unittest

from pymta.cli import qstat
from pymta.queue.layout import QueueLayout
from pymta.queue.disk import QueueDisk
from pymta.queue.store import Queue


class QstatTests(unittest.SynchronousTestCase):
    def run_main(self, argv):
        out, err = io.StringIO(), io.StringIO()
        self.patch(qstat.sys, "stdout", out)
        self.patch(qstat.sys, "stderr", err)
        return qstat.main(argv), out.getvalue(), err.getvalue()

    def test_counts(self) -> None:
        root = self.mktemp()
        layout = QueueLayout(os.path.join(root, "queue"))
        layout.create()
        q = Queue(QueueDisk.plain(layout))
        for _ in range(3):
            q.begin("by uid 0", 0, 1).commit("a@b", ["c@d"])
        r = q.begin("by uid 0", 0, 1).commit("a@b", ["c@d"])
        os.unlink(layout.todo(r.message_id))  # preprocessed
        self.assertEqual(
            self.run_main(["--root", root]),
            (0, "messages in queue: 4\nmessages in queue but not yet preprocessed: 3\n", ""),
        )

    def test_empty(self) -> None:
        root = self.mktemp()
        QueueLayout(os.path.join(root, "queue")).create()
        self.assertEqual(self.run_main(["--root", root])[1], "messages in queue: 0\nmessages in queue but not yet preprocessed: 0\n")

    def test_missing_root(self) -> None:
        code, out, err = self.run_main(["--root", self.mktemp()])
        self.assertEqual(code, 111)
        self.assertIn("pymta qstat: fatal: unable to read", err)

    def test_default_root_from_environment(self) -> None:
        root = self.mktemp()
        QueueLayout(os.path.join(root, "queue")).create()
        self.patch(os, "environ", dict(os.environ, PYMTA_ROOT=root))
        self.assertEqual(self.run_main([])[0], 0)
