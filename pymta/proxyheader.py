# -*- test-case-name: tests.test_proxyheader -*-
"""
The PROXY protocol header (HAProxy's, versions 1 and 2) at the start of a
connection from a proxy: framing with bounds, then Twisted's parsers.

L{read_header} looks at the bytes received so far and says one of three
things: more bytes are needed (None), the header is bad
(L{BadProxyHeader}), or here it is (L{ProxyHeader}, with the bytes after
it).  Bounds: version 1 is one line of at most 107 bytes with its CRLF;
version 2 is 16 bytes and a body of at most L{MAX_V2_BODY} bytes
(addresses and TLVs; the TLVs are skipped).  The first bytes decide the
version, so a client that sends anything else is refused at once.

The header either names the client (C{source}, a TCP address over IPv4
or IPv6: C{PROXY TCP4 ...}, or version 2's PROXY command with an INET or
INET6 stream) or names nobody (C{source} None): version 2's LOCAL command
is what a proxy sends on its own connections, health checks, and then the
connection's own addresses stand.  A header for a client the proxy cannot
name (version 1's C{UNKNOWN}, version 2's PROXY command without an address
family) is refused: the proxy's own address would stand for that client,
and on loopback it may relay.  Any other family (UNIX sockets, datagrams)
is refused.

Twisted's parsers (C{twisted.protocols.haproxy}) are used for the fields;
they are not part of its public API (only C{proxyEndpoint} is, which
believes any header and starts the protocol before the header arrives),
so they are imported here, in one place, and checked by this module's
tests.  What they leave unchecked (the addresses of a version 1 line, the
family of the result) is checked here.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser

__all__ = ["ProxyHeader", "BadProxyHeader", "read_header", "V1_MAX", "V2_SIGNATURE", "MAX_V2_BODY"]

#: the longest version 1 header, CRLF included (the protocol's own bound)
V1_MAX = 107
#: the 12 bytes that open a version 2 header
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: the longest version 2 body read (addresses are at most 216 bytes; the rest is TLVs)
MAX_V2_BODY = 4096
_V1_START = b"PROXY "

TCPAddress = IPv4Address | IPv6Address


class BadProxyHeader(Exception):
    """The connection did not start with a PROXY header pymta accepts; the message says why."""


@dataclass(frozen=True)
class ProxyHeader:
    """A parsed header: the client (C{source}) and the address it reached (C{destination}), or None for LOCAL."""

    version: int
    source: TCPAddress | None
    destination: TCPAddress | None


def read_header(data: bytes) -> tuple[ProxyHeader, bytes] | None:
    """
    The header at the start of C{data} and the bytes after it, None while
    more bytes are needed; L{BadProxyHeader} when C{data} cannot start with one.
    """
    if data[: len(V2_SIGNATURE)] == V2_SIGNATURE[: len(data)]:
        return _read_v2(data)
    if data[: len(_V1_START)] == _V1_START[: len(data)]:
        return _read_v1(data)
    raise BadProxyHeader("no PROXY header")


def _read_v1(data: bytes) -> tuple[ProxyHeader, bytes] | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end == -1:
        if len(data) >= V1_MAX:
            raise BadProxyHeader(f"PROXY line longer than {V1_MAX} bytes")
        return None
    line = data[:end]
    if line == b"PROXY UNKNOWN" or line.startswith(b"PROXY UNKNOWN "):
        # a client the proxy cannot name: taking the proxy's own address for it could make it a relay client
        raise BadProxyHeader("PROXY UNKNOWN: the proxy does not name the client")
    try:
        info = V1Parser.parse(line)
    except (InvalidProxyHeader, ValueError) as e:
        raise BadProxyHeader(f"bad PROXY line: {_shown(line)}") from e
    if info.source is None:
        raise BadProxyHeader(f"bad PROXY line: {_shown(line)}")
    source, destination = _checked(info.source), _checked(info.destination)
    family = ipaddress.IPv4Address if line.split(b" ")[1] == b"TCP4" else ipaddress.IPv6Address
    for address in (source, destination):
        try:
            valid = isinstance(ipaddress.ip_address(address.host), family) and 0 <= address.port <= 65535
        except ValueError:
            valid = False
        if not valid:
            raise BadProxyHeader(f"bad address in PROXY line: {_shown(line)}")
    return ProxyHeader(1, source, destination), data[end + 2 :]


def _read_v2(data: bytes) -> tuple[ProxyHeader, bytes] | None:
    if len(data) < 16:
        return None
    (length,) = struct.unpack("!H", data[14:16])
    if length > MAX_V2_BODY:
        raise BadProxyHeader(f"PROXY v2 header of {length} bytes (at most {MAX_V2_BODY} are read)")
    if len(data) < 16 + length:
        return None
    try:
        info = V2Parser.parse(data[: 16 + length])
    except (InvalidProxyHeader, ValueError, KeyError, struct.error) as e:
        raise BadProxyHeader(f"bad PROXY v2 header (version/command {data[12]:#04x}, family {data[13]:#04x})") from e
    if info.source is None:
        if data[12] & 0x0F != 0:  # PROXY without an address family: a client nobody can name (see v1 UNKNOWN)
            raise BadProxyHeader("PROXY v2 header without the client's address")
        return ProxyHeader(2, None, None), data[16 + length :]  # LOCAL: the proxy's own connection (health check)
    return ProxyHeader(2, _checked(info.source), _checked(info.destination)), data[16 + length :]


def _checked(address: object) -> TCPAddress:
    """A TCP address over IPv4 or IPv6, else L{BadProxyHeader}."""
    if isinstance(address, (IPv4Address, IPv6Address)) and address.type == "TCP":
        return address
    raise BadProxyHeader(f"not a TCP connection over IP: {address}")


def _shown(line: bytes) -> str:
    return line.decode("ascii", "replace")[:V1_MAX]
