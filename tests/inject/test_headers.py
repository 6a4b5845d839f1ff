"""Tests for pymta.inject.headers."""

from __future__ import annotations

import io

from twisted.trial.unittest import SynchronousTestCase

from pymta.inject.headers import is_field_start, known_field, lf_chunks, read_header


def split(data: bytes) -> tuple[list[str], bytes]:
    stream = io.BytesIO(data)
    parsed = read_header(stream)
    rest = parsed.body_start + b"".join(lf_chunks(stream)) if parsed.has_body else b""
    return [f.text for f in parsed.fields], rest


class FieldTests(SynchronousTestCase):
    def test_is_field_start(self) -> None:
        self.assertTrue(is_field_start("Subject: x\n"))
        self.assertTrue(is_field_start("X-Weird_Name!: x\n"))
        self.assertTrue(is_field_start("To  : x\n"))
        self.assertTrue(is_field_start("Empty:\n"))
        for line in ("no colon\n", ": empty name\n", "Two words: x\n", " Indented: x\n", "Nämé: x\n"):
            self.assertFalse(is_field_start(line), line)

    def test_known_field(self) -> None:
        self.assertEqual(known_field("TO: a\n"), "to")
        self.assertEqual(known_field("Resent-Bcc : a\n"), "resent-bcc")
        self.assertIsNone(known_field("X-To: a\n"))


class SplitTests(SynchronousTestCase):
    def test_blank_line_ends_header(self) -> None:
        fields, rest = split(b"A: 1\nB: 2\n\nbody\n")
        self.assertEqual(fields, ["A: 1\n", "B: 2\n"])
        self.assertEqual(rest, b"\nbody\n")

    def test_continuation_lines(self) -> None:
        fields, _ = split(b"A: 1\n  more\n\tand more\nB: 2\n\n")
        self.assertEqual(fields, ["A: 1\n  more\n\tand more\n", "B: 2\n"])

    def test_non_field_line_ends_header_with_inserted_blank_line(self) -> None:
        fields, rest = split(b"A: 1\nthis is body\nsecond\n")
        self.assertEqual(fields, ["A: 1\n"])
        self.assertEqual(rest, b"\nthis is body\nsecond\n")

    def test_no_header_at_all(self) -> None:
        fields, rest = split(b"hello world\n")
        self.assertEqual((fields, rest), ([], b"\nhello world\n"))

    def test_continuation_without_field_is_body(self) -> None:
        fields, rest = split(b" indented\n")
        self.assertEqual((fields, rest), ([], b"\n indented\n"))

    def test_mbox_from_line(self) -> None:
        fields, _ = split(b"From joe@x Sat Nov 28 10:00:00 2026\nA: 1\n\n")
        self.assertEqual(fields, ["MBOX-Line: From joe@x Sat Nov 28 10:00:00 2026\n", "A: 1\n"])

    def test_end_of_input_without_separator(self) -> None:
        stream = io.BytesIO(b"A: 1\nB: 2")
        parsed = read_header(stream)
        self.assertEqual([f.text for f in parsed.fields], ["A: 1\n", "B: 2\n"])
        self.assertFalse(parsed.has_body)

    def test_final_cr_in_header(self) -> None:
        parsed = read_header(io.BytesIO(b"A: 1\r"))
        self.assertEqual([f.text for f in parsed.fields], ["A: 1\n"])

    def test_empty_input(self) -> None:
        parsed = read_header(io.BytesIO(b""))
        self.assertEqual((parsed.fields, parsed.has_body), ([], False))

    def test_crlf_normalised(self) -> None:
        fields, rest = split(b"A: 1\r\n  x\r\n\r\nline\r\nbare\rcr\r\nlast")
        self.assertEqual(fields, ["A: 1\n  x\n"])
        self.assertEqual(rest, b"\nline\nbare\rcr\nlast\n")

    def test_eight_bit_and_nul_bytes_pass_unchanged(self) -> None:
        data = b"Subject: \xe9t\xe9 \xff\n\nbin\x00ary \xfe\n"
        stream = io.BytesIO(data)
        parsed = read_header(stream)
        self.assertEqual(parsed.fields[0].text.encode("utf-8", "surrogateescape"), b"Subject: \xe9t\xe9 \xff\n")
        self.assertEqual(parsed.body_start + b"".join(lf_chunks(stream)), b"\nbin\x00ary \xfe\n")


class LfChunksTests(SynchronousTestCase):
    def test_crlf_split_across_chunks(self) -> None:
        data = b"a\r\nb\r\nc\r" + b"\nd\r\n"
        self.assertEqual(b"".join(lf_chunks(io.BytesIO(data), size=3)), b"a\nb\nc\nd\n")
        for size in range(1, 8):
            self.assertEqual(b"".join(lf_chunks(io.BytesIO(data), size=size)), b"a\nb\nc\nd\n", size)

    def test_trailing_cr_and_missing_newline(self) -> None:
        self.assertEqual(b"".join(lf_chunks(io.BytesIO(b"x\r"))), b"x\n")
        self.assertEqual(b"".join(lf_chunks(io.BytesIO(b"x\r"), size=1)), b"x\n")
        self.assertEqual(b"".join(lf_chunks(io.BytesIO(b""))), b"")
        self.assertEqual(b"".join(lf_chunks(io.BytesIO(b"x\n"))), b"x\n")
