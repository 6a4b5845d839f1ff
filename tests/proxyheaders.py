"""PROXY protocol headers as a proxy (HAProxy) writes them, for the tests."""

from __future__ import annotations

import ipaddress
import struct

from pymta.proxyheader import V2_SIGNATURE

PROXY = 0x21  # version 2, PROXY command
LOCAL = 0x20  # version 2, LOCAL command (the proxy's own connection)


def v1(source: str, destination: str, sport: int = 40000, dport: int = 25) -> bytes:
    """A version 1 line: C{PROXY TCP4|TCP6 SRC DST SPORT DPORT\\r\\n}."""
    family = "TCP6" if ":" in source else "TCP4"
    return f"PROXY {family} {source} {destination} {sport} {dport}\r\n".encode("ascii")


def v2(source: str, destination: str, sport: int = 40000, dport: int = 25, tlvs: bytes = b"") -> bytes:
    """A version 2 PROXY header over TCP (IPv4 or IPv6 by C{source}), with optional TLV bytes."""
    src, dst = ipaddress.ip_address(source), ipaddress.ip_address(destination)
    family = 0x21 if src.version == 6 else 0x11  # INET6 or INET, STREAM
    body = src.packed + dst.packed + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIGNATURE + bytes([PROXY, family]) + struct.pack("!H", len(body)) + body


def v2_local() -> bytes:
    """A version 2 LOCAL header, as HAProxy's health checks send it."""
    return V2_SIGNATURE + bytes([LOCAL, 0x00]) + struct.pack("!H", 0)
