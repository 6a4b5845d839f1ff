"""Tests for pymta.local.mbox: format, locking between processes, truncation on errors."""

from __future__ import annotations

import fcntl
import os
import resource
import signal

from twisted.trial import unittest

from pymta.local.errors import DeliveryFailure
from pymta.local.mbox import deliver_mbox

PREFIX = b"From a@b Tue Nov 24 21:49:31 2026\nReturn-Path: <a@b>\nDelivered-To: joe@example.org\n"


class MboxTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "mbox")

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()

    def test_quoting_final_newline_and_blank_line(self) -> None:
        deliver_mbox(self.path, "./mbox", PREFIX, [b"a\n", b"From x\n", b">>From y\n", b"From"])
        self.assertEqual(self.read(), PREFIX + b"a\n>From x\n>>>From y\nFrom\n\n")
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)

    def test_appends(self) -> None:
        deliver_mbox(self.path, "./mbox", PREFIX, [b"one\n"])
        deliver_mbox(self.path, "./mbox", PREFIX, [b"two\n"])
        self.assertEqual(self.read(), PREFIX + b"one\n\n" + PREFIX + b"two\n\n")

    def test_read_error_truncates_back(self) -> None:
        deliver_mbox(self.path, "./mbox", PREFIX, [b"one\n"])
        before = self.read()

        def broken():
            yield b"partial line\n" * 10000
            raise OSError(5, "Input/output error")

        e = self.assertRaises(DeliveryFailure, deliver_mbox, self.path, "./mbox", PREFIX, broken())
        self.assertEqual((e.status, e.text), ("Z", "Unable to read message: Input/output error. (#4.3.0)"))
        self.assertEqual(self.read(), before)

    def test_full_disk(self) -> None:
        if not os.path.exists("/dev/full"):
            raise unittest.SkipTest("no /dev/full")
        e = self.assertRaises(DeliveryFailure, deliver_mbox, "/dev/full", "/dev/full", PREFIX, [b"x\n"])
        self.assertEqual((e.status, e.text), ("Z", "Unable to write /dev/full: No space left on device. (#4.3.0)"))

    def test_file_size_limit_truncates_back(self) -> None:
        """A write failing half-way (EFBIG under RLIMIT_FSIZE) leaves the old mbox intact."""
        deliver_mbox(self.path, "./mbox", PREFIX, [b"one\n"])
        before = self.read()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 100000, resource.RLIM_INFINITY))
                try:
                    deliver_mbox(self.path, "./mbox", PREFIX, [b"y" * 99 + b"\n"] * 5000)
                except DeliveryFailure as failure:
                    os.write(w, failure.text.encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        text = b""
        while chunk := os.read(r, 4096):
            text += chunk
        os.close(r)
        os.waitpid(pid, 0)
        self.assertEqual(text, b"Unable to write ./mbox: File too large. (#4.3.0)")
        self.assertEqual(self.read(), before)

    def test_lock_timeout(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        self.addCleanup(os.close, fd)
        fcntl.flock(fd, fcntl.LOCK_EX)
        e = self.assertRaises(DeliveryFailure, deliver_mbox, self.path, "./mbox", PREFIX, [b"x\n"], lock_timeout=0.2)
        self.assertEqual((e.status, e.text), ("Z", "File has been locked for 0.2 seconds straight. (#4.3.0)"))
        self.assertEqual(self.read(), b"")

    def test_fcntl_lock_respected(self) -> None:
        """A reader holding only an fcntl lock (in another process) also keeps us out."""
        locked_r, locked_w = os.pipe()
        release_r, release_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(release_w)
                os.close(locked_r)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
                fcntl.lockf(fd, fcntl.LOCK_EX)
                os.write(locked_w, b"x")
                os.read(release_r, 1)
            finally:
                os._exit(0)
        os.close(locked_w)
        os.close(release_r)
        try:
            self.assertEqual(os.read(locked_r, 1), b"x")
            e = self.assertRaises(DeliveryFailure, deliver_mbox, self.path, "./mbox", PREFIX, [b"x\n"], lock_timeout=0.2)
            self.assertIn("locked", e.text)
        finally:
            os.close(release_w)
            os.waitpid(pid, 0)
            os.close(locked_r)

    def test_two_writers_at_once(self) -> None:
        """Two processes appending 30 messages each produce 60 whole, unmixed messages."""
        count = 30
        body = [b"line %d\n" % i for i in range(200)]
        pids = []
        for writer in (b"A", b"B"):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    for n in range(count):
                        lines = [b"X-Writer: " + writer + b" %d\n" % n, b"\n"] + [writer + line for line in body]
                        deliver_mbox(self.path, "./mbox", PREFIX, lines)
                    code = 0
                finally:
                    os._exit(code)
            pids.append(pid)
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        messages = self.read().split(b"\n\nFrom a@b ")
        self.assertEqual(len(messages), 2 * count)
        for message in messages:
            writer = message.split(b"X-Writer: ", 1)[1][:1]
            lines = message.split(b"\n\n", 1)[1].rstrip(b"\n").split(b"\n")
            self.assertEqual(lines, [writer + b"line %d" % i for i in range(200)])
