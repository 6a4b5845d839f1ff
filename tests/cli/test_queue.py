"""Tests for pymta.cli.queue: the qmail-queue interface."""

import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading

from twisted.trial import unittest

from pymta.cli import queue as queue_cli
from pymta.queue.envelope import parse_todo
from pymta.queue.layout import QueueLayout
from tests.queue.test_store import files_under


def pipe_with(data: bytes, close: bool = True) -> int:
    """A pipe's read end with C{data} written into it (from a thread, so any size works)."""
    r, w = os.pipe()

    def feed():
        try:
            os.write(w, data)
        finally:
            if close:
                os.close(w)

    t = threading.Thread(target=feed)
    t.start()
    return r


class QueueCommandTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.root = tempfile.mkdtemp(prefix="pymta-q-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.layout = QueueLayout(os.path.join(self.root, "queue"))
        self.layout.create()
        self.stderr = io.StringIO()
        self.patch(queue_cli.sys, "stderr", self.stderr)

    def run_queue(self, message: bytes, envelope: bytes) -> int:
        mfd, efd = pipe_with(message), pipe_with(envelope)
        try:
            return queue_cli.run(self.root, mfd, efd)
        finally:
            os.close(mfd)
            os.close(efd)

    def only_message(self):
        [todo] = files_under(self.layout, "todo")
        with open(todo, "rb") as f:
            env = parse_todo(f.read())
        mid = int(os.path.basename(todo))
        with open(self.layout.mess(mid), "rb") as f:
            return env, f.read()

    def test_queued(self) -> None:
        self.assertEqual(self.run_queue(b"Subject: hi\n\nbody\n", b"Fa@b\0Tc@d\0Te@f\0\0"), 0)
        env, mess = self.only_message()
        self.assertEqual((env.sender, env.recipients), ("a@b", ("c@d", "e@f")))
        self.assertTrue(mess.endswith(b"\nSubject: hi\n\nbody\n"))

    def test_empty_message_and_binary_message(self) -> None:
        self.assertEqual(self.run_queue(b"", b"Fa@b\0Tc@d\0\0"), 0)
        env, mess = self.only_message()
        self.assertEqual(mess.count(b"\n"), 1)
        self.assertTrue(mess.startswith(b"Received: (pymta "))
        os.unlink(files_under(self.layout, "todo")[0])
        self.assertEqual(self.run_queue(b"no separator\0\xff\x80", b"Fa@b\0Tc@d\0\0"), 0)
        env, mess = self.only_message()
        self.assertTrue(mess.endswith(b"\nno separator\0\xff\x80"))

    def test_large_message(self) -> None:
        body = b"line of text\n" * 200000
        self.assertEqual(self.run_queue(body, b"F\0\0"), 0)
        env, mess = self.only_message()
        self.assertTrue(mess.endswith(b"\n" + body))

    def test_envelope_without_eof(self) -> None:
        # the caller keeps fd 1 open: the final NUL ends the envelope
        mfd = pipe_with(b"x\n")
        r, w = os.pipe()
        os.write(w, b"Fa@b\0Tc@d\0\0")
        try:
            self.assertEqual(queue_cli.run(self.root, mfd, r), 0)
        finally:
            for fd in (mfd, r, w):
                os.close(fd)

    def test_truncated_envelope(self) -> None:
        self.assertEqual(self.run_queue(b"x\n", b"Fa@b\0Tc@d\0"), 54)
        self.assertEqual(self.stderr.getvalue(), "pymta queue: qq read error (#4.3.0) [envelope ended before its final NUL]\n")
        self.assertEqual(files_under(self.layout, "mess"), [])

    def test_bad_envelope(self) -> None:
        self.assertEqual(self.run_queue(b"x\n", b"Ta@b\0\0"), 91)
        self.assertEqual(self.run_queue(b"x\n", b"Fa@b\0Xc\0\0"), 91)
        self.assertEqual(files_under(self.layout, "mess"), [])

    def test_address_too_long(self) -> None:
        self.assertEqual(self.run_queue(b"x\n", b"Fa@b\0T" + b"x" * 1200 + b"\0\0"), 11)

    def test_newline_in_address(self) -> None:
        self.assertEqual(self.run_queue(b"x\n", b"Fa@b\0Tc\n@d\0\0"), 31)
        self.assertEqual(files_under(self.layout, "mess"), [])

    def test_no_queue(self) -> None:
        shutil.rmtree(os.path.join(self.root, "queue"))
        self.assertEqual(self.run_queue(b"x\n", b"Fa@b\0\0"), 56)


class QueueSubprocessTests(unittest.SynchronousTestCase):
    def test_exit_status_and_files(self) -> None:
        root = tempfile.mkdtemp(prefix="pymta-q-")
        self.addCleanup(shutil.rmtree, root, True)
        layout = QueueLayout(os.path.join(root, "queue"))
        layout.create()
        r, w = os.pipe()
        os.write(w, b"Fs@x\0Tr@y\0\0")
        os.close(w)
        proc = subprocess.run(
            [sys.executable, "-m", "pymta.cli.main", "queue", "--root", root],
            input=b"Subject: sub\n\nhello\n",
            stdout=r,
            stderr=subprocess.PIPE,
            timeout=60,
        )
        os.close(r)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(len(files_under(layout, "todo")), 1)
        self.assertEqual(proc.stderr, b"")
