"""The DATA state machine: end marker, dot-unstuffing, bare LF, hops, databytes, chunk boundaries."""

from __future__ import annotations

import itertools

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pymta.smtpd.data import BARE_LF, END, LINE_TOO_LONG, DataStream, crlf_to_lf


def run(data: bytes, chunk: int | None = None, **kw: int) -> tuple[bytes, str | None, bytes, DataStream]:
    out: list[bytes] = []
    stream = DataStream(out.append, **kw)
    buf = b""
    outcome = None
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        buf += piece
        consumed, outcome = stream.feed(buf)
        buf = buf[consumed:]
        if outcome is not None:
            break
    return b"".join(out), outcome, buf, stream


class DataStreamTests(SynchronousTestCase):
    def test_simple(self) -> None:
        out, outcome, rest, _ = run(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n")
        self.assertEqual((out, outcome, rest), (b"Subject: x\n\nhello\n", END, b"QUIT\r\n"))

    def test_empty_message(self) -> None:
        self.assertEqual(run(b".\r\n")[:2], (b"", END))

    def test_dots(self) -> None:
        out, outcome, _, _ = run(b"..a\r\n.b\r\n\r\n..\r\n.c\r\n...\r\n.\r\n")
        self.assertEqual((out, outcome), (b".a\nb\n\n.\nc\n..\n", END))

    def test_bare_cr_kept(self) -> None:
        out, outcome, _, _ = run(b"a\rb\r\n\r\nc\r\r\n.\r\r\n.\r\n")
        self.assertEqual((out, outcome), (b"a\rb\n\nc\r\n.\r\n", END))

    def test_dot_before_bare_cr_kept(self) -> None:
        """qmail removes a leading dot only when no CR follows it: C{.\\r} + anything but LF keeps its dot and ends nothing."""
        data = b".\rx\r\n.\r\r\n..\rb\r\n\r\n.\r.\r\n.\r\r\n.\rx\r\n.\r\n"
        out, outcome, _, _ = run(data)
        self.assertEqual((out, outcome), (b".\rx\n.\r\n.\rb\n\n.\r.\n.\r\n.\rx\n", END))
        for chunk in (1, 2, 3, 5):
            self.assertEqual(run(data, chunk)[:2], (out, END), chunk)

    def test_bare_lf_everywhere_refused(self) -> None:
        for data in (b"a\nb\r\n.\r\n", b"h: v\r\n\r\nx\n.\n", b"h: v\r\n\r\nx\r\n.\n", b"\n.\r\n", b"h: v\r\n\r\n\n"):
            self.assertEqual(run(data)[1], BARE_LF, data)

    def test_chunk_boundaries(self) -> None:
        data = b"H: 1\r\nReceived: x\r\n\r\n" + b"..line\r\n" * 50 + b".\r\nNOOP\r\n"
        expected = run(data)
        for chunk in (1, 2, 3, 7, 64):
            got = run(data, chunk)
            self.assertEqual(got[0], expected[0], chunk)
            self.assertEqual(got[1], END)

    def test_hops_only_in_header(self) -> None:
        data = b"Received: a\r\nDELIVERED-To: b\r\nreceivedx\r\nX-Received: no\r\n\r\nReceived: body\r\n.\r\n"
        self.assertEqual(run(data)[3].hops, 3)

    def test_hops_counted_on_the_line_as_sent(self) -> None:
        """qmail counts a hop on the bytes as sent: a stuffed C{.Received} line is stored as C{Received} but is no hop."""
        out, outcome, _, stream = run(b".Received: a\r\n..Delivered-To: b\r\nReceived: c\r\n\r\n.\r\n")
        self.assertEqual((out, outcome, stream.hops), (b"Received: a\n.Delivered-To: b\nReceived: c\n\n", END, 1))

    def test_header_of_one_feed_handed_on_in_one_piece(self) -> None:
        out: list[bytes] = []
        stream = DataStream(out.append)
        stream.feed(b"A: 1\r\nReceived: 2\r\n.B: 3\r\n\r\nbody\r\n")
        self.assertEqual(out, [b"A: 1\nReceived: 2\nB: 3\n\n", b"body\n"])
        self.assertEqual((stream.hops, stream.in_header), (1, False))

    def test_too_many_hops_writes_nothing_more(self) -> None:
        out, outcome, _, stream = run(b"Received: x\r\n" * 120 + b"\r\nbody\r\n.\r\n", chunk=50)
        self.assertEqual(outcome, END)
        self.assertTrue(stream.too_many_hops)
        self.assertFalse(out.endswith(b"body\n"))

    def test_databytes(self) -> None:
        out, outcome, _, stream = run(b"123456789\r\n.\r\n", databytes=10)
        self.assertFalse(stream.too_big)
        out, outcome, _, stream = run(b"1234567890\r\nmore\r\n.\r\n", databytes=10)
        self.assertTrue(stream.too_big)
        self.assertEqual(outcome, END)
        self.assertEqual(out, b"")  # nothing written past the limit

    def test_line_too_long(self) -> None:
        out, outcome, rest, _ = run(b"H: v\r\n\r\n" + b"x" * 5000, max_line=1000)
        self.assertEqual(outcome, LINE_TOO_LONG)
        out, outcome, rest, _ = run(b"x" * 5000, max_line=1000)
        self.assertEqual(outcome, LINE_TOO_LONG)

    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(st.binary(max_size=12).filter(lambda b: b"\n" not in b and b"\r" not in b), max_size=20),
        st.integers(min_value=1, max_value=9),
    )
    def test_roundtrip_property(self, lines: list[bytes], chunk: int) -> None:
        """Stuffing any message and feeding it in any chunks gives the message back."""
        body = b"".join(b"." + line + b"\r\n" if line.startswith(b".") else line + b"\r\n" for line in lines)
        out, outcome, rest, _ = run(body + b".\r\nQUIT\r\n", chunk)
        self.assertEqual(outcome, END)
        self.assertEqual(out, b"".join(line + b"\n" for line in lines))

    def test_dot_free_pieces(self) -> None:
        """A piece with no dot at all (the whole-chunk path) keeps every rule: CRLF -> LF, bare CR kept, bare LF refused."""
        out, outcome, _, _ = run(b"H: v\r\n\r\n" + b"x\ry\r\n" * 40 + b"\r\n" + b".\r\n", chunk=64)
        self.assertEqual((out, outcome), (b"H: v\n\n" + b"x\ry\n" * 40 + b"\n", END))
        self.assertEqual(run(b"H: v\r\n\r\n" + b"xx\r\n" * 40 + b"x\nx\r\n.\r\n", chunk=64)[1], BARE_LF)
        self.assertEqual(run(b"H: v\r\n\r\nxx\r\n" + b"x\r\r\n\n", chunk=64)[1], BARE_LF)

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.sampled_from([b"a", b"b", b".", b"\r", b"\n", b"\r\n", b"\r\n.\r\n", b"\r\n.", b".\r", b"Received", b"\r\n\r\n"]),
            max_size=40,
        ),
        st.integers(min_value=1, max_value=70),
        st.booleans(),
    )
    def test_same_as_line_by_line(self, pieces: list[bytes], chunk: int, header: bool) -> None:
        """Whatever the bytes and the pieces they come in: the outcome, stored bytes and hops of qmail's rule."""
        data = (b"" if header else b"H: v\r\n\r\n") + b"".join(pieces) + b"\r\n.\r\n"
        expected_out, expected, expected_hops = _line_by_line(data)
        blasted_out, blasted, blasted_hops = _blast(data)
        self.assertEqual(blasted, expected)
        if expected == END:
            self.assertEqual((blasted_out, blasted_hops), (expected_out, expected_hops))
        out, outcome, _, stream = run(data, chunk)
        self.assertEqual(outcome, expected)
        if expected == END:
            self.assertEqual((out, stream.hops), (expected_out, expected_hops))

    def test_every_short_input_as_qmail(self) -> None:
        """Every string of up to 7 bytes of C{. \\r \\n a}, at the start of the data and in the body, whole and byte by byte: qmail's outcome and bytes."""
        alphabet = (b".", b"\r", b"\n", b"a")
        strings = [b"".join(letters) for n in range(8) for letters in itertools.product(alphabet, repeat=n)]
        checked = 0
        for prefix in (b"", b"H: v\r\n\r\n"):
            for s in strings:
                data = prefix + s + b"\r\n.\r\n"
                expected_out, expected, _ = _blast(data)
                for chunk in (None, 1):
                    out, outcome, _, _ = run(data, chunk)
                    self.assertEqual(outcome, expected, data)
                    if expected == END:
                        self.assertEqual(out, expected_out, data)
                checked += 1
        self.assertEqual(checked, 2 * sum(4**n for n in range(8)))


class CrlfToLfTests(SynchronousTestCase):
    def test_short_and_long_lines(self) -> None:
        """Both ways (replace for short lines, split and join for long ones) give the same bytes."""
        for line in (b"", b"x", b"x\ry", b"a" * 31, b"a" * 32, b"a" * 200):
            lines = (line + b"\r\n") * 10
            self.assertEqual(crlf_to_lf(lines), lines.replace(b"\r\n", b"\n"), line)

    def test_bare_lf(self) -> None:
        for lines in (b"x\n", b"a" * 100 + b"\r\n" + b"b" * 100 + b"\n", b"\r\n\n", b"x" * 99 + b"\r\r\n\n"):
            self.assertIsNone(crlf_to_lf(lines), lines)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.sampled_from([b"a" * 40, b"b", b"\r", b"\n", b"\r\n"]), max_size=30))
    def test_same_as_replace(self, pieces: list[bytes]) -> None:
        lines = b"".join(pieces) + b"\r\n"
        bare = lines.count(b"\n") != lines.count(b"\r\n")
        self.assertEqual(crlf_to_lf(lines), None if bare else lines.replace(b"\r\n", b"\n"))


def _is_hop(line: bytes) -> bool:
    return line[:8].lower() == b"received" or line[:9].lower() == b"delivered"


def _line_by_line(data: bytes) -> tuple[bytes, str | None, int]:
    """A reference: qmail-smtpd's DATA rule, one line at a time (stored bytes, outcome, hops)."""
    out: list[bytes] = []
    pos = 0
    hops = 0
    in_header = True
    while True:
        nl = data.find(b"\n", pos)
        if nl == -1:
            return b"".join(out), None, hops
        if nl == pos or data[nl - 1] != 13:
            return b"".join(out), BARE_LF, hops
        line, pos = data[pos : nl - 1], nl + 1
        if line == b".":
            return b"".join(out), END, hops
        if in_header:
            in_header = line != b""
            hops += in_header and _is_hop(line)
        unstuff = line.startswith(b".") and line[1:2] != b"\r"
        out.append((line[1:] if unstuff else line) + b"\n")


def _blast(data: bytes) -> tuple[bytes, str | None, int]:
    """
    The other reference: qmail-smtpd's DATA reader as it is written, one byte
    at a time through its five states (0 inside a line, 1 after CRLF, 2 after
    CRLF and a dot, 3 after CRLF, dot and CR, 4 after a CR that may begin a
    CRLF); hops counted on the bytes as sent, in the header only.
    """
    out = bytearray()
    state = 1
    hops = 0
    header = True
    line = bytearray()
    for value in data:
        ch = bytes([value])
        if header:
            line += ch
            if ch == b"\n":
                hops += _is_hop(bytes(line))
                header = bytes(line) != b"\r\n"
                line.clear()
        if state == 0:
            if ch == b"\n":
                return bytes(out), BARE_LF, hops
            if ch == b"\r":
                state = 4
                continue
        elif state == 1:
            if ch == b"\n":
                return bytes(out), BARE_LF, hops
            if ch == b".":
                state = 2
                continue
            if ch == b"\r":
                state = 4
                continue
            state = 0
        elif state == 2:
            if ch == b"\n":
                return bytes(out), BARE_LF, hops
            if ch == b"\r":
                state = 3
                continue
            state = 0  # the dot is dropped
        elif state == 3:
            if ch == b"\n":
                return bytes(out), END, hops
            out += b".\r"  # the dot and the CR are kept
            if ch == b"\r":
                state = 4
                continue
            state = 0
        else:
            if ch == b"\n":
                state = 1
            elif ch != b"\r":
                out += b"\r"
                state = 0
        out += ch
    return bytes(out), None, hops
