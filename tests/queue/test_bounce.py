"""Tests for pymta.queue.bounce: QSBMF text, envelopes, VERP (docs/internals.md, 'Bounces')."""

import io

from twisted.trial import unittest

from pymta.queue.bounce import (
    DOUBLE_BOUNCE_SENDER,
    BounceEnvelope,
    bounce_entry,
    bounce_envelope,
    compose_bounce,
    unverp,
    verp_sender,
)
from tests.queue.helpers import controls_from

NOW = 1_795_000_000  # a fixed time for the Date: header


class BounceEntryTests(unittest.SynchronousTestCase):
    def test_remote_failure(self) -> None:
        report = "127.0.0.1 does not like recipient.\nRemote host said: 550 no such user here\nGiving up on 127.0.0.1.\n"
        self.assertEqual(
            bounce_entry("bob@other.example", report),
            b"<bob@other.example>:\n127.0.0.1 does not like recipient.\n"
            b"Remote host said: 550 no such user here\nGiving up on 127.0.0.1.\n\n",
        )

    def test_missing_newline_added(self) -> None:
        self.assertEqual(bounce_entry("a@b", "no mailbox here"), b"<a@b>:\nno mailbox here\n\n")

    def test_empty_report(self) -> None:
        self.assertEqual(bounce_entry("a@b", ""), b"<a@b>:\n\n")

    def test_paragraphs_never_break(self) -> None:
        self.assertEqual(bounce_entry("a@b", "one\n\ntwo\n\n\nthree"), b"<a@b>:\none\n/two\n//three\n\n")

    def test_newline_in_recipient(self) -> None:
        self.assertEqual(bounce_entry("a\nb@c", "x\n"), b"<a_b@c>:\nx\n\n")


class VerpTests(unittest.SynchronousTestCase):
    def test_expansion(self) -> None:
        self.assertEqual(verp_sender("list-owner-@lists.ex-@[]", "joe@b.ex"), "list-owner-joe=b.ex@lists.ex")

    def test_recipient_without_at(self) -> None:
        self.assertEqual(verp_sender("list-owner-@lists.ex-@[]", "joe"), "list-owner-@lists.ex-@[]")

    def test_plain_sender(self) -> None:
        self.assertEqual(verp_sender("a@b.ex", "joe@b.ex"), "a@b.ex")

    def test_unverp(self) -> None:
        self.assertEqual(unverp("owner-@host-@[]"), "owner-@host")
        self.assertEqual(unverp("a@b"), "a@b")


class EnvelopeTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.controls = controls_from(self, me="mail.example\n", doublebounceto="hostmaster\n")

    def test_single(self) -> None:
        self.assertEqual(bounce_envelope("a@b.ex", self.controls), BounceEnvelope("", "a@b.ex", "a@b.ex", False))

    def test_verp_sender(self) -> None:
        self.assertEqual(
            bounce_envelope("owner-@host.ex-@[]", self.controls),
            BounceEnvelope("", "owner-@host.ex", "owner-@host.ex", False),
        )

    def test_double(self) -> None:
        self.assertEqual(
            bounce_envelope("", self.controls),
            BounceEnvelope(DOUBLE_BOUNCE_SENDER, "hostmaster@mail.example", "", True),
        )

    def test_triple(self) -> None:
        self.assertIsNone(bounce_envelope("#@[]", self.controls))


class ComposeTests(unittest.SynchronousTestCase):
    def compose(self, envelope, ctl, failures: bytes, message: bytes) -> list[str]:
        out = io.BytesIO()
        compose_bounce(out.write, envelope, ctl, io.BytesIO(failures), io.BytesIO(message), NOW)
        return out.getvalue().decode().split("\n")

    def test_single_bounce_line_by_line(self) -> None:
        ctl = controls_from(self, me="mail.example\n")
        failures = bounce_entry("bob@other.example", "Sorry, no mailbox here by that name. (#5.1.1)\n")
        message = b"Received: (pymta 7 invoked by uid 1000); 1 Nov 2026 10:00:00 -0000\nSubject: hi\n\nbody\n"
        lines = self.compose(BounceEnvelope("", "a b@x.example", "a b@x.example", False), ctl, failures, message)
        self.assertEqual(lines[0], "Date: 18 Nov 2026 11:06:40 -0000")
        self.assertEqual(lines[1], "From: MAILER-DAEMON@mail.example")
        self.assertEqual(lines[2], 'To: "a b"@x.example')
        self.assertEqual(lines[3], "Subject: failure notice")
        self.assertEqual(lines[4], "")
        self.assertEqual(lines[5], "Hi. This is the pymta-send program at mail.example.")
        self.assertTrue(lines[6] and lines[7])  # the two explanation lines
        self.assertEqual(lines[8], "")
        self.assertEqual(lines[9], "<bob@other.example>:")
        self.assertEqual(lines[10], "Sorry, no mailbox here by that name. (#5.1.1)")
        self.assertEqual(lines[11], "")
        self.assertEqual(lines[12], "--- Below this line is a copy of the message.")
        self.assertEqual(lines[13], "")
        self.assertEqual(lines[14], 'Return-Path: <"a b"@x.example>')
        self.assertEqual(lines[15], "Received: (pymta 7 invoked by uid 1000); 1 Nov 2026 10:00:00 -0000")
        self.assertEqual(lines[16:], ["Subject: hi", "", "body", ""])

    def test_double_bounce_line_by_line(self) -> None:
        ctl = controls_from(self, me="mail.example\n", bouncefrom="bounce daemon\n", bouncehost="b.example\n")
        failures = bounce_entry("a@x.example", "gone\n")
        lines = self.compose(
            BounceEnvelope("#@[]", "postmaster@mail.example", "", True), ctl, failures, b"orig\n"
        )
        self.assertEqual(lines[1], 'From: "bounce daemon"@b.example')
        self.assertEqual(lines[2], "To: postmaster@mail.example")
        self.assertEqual(lines[5], "Hi. This is the pymta-send program at b.example.")
        self.assertTrue(lines[6])
        self.assertEqual(lines[7], "")
        self.assertEqual(lines[8:11], ["<a@x.example>:", "gone", ""])
        self.assertEqual(lines[11], "--- Below this line is the original bounce.")
        self.assertEqual(lines[12], "")
        self.assertEqual(lines[13], "Return-Path: <>")
        self.assertEqual(lines[14:], ["orig", ""])


from hypothesis import given, strategies as st  # noqa: E402


class BounceEntryEdgeTests(unittest.SynchronousTestCase):
    def test_report_of_newlines_only_is_an_empty_report(self) -> None:
        """Found by the property test below: a report "\\n" made an empty line inside the block."""
        self.assertEqual(bounce_entry("x@y", "\n"), b"<x@y>:\n\n")
        self.assertEqual(bounce_entry("x@y", "abc\n\n"), b"<x@y>:\nabc\n\n")

    def test_leading_newline_does_not_break_the_block(self) -> None:
        self.assertEqual(bounce_entry("x@y", "\nabc"), b"<x@y>:\n/abc\n\n")


class BounceEntryPropertyTests(unittest.SynchronousTestCase):
    @given(st.text(max_size=40), st.text(max_size=200))
    def test_block_shape(self, recipient: str, report: str) -> None:
        block = bounce_entry(recipient, report)
        head, _, rest = block.partition(b">:\n")
        self.assertTrue(head.startswith(b"<"))
        self.assertNotIn(b"\n", head)
        # exactly one empty line, at the very end: parsers split blocks on it
        self.assertTrue(block.endswith(b"\n\n"))
        self.assertNotIn(b"\n\n", block[:-1])
        # no text lost: only newlines were turned into "/" (or "_" in the address)
        self.assertEqual(len(rest.rstrip(b"\n")), len(report.encode("utf-8", "surrogateescape").rstrip(b"\n")))
