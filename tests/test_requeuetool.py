"""
docs/tools/requeue.py (docs/scaling.md, "When a front-end dies"): a dead
node's queue, written here file by file in qmail's record formats, is
queued again on a live root with C{pymta queue}; only the recipients still
to do go, each message leaves the dead queue once queued, a writer's
leftover is neither queued nor removed, and a pending bounce is reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from twisted.trial import unittest

from pymta.queue.layout import QueueLayout
from tests.test_end_to_end import SRC

TOOL = os.path.join(SRC, "docs", "tools", "requeue.py")


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


class RequeueTool(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.base = tempfile.mkdtemp(prefix="pymta-requeue-")
        self.addCleanup(shutil.rmtree, self.base, True)
        os.chmod(self.base, 0o755)  # the mail account (pymta init as root) reaches the live root
        self.dead = os.path.join(self.base, "dead")
        layout = QueueLayout(self.dead, split=23)
        layout.create()
        # 46: preprocessed, one remote recipient done, a bounce pending; 47: committed, never preprocessed;
        # 48: a writer's leftover (a message file and nothing else)
        write(layout.mess(46), b"Subject: forty-six\n\nbody 46\n")
        write(layout.info(46), b"Fcarol@example.org\0")
        write(layout.remote(46), b"Tbob@example.org\0Ddone@example.net\0")
        write(layout.local(46), b"Tdave@example.org\0")
        write(layout.bounce(46), b"<gone@example.net>:\nSorry, no mailbox here by that name.\n")
        write(layout.mess(47), b"Subject: forty-seven\n\nbody 47\n")
        write(layout.todo(47), b"u0\0p1\0Ferin@example.org\0Tfrank@example.org\0Tgina@example.net\0")
        write(layout.mess(48), b"half a message")
        self.live = os.path.join(self.base, "live")
        init = [sys.executable, "-m", "pymta.cli.main", "init", self.live, "--me", "live.example"]
        if os.getuid() == 0:
            init += ["--mail-uid", "4242:4242"]
        subprocess.run(init, check=True, cwd=SRC, stdout=subprocess.DEVNULL)

    def run_tool(self) -> subprocess.CompletedProcess:
        env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
        return subprocess.run([sys.executable, TOOL, "--root", self.live, self.dead], capture_output=True,
                              text=True, env=env, cwd=self.base, timeout=120)

    def queued(self) -> dict[bytes, tuple[bytes, set[bytes]]]:
        """The live queue's messages: first line of the text (after pymta's Received line) -> (sender, recipients)."""
        live = QueueLayout(os.path.join(self.live, "queue"))
        out = {}
        for name in os.listdir(os.path.join(live.queuedir, "todo")):
            with open(live.todo(int(name)), "rb") as f:
                records = [r for r in f.read().split(b"\0") if r]
            with open(live.mess(int(name)), "rb") as f:
                subject = f.read().split(b"\n")[1]
            sender = next(r[1:] for r in records if r[:1] == b"F")
            out[subject] = (sender, {r[1:] for r in records if r[:1] == b"T"})
        return out

    def test_requeues_what_is_left_to_do(self) -> None:
        done = self.run_tool()
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(self.queued(), {
            b"Subject: forty-six": (b"carol@example.org", {b"dave@example.org", b"bob@example.org"}),
            b"Subject: forty-seven": (b"erin@example.org", {b"frank@example.org", b"gina@example.net"}),
        })
        self.assertIn("message 46: 2 recipient(s) queued here", done.stdout)
        self.assertIn("message 47: 2 recipient(s) queued here", done.stdout)
        self.assertIn("message 46: failure reports not yet bounced:\n<gone@example.net>:", done.stderr)
        left = sorted(os.path.relpath(os.path.join(d, f), self.dead) for d, _, files in os.walk(self.dead)
                      for f in files)
        self.assertEqual(left, ["lock/trigger", "mess/2/48", "split"])  # and the queue's own files

        again = self.run_tool()  # nothing left but the leftover: nothing queued twice
        self.assertEqual((again.returncode, again.stdout), (0, ""))
        self.assertEqual(len(self.queued()), 2)
