# -*- test-case-name: tests.test_trustedproxies -*-
"""
control/trustedproxies: the proxies whose PROXY protocol headers pymta
believes (a pymta addition; see docs/proxy.md).

One entry a line: an IPv4 or IPv6 address (C{127.0.0.1}, C{::1}) or a
prefix in CIDR form (C{10.1.0.0/16}, C{2001:db8::/32}); blank lines and
C{#} lines are skipped.  A prefix with bits set after its length
(C{10.1.2.3/16}) is refused, as is anything else that is no address: a
typo never turns into a proxy that is silently trusted or never matches.

No file (or an empty one) trusts no proxy: every connection to a
C{haproxy:} listener is then refused.  Listeners without C{haproxy:} never
read a PROXY header, whatever this file says.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Callable, Sequence

from pymta.clientaddress import normalise_ip
from pymta.control import ControlReader, Controls, entry_error

__all__ = ["TrustedProxies", "parse_trusted_proxies", "trusted_proxies", "current_trusted_proxies", "FILE_NAME"]

#: the control file's name
FILE_NAME = "trustedproxies"

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustedProxies:
    """The networks of control/trustedproxies (empty: no proxy is trusted)."""

    networks: tuple[_Network, ...] = ()

    def trusts(self, ip: str) -> bool:
        """Whether the socket peer C{ip} (IPv4-mapped IPv6 counts as IPv4) is a listed proxy."""
        try:
            address = ipaddress.ip_address(normalise_ip(ip))
        except ValueError:
            return False  # a UNIX socket peer, "unknown": no address, never trusted
        return any(address in network for network in self.networks)


def parse_trusted_proxies(lines: Sequence[str]) -> TrustedProxies:
    """The entries of control/trustedproxies; L{pymta.control.ControlError} names a bad line."""
    networks: list[_Network] = []
    for index, entry in enumerate(lines):
        text = entry.strip()
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError as e:
            reason = f"{e}" if "/" in text else f"not an IP address or prefix: {text!r}"
            raise entry_error(lines, index, reason, FILE_NAME) from None
        if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
            # peers are compared as IPv4 (normalise_ip), so such an entry could never match
            raise entry_error(lines, index, f"an IPv4-mapped address: write it as IPv4, not {text!r}", FILE_NAME)
        networks.append(network)
    return TrustedProxies(tuple(networks))


def trusted_proxies(controls: Controls) -> TrustedProxies:
    """The trusted proxies of C{controls}' control/trustedproxies (none when it is absent)."""
    return parse_trusted_proxies(controls.extra_lines(FILE_NAME) or [])


def current_trusted_proxies(reader: ControlReader) -> Callable[[], TrustedProxies]:
    """
    What a C{haproxy:} listener asks at each connection: the list of the
    reader's current snapshot, parsed once per snapshot (so a reload
    applies to the next connection).  The reader checks the file at every
    reload (L{ControlReader.add_check}), so a broken file keeps the old list.
    """
    reader.add_check(trusted_proxies)
    cached: list[tuple[Controls, TrustedProxies]] = []

    def current() -> TrustedProxies:
        controls = reader.current
        if not cached or cached[0][0] is not controls:
            cached[:] = [(controls, trusted_proxies(controls))]
        return cached[0][1]

    return current
