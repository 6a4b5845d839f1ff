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

A proxy's health check (L{counted_address}: a PROXY version 2 LOCAL
connection) is no client's: it counts in the total, since it holds a
session like any other (a full server failing its checks is what the proxy
should see), but against no address.  Its address is the proxy's, which a
client may share: an application on the proxy's host, whose connections
through the proxy name that address, or an IPv6 client in the proxy's /64.
Counted per address, such a client at its limit would fail the proxy's
checks and take the server out of the proxy's rotation for everybody.
"""

from __future__ import annotations

from typing import Any

from pymta.clientaddress import client_group
from pymta.proxylistener import is_health_check

__all__ = ["ConnectionLimiter", "TOTAL", "PER_ADDRESS", "counted_address"]

TOTAL = "total"  # the server's total limit was reached
PER_ADDRESS = "per address"  # the client's address (IPv6: its /64) has its limit


def counted_address(transport: Any, ip: str) -> str | None:
    """The address a connection over C{transport} from C{ip} counts against: C{ip}, or None for a proxy's health check."""
    return None if is_health_check(transport) else ip


class ConnectionLimiter:
    """Counts open connections, in total and per client group (L{client_group})."""

    def __init__(self) -> None:
        self.total = 0
        self.by_group: dict[str, int] = {}

    def acquire(self, ip: str | None, total_limit: int, ip_limit: int) -> str | None:
        """
        Take a slot for C{ip} (None: a connection that is no client's, counted
        in the total only): None, or L{TOTAL} / L{PER_ADDRESS} when that limit
        is reached.
        """
        if self.total >= total_limit:
            return TOTAL
        if ip is None:
            self.total += 1
            return None
        group = client_group(ip)
        held = self.by_group.get(group, 0)
        if held >= ip_limit:
            return PER_ADDRESS
        self.total += 1
        self.by_group[group] = held + 1
        return None

    def release(self, ip: str | None) -> None:
        """Give back the slot a successful L{acquire} of C{ip} took."""
        self.total -= 1
        if ip is None:
            return
        group = client_group(ip)
        left = self.by_group.get(group, 1) - 1
        if left <= 0:
            self.by_group.pop(group, None)
        else:
            self.by_group[group] = left
