"""Tests for pymta.pop3d.encoding: CRLF conversion, byte-stuffing, TOP, sizes."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pymta.pop3d.encoding import MessageEncoder, crlf_size, file_crlf_size


def encode(data: bytes, chunks: list[int] | None = None, top: int | None = None) -> bytes:
    enc = MessageEncoder(top)
    out = []
    pos = 0
    for n in chunks or []:
        out.append(enc.feed(data[pos : pos + n]))
        pos += n
    out.append(enc.feed(data[pos:]))
    out.append(enc.finish())
    return b"".join(out)


def unstuff(wire: bytes) -> bytes:
    assert wire.endswith(b".\r\n")
    body = wire[:-3]
    lines = body.split(b"\r\n")
    assert lines[-1] == b""
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


class EncoderTests(SynchronousTestCase):
    def test_lf_to_crlf_and_stuffing(self) -> None:
        self.assertEqual(encode(b"A: b\n\n.hidden\nx.y\n..\n"), b"A: b\r\n\r\n..hidden\r\nx.y\r\n...\r\n.\r\n")

    def test_crlf_input_kept(self) -> None:
        self.assertEqual(encode(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n")

    def test_bare_cr_is_data(self) -> None:
        self.assertEqual(encode(b"a\rb\n"), b"a\rb\r\n.\r\n")

    def test_missing_final_newline(self) -> None:
        self.assertEqual(encode(b"a\n.b"), b"a\r\n..b\r\n.\r\n")
        self.assertEqual(encode(b"a\r"), b"a\r\r\n.\r\n")
        self.assertEqual(encode(b""), b".\r\n")

    def test_dot_at_chunk_boundary(self) -> None:
        data = b"x" * 16383 + b"\n" + b".line\n"
        self.assertEqual(encode(data, [16384]), b"x" * 16383 + b"\r\n..line\r\n.\r\n")
        self.assertEqual(encode(b"a\r\n.b\n", [2]), b"a\r\n..b\r\n.\r\n")

    def test_top(self) -> None:
        msg = b"H: 1\nH: 2\n\n.b1\nb2\nb3\n"
        self.assertEqual(encode(msg, top=0), b"H: 1\r\nH: 2\r\n\r\n.\r\n")
        self.assertEqual(encode(msg, top=2), b"H: 1\r\nH: 2\r\n\r\n..b1\r\nb2\r\n.\r\n")
        self.assertEqual(encode(msg, top=10), encode(msg))
        self.assertEqual(encode(b"H: 1\r\n\r\nb1", [3, 4], top=5), b"H: 1\r\n\r\nb1\r\n.\r\n")

    def test_top_zero_ends_with_the_empty_line(self) -> None:
        # header, the empty line that ends it, then the terminator: exact bytes,
        # also when the message has no empty line (a header only) or no final LF
        for msg in (b"H: 1\nH: 2\n\nbody\n", b"H: 1\nH: 2\n", b"H: 1\r\nH: 2"):
            for chunks in (None, [1] * len(msg), [3, 4]):
                self.assertEqual(encode(msg, chunks, top=0), b"H: 1\r\nH: 2\r\n\r\n.\r\n", (msg, chunks))
        self.assertEqual(encode(b"", top=0), b"\r\n.\r\n")
        self.assertEqual(encode(b"H: 1\n", top=3), b"H: 1\r\n\r\n.\r\n")
        # RETR sends the message as stored: no empty line is made up
        self.assertEqual(encode(b"H: 1\n"), b"H: 1\r\n.\r\n")

    def test_top_stops_early(self) -> None:
        enc = MessageEncoder(1)
        self.assertEqual(enc.feed(b"H: x\n\nb1\nb2\n"), b"H: x\r\n\r\nb1\r\n")
        self.assertTrue(enc.done)
        self.assertEqual(enc.feed(b"more\n"), b"")
        self.assertEqual(enc.finish(), b".\r\n")

    def test_sizes(self) -> None:
        self.assertEqual(crlf_size(b"a\nb\n"), 6)
        self.assertEqual(crlf_size(b"a\r\nb\r\n"), 6)
        self.assertEqual(crlf_size(b"a\nb"), 6)
        self.assertEqual(crlf_size(b""), 0)
        self.assertEqual(file_crlf_size(io.BytesIO(b"x\r" + b"\n" * 3)), 7)

    @settings(max_examples=300, deadline=None)
    @given(
        st.binary(max_size=300).map(lambda b: b.replace(b"\x00", b".")) | st.lists(st.sampled_from([b"\n", b"\r", b".", b"a", b"\r\n", b".."]), max_size=60).map(b"".join),
        st.lists(st.integers(min_value=0, max_value=40), max_size=12),
    )
    def test_any_chunking_same_output_and_size(self, data: bytes, chunks: list[int]) -> None:
        whole = encode(data)
        self.assertEqual(encode(data, chunks), whole)
        plain = unstuff(whole)
        self.assertEqual(len(plain), crlf_size(data))
        self.assertEqual(len(plain), file_crlf_size(io.BytesIO(data)))
        for line in whole[:-3].split(b"\r\n")[:-1]:
            self.assertNotIn(b"\n", line)
        # TOP with a limit past the end is RETR, plus the empty line that ends
        # the header when the message has none
        body = whole[:-3]
        has_empty_line = body.startswith(b"\r\n") or b"\r\n\r\n" in body
        self.assertEqual(encode(data, chunks, top=10**6), whole if has_empty_line else body + b"\r\n.\r\n")
