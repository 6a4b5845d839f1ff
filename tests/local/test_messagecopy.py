"""Tests for pymta.local.messagecopy: the message copied into a mailbox file, by the kernel or the plain way."""

from __future__ import annotations

import errno
import io
import os
from typing import Iterator

from twisted.trial import unittest

from pymta.local import messagecopy
from pymta.local.errors import DeliveryFailure
from pymta.local.maildir import deliver_maildir
from pymta.local.messagecopy import ChunkCopy, KernelCopy, message_copy
from tests.local.helpers import make_maildir

#: bigger than one read chunk, not a multiple of it
MESSAGE = b"Subject: big\n\n" + b"".join(b"%07d line of the body\n" % i for i in range(9000))


class KernelCopyTests(unittest.TestCase):
    def setUp(self) -> None:
        self.source = self.mktemp()
        with open(self.source, "wb") as f:
            f.write(MESSAGE)
        self.fd = os.open(self.source, os.O_RDONLY)
        self.addCleanup(os.close, self.fd)
        self.target = self.mktemp()

    def copy(self, how: messagecopy.MessageCopy) -> bytes:
        """The prefix written through the buffered file, then the message: what the mailbox file holds."""
        with open(self.target, "wb", buffering=65536) as f:
            f.write(b"Delivered-To: a@b\n")
            how.copy_to(f)
        with open(self.target, "rb") as f:
            return f.read()

    def test_copies_the_whole_file_after_the_prefix(self) -> None:
        self.assertEqual(self.copy(KernelCopy(self.fd)), b"Delivered-To: a@b\n" + MESSAGE)

    def test_the_kernel_does_the_copy(self) -> None:
        calls: list[int] = []
        real = os.copy_file_range

        def counting(src: int, dst: int, count: int, offset_src: int | None = None) -> int:
            calls.append(offset_src or 0)
            return real(src, dst, count, offset_src)

        self.patch(os, "copy_file_range", counting)
        self.copy(KernelCopy(self.fd))
        self.assertEqual(calls[0], 0)
        self.assertGreaterEqual(len(calls), 2)  # the last call finds the end of the file

    def test_plain_path_where_the_kernel_cannot(self) -> None:
        for code in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            def cannot(*args: object) -> int:
                raise OSError(code, os.strerror(code))

            self.patch(os, "copy_file_range", cannot)
            self.assertEqual(self.copy(KernelCopy(self.fd)), b"Delivered-To: a@b\n" + MESSAGE, code)

    def test_error_after_bytes_copied_is_raised_not_retried(self) -> None:
        """Half a message copied, then trouble: the plain path would write those bytes twice."""
        real = os.copy_file_range

        def half(src: int, dst: int, count: int, offset_src: int | None = None) -> int:
            if offset_src:
                raise OSError(errno.EXDEV, "late")
            return real(src, dst, 1000, offset_src)

        self.patch(os, "copy_file_range", half)
        e = self.assertRaises(OSError, self.copy, KernelCopy(self.fd))
        self.assertEqual(e.errno, errno.EXDEV)

    def test_a_kernel_that_copies_nothing_silently_gets_the_plain_path(self) -> None:
        """copy_file_range returning 0 at once (no error) on a non-empty file is not a finished copy."""
        self.patch(os, "copy_file_range", lambda *args: 0)
        self.assertEqual(self.copy(KernelCopy(self.fd)), b"Delivered-To: a@b\n" + MESSAGE)

    def test_a_copy_that_stops_short_defers(self) -> None:
        """The kernel reports the end before the file's size: an error, never a delivery of part of it."""
        real = os.copy_file_range

        def short(src: int, dst: int, count: int, offset_src: int | None = None) -> int:
            return 0 if offset_src else real(src, dst, 1000, offset_src)

        self.patch(os, "copy_file_range", short)
        e = self.assertRaises(OSError, self.copy, KernelCopy(self.fd))
        self.assertEqual(e.errno, errno.EIO)

    def test_write_error_is_an_oserror(self) -> None:
        def full(*args: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        self.patch(os, "copy_file_range", full)
        e = self.assertRaises(OSError, self.copy, KernelCopy(self.fd))
        self.assertEqual(e.errno, errno.ENOSPC)

    def test_message_copy_is_the_kernels_where_the_platform_has_it(self) -> None:
        self.assertIsInstance(message_copy(self.fd), KernelCopy)
        self.patch(messagecopy, "os", _NoCopyFileRange())
        self.assertIsInstance(message_copy(self.fd), ChunkCopy)


class _NoCopyFileRange:
    """The os module of a platform without copy_file_range."""

    def __getattr__(self, name: str) -> object:
        if name == "copy_file_range":
            raise AttributeError(name)
        return getattr(os, name)


class ChunkCopyTests(unittest.TestCase):
    def test_writes_each_chunk(self) -> None:
        out = io.BytesIO()
        ChunkCopy([b"a\n", b"b\n"]).copy_to(out)
        self.assertEqual(out.getvalue(), b"a\nb\n")

    def test_read_error_defers(self) -> None:
        def broken() -> Iterator[bytes]:
            raise OSError(errno.EIO, "Input/output error")
            yield b""

        e = self.assertRaises(DeliveryFailure, ChunkCopy(broken()).copy_to, io.BytesIO())
        self.assertIn("Unable to read message: Input/output error", e.text)


class MaildirKernelCopyTests(unittest.TestCase):
    def test_maildir_delivery_with_the_kernel_copy(self) -> None:
        maildir = make_maildir(os.path.abspath(self.mktemp()))
        source = self.mktemp()
        with open(source, "wb") as f:
            f.write(MESSAGE)
        fd = os.open(source, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        path = deliver_maildir(maildir, b"Return-Path: <a@b>\nDelivered-To: c@d\n", message_copy(fd))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"Return-Path: <a@b>\nDelivered-To: c@d\n" + MESSAGE)
        self.assertEqual(os.listdir(os.path.join(maildir, "tmp")), [])
