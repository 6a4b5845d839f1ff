"""The filters' end-of-message modifications applied to a stored header and envelope (pure)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.milter.api import (
    AddHeader, AddRecipient, ChangeHeader, ChangeSender, DeleteRecipient, InsertHeader, Quarantine, ReplaceBody,
)
from pymta.smtpd.milteredits import Envelope, apply_modifications, field_bytes

HEADER = (b"Received: from x\n  by y\n", b"Subject: one\n", b"X-Tag: a\n", b"x-tag: b\n", b"To: z@example\n")
ENVELOPE = Envelope("a@example", ("b@example", "c@example"))


def edit(*modifications):  # type: ignore[no-untyped-def]
    return apply_modifications(HEADER, ENVELOPE, modifications)


class Header(SynchronousTestCase):
    def test_nothing_changes(self) -> None:
        edited = edit()
        self.assertEqual((edited.header, edited.body, edited.quarantine), (None, None, None))
        self.assertEqual(edited.envelope, ENVELOPE)
        self.assertFalse(edited.rewrites_message)

    def test_add_appends(self) -> None:
        self.assertEqual(edit(AddHeader("X-Spam", "yes")).header, HEADER + (b"X-Spam: yes\n",))

    def test_insert_at_index(self) -> None:
        self.assertEqual(edit(InsertHeader(0, "A", "1")).header, (b"A: 1\n",) + HEADER)
        self.assertEqual(edit(InsertHeader(1, "A", "1")).header, HEADER[:1] + (b"A: 1\n",) + HEADER[1:])
        self.assertEqual(edit(InsertHeader(99, "A", "1")).header, HEADER + (b"A: 1\n",))

    def test_change_nth_of_a_name_case_insensitively(self) -> None:
        self.assertEqual(edit(ChangeHeader(2, "X-TAG", "c")).header,
                         HEADER[:3] + (b"X-TAG: c\n",) + HEADER[4:])
        self.assertEqual(edit(ChangeHeader(1, "x-tag", "")).header, HEADER[:2] + HEADER[3:])

    def test_change_of_a_missing_field_adds_it_unless_empty(self) -> None:
        self.assertEqual(edit(ChangeHeader(3, "X-Tag", "d")).header, HEADER + (b"X-Tag: d\n",))
        self.assertEqual(edit(ChangeHeader(1, "X-Other", "")).header, HEADER)

    def test_field_text(self) -> None:
        self.assertEqual(field_bytes("X-A", "one\r\n\ttwo"), b"X-A: one\n\ttwo\n")
        self.assertEqual(field_bytes("X-A", " leading"), b"X-A: leading\n")
        # a line break not followed by white space cannot start a second field
        self.assertEqual(field_bytes("X-A", "one\r\nBcc: evil@example"), b"X-A: one\n\tBcc: evil@example\n")
        self.assertEqual(field_bytes("X-A", "one\rtwo"), b"X-A: one\n\ttwo\n")

    def test_no_blank_continuation_line(self) -> None:
        """A whitespace-only line would end the header for some readers: a folded value has none."""
        self.assertEqual(field_bytes("X-Test", "a\n\nInjected: 1"), b"X-Test: a\n\tInjected: 1\n")
        self.assertEqual(field_bytes("X-Test", "a\r\n \r\nB: c"), b"X-Test: a\n\tB: c\n")
        self.assertEqual(field_bytes("X-Test", "a\r\r"), b"X-Test: a\n")
        self.assertEqual(field_bytes("X-Test", "a\n\t\n\tb"), b"X-Test: a\n\tb\n")


class BodyAndEnvelope(SynchronousTestCase):
    def test_body_chunks_joined_and_lf(self) -> None:
        edited = edit(ReplaceBody(b"new\r\n"), ReplaceBody(b"body\r\n"))
        self.assertEqual(edited.body, b"new\nbody\n")
        self.assertIsNone(edited.header)
        self.assertTrue(edited.rewrites_message)

    def test_body_crlf_split_between_chunks(self) -> None:
        edited = edit(ReplaceBody(b"a\r"), ReplaceBody(b"\nb\r"), ReplaceBody(b"\r"), ReplaceBody(b"\r\nc\r"))
        self.assertEqual(edited.body, b"a\nb\r\r\nc\r")  # as the joined body's CRLFs made LF

    def test_many_body_chunks_make_one_body(self) -> None:
        chunk = b"x" * 1000 + b"\r\n"
        edited = edit(*[ReplaceBody(chunk)] * 2000)
        self.assertEqual(edited.body, (b"x" * 1000 + b"\n") * 2000)

    def test_later_body_wins(self) -> None:
        edited = edit(ReplaceBody(b"first\r\n"), AddHeader("X", "1"), ReplaceBody(b"second\r\n"))
        self.assertEqual(edited.body, b"second\n")

    def test_sender_and_recipients(self) -> None:
        edited = edit(ChangeSender("<new@example>", "SIZE=1"), AddRecipient("<d@example>"),
                      AddRecipient("B@example"), DeleteRecipient("<C@EXAMPLE>"))
        self.assertEqual(edited.envelope, Envelope("new@example", ("b@example", "d@example")))
        self.assertIsNone(edited.header)

    def test_every_recipient_deleted(self) -> None:
        edited = edit(DeleteRecipient("b@example"), DeleteRecipient("c@example"))
        self.assertEqual(edited.envelope.recipients, ())

    def test_quarantine_keeps_the_first_reason(self) -> None:
        edited = edit(Quarantine("virus"), Quarantine("spam"))
        self.assertEqual(edited.quarantine, "virus")
        self.assertFalse(edited.rewrites_message)
