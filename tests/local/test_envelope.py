"""Tests for pymta.local.envelope: the added header lines and message reading."""

from __future__ import annotations

import os

from twisted.trial import unittest

from pymta.local.envelope import dtline, has_delivered_to, read_lines, rpline, ufline
from tests.local.helpers import open_message


class LineTests(unittest.SynchronousTestCase):
    def test_dtline(self) -> None:
        self.assertEqual(dtline("Joe-X", "example.org"), b"Delivered-To: Joe-X@example.org\n")
        self.assertEqual(dtline("a\nb", "c"), b"Delivered-To: a_b@c\n")

    def test_rpline(self) -> None:
        self.assertEqual(rpline(""), b"Return-Path: <>\n")
        self.assertEqual(rpline("a b@example.org"), b'Return-Path: <"a b"@example.org>\n')
        self.assertEqual(rpline("x@y"), b"Return-Path: <x@y>\n")

    def test_ufline(self) -> None:
        self.assertEqual(ufline("", 0), b"From MAILER-DAEMON Thu Jan 01 00:00:00 1970\n")
        self.assertEqual(
            ufline("a b\tc@d", 1795556971 + 86400 * 10),
            b"From a-b-c@d Fri Dec 04 21:49:31 2026\n",
        )


class ReadTests(unittest.TestCase):
    def test_lines_and_loop_header_only(self) -> None:
        fd = open_message(self.mktemp(), b"A: 1\nDelivered-To: x@y\n\nDelivered-To: z@y\nend")
        self.addCleanup(os.close, fd)
        self.assertEqual(list(read_lines(fd)), [b"A: 1\n", b"Delivered-To: x@y\n", b"\n", b"Delivered-To: z@y\n", b"end"])
        self.assertTrue(has_delivered_to(fd, b"Delivered-To: x@y\n"))
        self.assertFalse(has_delivered_to(fd, b"Delivered-To: z@y\n"))
        self.assertFalse(has_delivered_to(fd, b"Delivered-To: X@y\n"))
