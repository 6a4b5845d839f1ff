"""Tests for pymta.forwarding.includefile: :include: files read at delivery time."""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pymta.forwarding.entries import ADDRESS, INCLUDE, Entry
from pymta.forwarding.includefile import IncludeError, read_include
from pymta.inject.rewrite import Rewriter

REWRITER = Rewriter("me.example", "me.example", "me.example")


class IncludeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)

    def file(self, text: str, mode: int = 0o644) -> str:
        path = os.path.join(self.dir, "list")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def test_addresses_and_nested_includes(self) -> None:
        path = self.file("# members\n\ndave, Erin <erin@remote.example>\n:include:/etc/more\n")
        self.assertEqual(read_include(path, REWRITER), [Entry(ADDRESS, "dave@me.example"),
                                                        Entry(ADDRESS, "erin@remote.example"),
                                                        Entry(INCLUDE, "/etc/more")])

    def test_refused(self) -> None:
        for text, mode, words in (("|prog\n", 0o644, "list:1: program deliveries are not supported"),
                                  ("a\n/var/x\n", 0o644, "list:2: file deliveries"),
                                  ("a\n", 0o664, "group- or world-writable"),
                                  ("a\n", 0o646, "group- or world-writable")):
            with self.assertRaises(IncludeError) as caught:
                read_include(self.file(text, mode), REWRITER)
            self.assertIn(words, str(caught.exception))

    def test_missing(self) -> None:
        with self.assertRaises(IncludeError) as caught:
            read_include(os.path.join(self.dir, "nothere"), REWRITER)
        self.assertIn("unable to open", str(caught.exception))
