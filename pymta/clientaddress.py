# -*- test-case-name: tests.test_clientaddress -*-
"""
How a client's address is written and counted, the same way in access
rules, connection limits and login budgets.

L{normalise_ip}: an IPv4-mapped IPv6 address (C{::ffff:192.0.2.7}) is the
IPv4 address it carries, any other address its canonical text.
L{client_group}: what limits and budgets count under: an IPv4 address as
is, an IPv6 address by its /64 (one site or host usually has all of it).
Text that is no address ("unknown", a UNIX socket peer) stays as given, so
all such peers share one count.
"""

from __future__ import annotations

import functools
import ipaddress

__all__ = ["normalise_ip", "client_group", "IPV6_GROUP_PREFIX"]

IPV6_GROUP_PREFIX = 64


@functools.lru_cache(maxsize=4096)  # a busy server sees the same few addresses again and again
def normalise_ip(ip: str) -> str:
    """An IPv4-mapped IPv6 address as plain IPv4; other addresses in canonical form; anything else unchanged."""
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)


@functools.lru_cache(maxsize=4096)  # asked twice per connection (its slot taken and given back)
def client_group(ip: str) -> str:
    """The key an address is counted under: IPv4 (mapped or not) as is, IPv6 by its /64 (scope dropped)."""
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        shift = 128 - IPV6_GROUP_PREFIX
        return str(ipaddress.IPv6Network(((int(parsed) >> shift) << shift, IPV6_GROUP_PREFIX)))
    return str(parsed)
