"""Tests for pymta.serialmail.held: which files are held, and their envelopes."""

from __future__ import annotations

import os

from twisted.trial import unittest

from pymta.serialmail.held import read_held, scan, unquote_address
from tests.serialmail.helpers import held_maildir, hold


class HeldTests(unittest.TestCase):
    def setUp(self) -> None:
        self.maildir = held_maildir(os.path.abspath(self.mktemp()))

    def test_envelope_from_the_first_two_lines(self) -> None:
        path = hold(self.maildir, "1.a.host", "bob@example.org", "alias-site-joe@site.example")
        message = read_held(path, "new/1.a.host", "alias-site-")
        assert message is not None
        self.assertEqual((message.sender, message.recipient, message.name), ("bob@example.org", "joe@site.example", "new/1.a.host"))
        with open(path, "rb") as f:
            f.seek(message.body_offset)
            self.assertEqual(f.read(), b"Subject: x\n\nhello\n")

    def test_other_files_are_left_alone(self) -> None:
        self.assertIsNone(read_held(hold(self.maildir, "2", "b@x", "other-joe@x"), "new/2", "alias-site-"))
        self.assertIsNone(read_held(hold(self.maildir, "3", "b@x", "alias-site-"), "new/3", "alias-site-"))
        path = os.path.join(self.maildir, "new", "4")
        with open(path, "wb") as f:
            f.write(b"Subject: no envelope lines\n\nhi\n")
        self.assertIsNone(read_held(path, "new/4", ""))

    def test_null_sender_and_quoted_sender(self) -> None:
        message = read_held(hold(self.maildir, "5", "", "p-joe@x"), "new/5", "p-")
        assert message is not None
        self.assertEqual(message.sender, "")
        self.assertEqual(unquote_address('"a b\\"c"@x.example'), 'a b"c@x.example')
        self.assertEqual(unquote_address("plain@x"), "plain@x")
        self.assertEqual(unquote_address("#@[]"), "#@[]")

    def test_scan_oldest_first_new_and_cur(self) -> None:
        hold(self.maildir, "b", "s@x", "p-one@x", mtime=2000)
        hold(self.maildir, "a:2,S", "s@x", "p-two@x", mtime=1000, sub="cur")
        hold(self.maildir, ".hidden", "s@x", "p-three@x", mtime=500)
        hold(self.maildir, "c", "s@x", "q-four@x", mtime=100)
        self.assertEqual([(m.name, m.recipient) for m in scan(self.maildir, "p-")],
                         [("cur/a:2,S", "two@x"), ("new/b", "one@x")])
