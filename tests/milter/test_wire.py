"""pymta.milter.wire: packets both ways, the filter's answers parsed, bounds and malformed data refused."""

from __future__ import annotations

import struct

from twisted.trial import unittest

from pymta.milter import wire
from pymta.milter.wire import PacketReader, ProtocolError, Response, encode_packet, parse_response


class PacketTests(unittest.TestCase):
    def test_encode(self) -> None:
        self.assertEqual(encode_packet(b"Q"), b"\0\0\0\x01Q")
        self.assertEqual(encode_packet(b"H", b"mx.example\0"), b"\0\0\0\x0cHmx.example\0")
        self.assertRaises(ValueError, encode_packet, b"QQ")

    def test_reader_round_trip_split_anywhere(self) -> None:
        stream = encode_packet(b"c") + encode_packet(b"h", b"X-Spam\0yes\0") + encode_packet(b"a")
        for cut in range(len(stream) + 1):
            reader = PacketReader()
            packets = reader.feed(stream[:cut]) + reader.feed(stream[cut:])
            self.assertEqual(packets, [(b"c", b""), (b"h", b"X-Spam\0yes\0"), (b"a", b"")])

    def test_reader_bounds(self) -> None:
        reader = PacketReader(limit=100)
        self.assertEqual(reader.feed(encode_packet(b"b", b"x" * 99)), [(b"b", b"x" * 99)])
        self.assertRaises(ProtocolError, PacketReader(limit=100).feed, struct.pack(">I", 101))
        self.assertRaises(ProtocolError, PacketReader().feed, struct.pack(">I", wire.MAX_PACKET + 1))
        self.assertRaises(ProtocolError, PacketReader().feed, b"\0\0\0\0")

    def test_strings(self) -> None:
        self.assertEqual(wire.encode_strings(["a", b"b", "é"]), b"a\0b\0\xc3\xa9\0")
        self.assertRaises(ValueError, wire.encode_strings, ["a\0b"])
        self.assertEqual(wire.split_strings(b"a\0b\0"), ["a", "b"])
        self.assertRaises(ProtocolError, wire.split_strings, b"a\0b")
        self.assertRaises(ProtocolError, wire.split_strings, b"a\0", 2)

    def test_connect_and_macros(self) -> None:
        self.assertEqual(wire.encode_connect("mx.example", "4", 25, "192.0.2.1"),
                         b"mx.example\x004\x00\x19192.0.2.1\0")
        self.assertEqual(wire.encode_connect("[unknown]", "", 0, ""), b"[unknown]\0U")
        self.assertEqual(wire.encode_macros(b"M", [("i", "ABC"), ("{mail_addr}", "a@b")]),
                         b"Mi\0ABC\0{mail_addr}\0a@b\0")


class ResponseTests(unittest.TestCase):
    def test_simple_answers(self) -> None:
        for command in b"acdrtspf4":
            self.assertEqual(parse_response(bytes([command]), b""), Response(bytes([command])))

    def test_every_modification(self) -> None:
        index = struct.pack(">I", 2)
        self.assertEqual(parse_response(b"y", b"550 5.7.1 no\0"), Response(b"y", ("550 5.7.1 no",)))
        self.assertEqual(parse_response(b"h", b"X-A\0v\0"), Response(b"h", ("X-A", "v")))
        self.assertEqual(parse_response(b"i", index + b"X-A\0v\0"), Response(b"i", ("X-A", "v"), index=2))
        self.assertEqual(parse_response(b"m", index + b"Subject\0\0"), Response(b"m", ("Subject", ""), index=2))
        self.assertEqual(parse_response(b"e", b"<a@b>\0"), Response(b"e", ("<a@b>", "")))
        self.assertEqual(parse_response(b"e", b"<a@b>\0SIZE=1\0"), Response(b"e", ("<a@b>", "SIZE=1")))
        self.assertEqual(parse_response(b"+", b"<c@d>\0"), Response(b"+", ("<c@d>",)))
        self.assertEqual(parse_response(b"2", b"<c@d>\0NOTIFY=NEVER\0"), Response(b"2", ("<c@d>", "NOTIFY=NEVER")))
        self.assertEqual(parse_response(b"-", b"<c@d>\0"), Response(b"-", ("<c@d>",)))
        self.assertEqual(parse_response(b"b", b"new body\r\n"), Response(b"b", body=b"new body\r\n"))
        self.assertEqual(parse_response(b"q", b"virus\0"), Response(b"q", ("virus",)))

    def test_malformed(self) -> None:
        for command, data in ((b"y", b"550 no"), (b"h", b"X-A\0"), (b"i", b"\0\0"), (b"m", b"\0\0\0\x01X\0"),
                              (b"e", b""), (b"e", b"a\0b\0c\0"), (b"+", b"a\0b\0"), (b"Z", b"")):
            self.assertRaises(ProtocolError, parse_response, command, data)
