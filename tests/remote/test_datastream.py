"""Tests for pymta.remote.datastream: DATA encoding at any chunk boundary."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from pymta.remote.datastream import DataEncoder, encode_message


def reference(message: bytes) -> bytes:
    """A straightforward model of the rules: split into lines, stuff, join with CRLF."""
    text = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not text:
        return b".\r\n"
    if not text.endswith(b"\n"):
        text += b"\n"
    lines = text[:-1].split(b"\n")
    out = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    return out + b".\r\n"


class EncoderTests(unittest.SynchronousTestCase):
    def test_notqmail_unit_cases(self) -> None:
        self.assertEqual(encode_message(b""), b".\r\n")
        self.assertEqual(encode_message(b".\n"), b"..\r\n.\r\n")
        self.assertEqual(encode_message(b"cr\rlf\n"), b"cr\r\nlf\r\n.\r\n")
        self.assertEqual(encode_message(b".\r\n"), b"..\r\n.\r\n")

    def test_lone_dot_after_chunk_boundary_is_stuffed(self) -> None:
        message = b"a" * 16383 + b"\n.\nafter\n"
        for size in (16384, 16385, 1, 2, 3):
            self.assertEqual(encode_message(message, size), b"a" * 16383 + b"\r\n..\r\nafter\r\n.\r\n")

    def test_cr_at_chunk_end(self) -> None:
        self.assertEqual(encode_message(b"a\r\n.b\n", 2), b"a\r\n..b\r\n.\r\n")
        self.assertEqual(encode_message(b"a\r.b\n", 2), b"a\r\n..b\r\n.\r\n")
        self.assertEqual(encode_message(b"a\r", 2), b"a\r\n.\r\n")

    def test_partial_final_line_gets_line_end(self) -> None:
        encoder = DataEncoder()
        data = encoder.encode(b"line\nno end") + encoder.finish()
        self.assertEqual(data, b"line\r\nno end\r\n.\r\n")
        self.assertTrue(encoder.partial_final_line)

    def test_eight_bit_kept(self) -> None:
        self.assertEqual(encode_message("Grüße\n".encode()), "Grüße\r\n.\r\n".encode())

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200).map(lambda b: b.translate(bytes.maketrans(b"\x00\x01\x02\x03", b"\r\n.."))),
           st.integers(min_value=1, max_value=20))
    def test_any_chunking_matches_model(self, message: bytes, size: int) -> None:
        self.assertEqual(encode_message(message, size), reference(message))
        self.assertEqual(encode_message(message), reference(message))
