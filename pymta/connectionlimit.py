# -*- test-case-name: tests.test_connectionlimit -*-
"""
Simultaneous connections, in total and per client address, for smtpd and
pop3d.

A server takes a slot when it accepts a connection (before it answers, so
clients connecting in parallel cannot all slip under the limit) and gives
it back when the connection is gone.  An IPv4 address counts on its own
(an IPv4-mapped IPv6 address as that IPv4 address); IPv6 addresses count
per /64 network, because one host usually has a whole /64 to pick
addresses from.  The reply to a refused client is the protocol's business:
L{ConnectionLimiter.acquire} says which limit was reached.
"""

from __future__ import annotations

import ipaddress

__all__ = ["ConnectionLimiter", "client_group", "TOTAL", "PER_ADDRESS"]

TOTAL = "total"  # the server's total limit was reached
PER_ADDRESS = "per address"  # the client's address (IPv6: its /64) has its limit

IPV6_GROUP_PREFIX = 64


def client_group(ip: str) -> str:
    """The key an address is counted under: the address itself, or its /64 for IPv6."""
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # "unknown", a UNIX socket path: counted as given
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, IPV6_GROUP_PREFIX), strict=False))
    return str(parsed)


class ConnectionLimiter:
    """Counts open connections, in total and per client group (L{client_group})."""

    def __init__(self) -> None:
        self.total = 0
        self.by_ip: dict[str, int] = {}

    def acquire(self, ip: str, total_limit: int, ip_limit: int) -> str | None:
        """Take a slot for C{ip}: None, or L{TOTAL} / L{PER_ADDRESS} when that limit is reached."""
        if self.total >= total_limit:
            return TOTAL
        group = client_group(ip)
        held = self.by_ip.get(group, 0)
        if held >= ip_limit:
            return PER_ADDRESS
        self.total += 1
        self.by_ip[group] = held + 1
        return None

    def release(self, ip: str) -> None:
        """Give back the slot a successful L{acquire} of C{ip} took."""
        self.total -= 1
        group = client_group(ip)
        left = self.by_ip.get(group, 1) - 1
        if left <= 0:
            self.by_ip.pop(group, None)
        else:
            self.by_ip[group] = left
