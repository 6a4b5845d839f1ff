"""Tests for pymta.report.sources: rotated and compressed log files, read oldest first."""

from __future__ import annotations

import gzip
import io
import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.report.sources import bounded_lines, read_lines, with_rotated


class RotatedFilesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.log = os.path.join(self.dir, "send.log")
        for name, text in [("send.log", "live\n"), ("send.log.1", "one\n"), ("send.log.2", "two\n"),
                           ("send.log.10", "ten\n"), ("send.log.old", "not rotated\n"), ("send.logx.1", "other\n"),
                           ("other.log", "other log\n")]:
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        with gzip.open(os.path.join(self.dir, "send.log.3.gz"), "wt") as g:
            g.write("three\nzipped\n")

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def test_a_log_brings_its_rotated_files_oldest_first(self) -> None:
        files = with_rotated([self.log])
        self.assertEqual(files, [self.path(n) for n in
                                 ("send.log.10", "send.log.3.gz", "send.log.2", "send.log.1", "send.log")])
        self.assertEqual(list(read_lines(files)), ["ten\n", "three\n", "zipped\n", "two\n", "one\n", "live\n"])

    def test_a_rotated_file_alone(self) -> None:
        self.assertEqual(with_rotated([self.path("send.log.2")]), [self.path("send.log.2")])

    def test_each_file_once_in_order_whatever_the_names(self) -> None:
        files = with_rotated([self.path("send.log.1"), self.path("other.log"), self.log, "./" + self.log])
        self.assertEqual(files, [self.path(n) for n in
                                 ("send.log.10", "send.log.3.gz", "send.log.2", "send.log.1", "send.log")]
                         + [self.path("other.log")])

    def test_bytes_that_are_not_utf8(self) -> None:
        with open(self.log, "wb") as f:
            f.write(b"ok\n\xff\xfe bad\n")
        self.assertEqual(list(read_lines([self.log])), ["ok\n", "\ufffd\ufffd bad\n"])

    def test_a_missing_file_is_an_error(self) -> None:
        missing = self.path("nope.log")
        self.assertEqual(with_rotated([missing]), [missing])
        with self.assertRaises(FileNotFoundError):
            list(read_lines([missing]))

    def test_a_damaged_compressed_file_is_an_error_naming_it(self) -> None:
        damaged, cut = self.path("send.log.4.gz"), self.path("send.log.5.gz")
        with open(damaged, "wb") as f:
            f.write(b"not gzip at all\n")
        with open(cut, "wb") as f:
            f.write(gzip.compress(b"line\n" * 1000)[:40])
        for path in (damaged, cut):
            with self.assertRaises(OSError) as caught:
                list(read_lines([path]))
            self.assertEqual(caught.exception.filename, path)
            self.assertTrue(caught.exception.strerror)


class BoundedLinesTests(SynchronousTestCase):
    def test_overlong_lines_are_skipped_whole(self) -> None:
        text = "short\n" + "x" * 25 + "\n" + "y" * 10 + "\n" + "z" * 20 + "\nlast"
        self.assertEqual(list(bounded_lines(io.StringIO(text), limit=10)), ["short\n", "last"])
        # a line of exactly the limit, newline included, is kept
        self.assertEqual(list(bounded_lines(io.StringIO("123456789\nend\n"), limit=10)), ["123456789\n", "end\n"])
