# -*- test-case-name: tests.test_resolvers -*-
"""
Which DNS servers pymta asks: C{control/resolvers} (a pymta addition).

Absent: the system's resolver (C{/etc/resolv.conf}).  Present: one
server a line, C{IP}, C{IP:PORT} or C{[IPv6]:PORT}, asked in file order;
an empty file is an error (it would leave pymta without DNS).  Useful in
production to point mail at a local caching (or validating) resolver
without changing the host's resolv.conf, and in tests to point it at a
test server.  The daemons read it when they start.

A server may be marked C{validating} after its address
(C{127.0.0.1 validating}): the administrator declares that it checks
DNSSEC signatures itself, so its AD bit can be trusted; DANE
(L{pymta.remote.dane}) is used only when every listed server is marked.
Marking some servers and not others is an error: which one answers is
chance, and an AD bit from a server that does not validate is forgeable.

L{parse_nameserver} is also C{pymta dns check --nameserver}'s parser.
"""

from __future__ import annotations

import ipaddress

import dns.nameserver
import dns.resolver

from pymta.control import Controls, entry_error

__all__ = ["parse_nameserver", "configured_nameservers", "validating_resolvers", "make_resolver", "CACHE_ENTRIES",
           "VALIDATING"]

#: answers a resolver keeps (each for its TTL)
CACHE_ENTRIES = 10000

#: the word after a server's address that declares it a DNSSEC-validating resolver
VALIDATING = "validating"


def parse_nameserver(text: str) -> tuple[str, int]:
    """C{IP}, C{IP:PORT} or C{[IPv6]:PORT} as (address, port); ValueError with a reason otherwise."""
    host, port = text, "53"
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad name server {text!r}: expected [IPv6]:PORT")
        port = rest[1:] or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"bad name server {text!r}: not an IP address") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad name server {text!r}: bad port {port!r}")
    return address, int(port)


def configured_nameservers(controls: Controls) -> tuple[tuple[str, int], ...] | None:
    """
    The servers of control/resolvers, or None when the file is absent
    (the system's resolver).  A bad line, or a file without servers, is
    a L{pymta.control.ControlError} naming it.
    """
    lines = controls.extra_lines("resolvers")
    if lines is None:
        return None
    if not lines:
        raise entry_error([""], 0, "no name server listed: remove the file to use the system's resolver", "resolvers")
    servers = []
    marked = set()
    for index, line in enumerate(lines):
        address, _, option = line.strip().partition(" ")
        try:
            if option.strip() not in ("", VALIDATING):
                raise ValueError(f"unknown option {option.strip()!r} after the name server: only {VALIDATING!r}")
            servers.append(parse_nameserver(address))
        except ValueError as e:
            raise entry_error(lines, index, str(e), "resolvers") from None
        marked.add(bool(option.strip()))
        if len(marked) > 1:
            raise entry_error(lines, index, f"mark every name server {VALIDATING!r} or none: DNSSEC answers are "
                              "trusted only when every server validates", "resolvers")
    return tuple(servers)


def validating_resolvers(controls: Controls) -> bool:
    """
    True when control/resolvers lists servers and every one is marked
    C{validating} (checked by L{configured_nameservers}): their AD bit may be trusted.
    """
    if configured_nameservers(controls) is None:
        return False
    lines = controls.extra_lines("resolvers") or []
    return all(line.strip().partition(" ")[2].strip() == VALIDATING for line in lines)


def make_resolver(nameservers: tuple[tuple[str, int], ...] | None) -> dns.resolver.Resolver:
    """
    A dnspython resolver with a TTL-honouring answer cache (thread-safe):
    asking C{nameservers}, or the system's servers when None (127.0.0.1
    when /etc/resolv.conf is missing).
    """
    if nameservers is None:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = ["127.0.0.1"]
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(address, port) for address, port in nameservers]
    resolver.cache = dns.resolver.LRUCache(CACHE_ENTRIES)
    return resolver
