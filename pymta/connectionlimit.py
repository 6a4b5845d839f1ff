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

from pymta.clientaddress import client_group

__all__ = ["ConnectionLimiter", "TOTAL", "PER_ADDRESS"]

TOTAL = "total"  # the server's total limit was reached
PER_ADDRESS = "per address"  # the client's address (IPv6: its /64) has its limit


class ConnectionLimiter:
    """Counts open connections, in total and per client group (L{client_group})."""

    def __init__(self) -> None:
        self.total = 0
        self.by_group: dict[str, int] = {}

    def acquire(self, ip: str, total_limit: int, ip_limit: int) -> str | None:
        """Take a slot for C{ip}: None, or L{TOTAL} / L{PER_ADDRESS} when that limit is reached."""
        if self.total >= total_limit:
            return TOTAL
        group = client_group(ip)
        held = self.by_group.get(group, 0)
        if held >= ip_limit:
            return PER_ADDRESS
        self.total += 1
        self.by_group[group] = held + 1
        return None

    def release(self, ip: str) -> None:
        """Give back the slot a successful L{acquire} of C{ip} took."""
        self.total -= 1
        group = client_group(ip)
        left = self.by_group.get(group, 1) - 1
        if left <= 0:
            self.by_group.pop(group, None)
        else:
            self.by_group[group] = left
