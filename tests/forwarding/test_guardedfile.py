"""read_guarded: the one reader of .forward and :include: files (regular, not group/world-writable, bounded)."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.forwarding.guardedfile import NOT_REGULAR, OPEN, TOO_LARGE, WRITABLE, UnusableFile, read_guarded


class GuardedFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)

    def file(self, data: bytes, mode: int = 0o644) -> str:
        path = os.path.join(self.dir, "f")
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        return path

    def kind(self, path: str, limit: int = 100) -> str:
        return self.assertRaises(UnusableFile, read_guarded, path, limit).kind

    def test_a_good_file_is_read_whole(self) -> None:
        self.assertEqual(read_guarded(self.file(b"alice\n"), 6), b"alice\n")
        self.assertEqual(read_guarded(self.file(b"", 0o600), 6), b"")

    def test_refusals(self) -> None:
        self.assertEqual(self.kind(self.file(b"x", 0o664)), WRITABLE)
        self.assertEqual(self.kind(self.file(b"x", 0o646)), WRITABLE)
        self.assertEqual(self.kind(self.file(b"x" * 7), 6), TOO_LARGE)
        self.assertEqual(self.kind(self.dir), NOT_REGULAR)
        error = self.assertRaises(UnusableFile, read_guarded, os.path.join(self.dir, "none"), 10)
        self.assertEqual((error.kind, error.error.strerror if error.error else None), (OPEN, os.strerror(2)))

    def test_a_fifo_does_not_block(self) -> None:
        fifo = os.path.join(self.dir, "fifo")
        os.mkfifo(fifo, 0o600)
        self.assertEqual(self.kind(fifo), NOT_REGULAR)
