"""pymta.proxyheader: framing, bounds and checks of PROXY headers (v1 and v2)."""

from __future__ import annotations

import struct

from twisted.trial.unittest import TestCase

from pymta.proxyheader import MAX_V2_BODY, V1_MAX, V2_SIGNATURE, BadProxyHeader, read_header
from tests.proxyheaders import v1, v2, v2_local


class Version1(TestCase):
    def test_tcp4_names_the_client_and_keeps_what_follows(self) -> None:
        found = read_header(v1("203.0.113.9", "198.51.100.1", 1234, 25) + b"EHLO x\r\n")
        assert found is not None
        header, rest = found
        self.assertEqual((header.version, header.source.host, header.source.port), (1, "203.0.113.9", 1234))  # type: ignore[union-attr]
        self.assertEqual((header.destination.host, header.destination.port), ("198.51.100.1", 25))  # type: ignore[union-attr]
        self.assertEqual(rest, b"EHLO x\r\n")

    def test_tcp6(self) -> None:
        found = read_header(v1("2001:db8::9", "2001:db8::1"))
        assert found is not None
        self.assertEqual(found[0].source.host, "2001:db8::9")  # type: ignore[union-attr]

    def test_partial_line_needs_more(self) -> None:
        whole = v1("203.0.113.9", "198.51.100.1")
        for cut in (0, 1, 5, 6, len(whole) - 1):
            self.assertIsNone(read_header(whole[:cut]), cut)

    def test_unknown_is_refused(self) -> None:
        """A client the proxy cannot name would get the proxy's address (a relay client on loopback): refused."""
        for line in (b"PROXY UNKNOWN\r\nQUIT\r\n", b"PROXY UNKNOWN ffff::1 ffff::2 1 25\r\nQUIT\r\n"):
            self.assertRaises(BadProxyHeader, read_header, line)

    def test_refused(self) -> None:
        for data in (
            b"EHLO x\r\n",
            b"PROXY TCP4 203.0.113.9 198.51.100.1 1234\r\n",  # no destination port
            b"PROXY TCP4 203.0.113.9 198.51.100.1 x 25\r\n",
            b"PROXY TCP4 203.0.113.9 198.51.100.1 70000 25\r\n",
            b"PROXY TCP4 mail.example 198.51.100.1 1 25\r\n",  # no address
            b"PROXY TCP4 2001:db8::9 198.51.100.1 1 25\r\n",  # the wrong family
            b"PROXY UDP4 203.0.113.9 198.51.100.1 1 25\r\n",
            b"PROXY TCP4 " + b"1" * V1_MAX,  # no CRLF within the bound
        ):
            self.assertRaises(BadProxyHeader, read_header, data)


class Version2(TestCase):
    def test_inet_names_the_client(self) -> None:
        found = read_header(v2("203.0.113.9", "198.51.100.1", 1234, 587) + b"EHLO x\r\n")
        assert found is not None
        header, rest = found
        self.assertEqual((header.version, header.source.host, header.source.port), (2, "203.0.113.9", 1234))  # type: ignore[union-attr]
        self.assertEqual(header.destination.port, 587)  # type: ignore[union-attr]
        self.assertEqual(rest, b"EHLO x\r\n")

    def test_inet6_and_tlvs_skipped(self) -> None:
        tlv = bytes([0x05]) + struct.pack("!H", 4) + b"uid1"  # PP2_TYPE_UNIQUE_ID
        found = read_header(v2("2001:db8::9", "2001:db8::1", tlvs=tlv) + b"QUIT\r\n")
        assert found is not None
        self.assertEqual((found[0].source.host, found[1]), ("2001:db8:0:0:0:0:0:9", b"QUIT\r\n"))  # type: ignore[union-attr]

    def test_partial_header_needs_more(self) -> None:
        whole = v2("203.0.113.9", "198.51.100.1")
        for cut in (1, 12, 15, 16, len(whole) - 1):
            self.assertIsNone(read_header(whole[:cut]), cut)

    def test_local_names_nobody(self) -> None:
        found = read_header(v2_local() + b"QUIT\r\n")
        assert found is not None
        self.assertEqual((found[0].version, found[0].source, found[1]), (2, None, b"QUIT\r\n"))

    def test_refused(self) -> None:
        good = v2("203.0.113.9", "198.51.100.1")
        unix = V2_SIGNATURE + bytes([0x21, 0x31]) + struct.pack("!H", 216) + b"/a".ljust(108, b"\0") * 2
        for data in (
            good[:12] + b"\x11" + good[13:],  # version 1 in a v2 header
            good[:12] + b"\x2f" + good[13:],  # unknown command
            good[:13] + b"\x12" + good[14:],  # a datagram
            unix,
            V2_SIGNATURE + bytes([0x21, 0x00]) + struct.pack("!H", 0),  # PROXY naming no client (AF_UNSPEC)
            good[:14] + struct.pack("!H", 4) + good[16:20],  # addresses cut short
            good[:14] + struct.pack("!H", MAX_V2_BODY + 1),  # over the bound: refused before it is read
        ):
            self.assertRaises(BadProxyHeader, read_header, data)
