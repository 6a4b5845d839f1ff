# -*- test-case-name: tests.remote.test_routes -*-
"""
Where a remote recipient's mail goes: smtproutes, IP literals, MX records.

L{find_smtproute} applies C{control/smtproutes} as qmail-remote does: keys
are tried as the exact domain, then each suffix starting with C{.} (longest
first), then the empty key (default route).  A value is C{relay[:port]}
(syntax: L{pymta.remote.smtproutes}, whose names this module re-exports):

  - C{firewall.example:26}      relay host, port 26
  - C{[192.0.2.1]} / C{192.0.2.1} an IPv4 relay by address
  - C{[2001:db8::1]:587}        an IPv6 relay (brackets required)
  - C{} (nothing after the key's colon): no relay, MX as usual
  - C{:2525} (pymta extension): MX as usual, but connect to port 2525

The control files are checked when read, so a value that does not parse
only reaches L{TargetPlanner.plan} from a table built some other way; it is
a deferral (qmail's C{Unable to read control files}) and a log line naming
the file and line.

L{TargetPlanner.plan} turns a domain into the ordered list of L{Target}s to
try, or raises L{RouteFailure} carrying the qmail status letter and text:

  - relay routes: the relay's addresses, no self check (as qmail);
  - IP literal domains (C{[192.0.2.1]}, C{[IPv6:...]}): that address;
  - otherwise MX records ordered by preference, equal preferences shuffled,
    each MX host expanded to its IPv4 then IPv6 addresses; no MX record =
    the domain's own addresses (preference 0); a null MX (RFC 7505) bounces.

Self check (qmail's): if one of this machine's addresses is among the
targets with preference P, only targets with preference < P are kept; when
none is left the recipient is B{deferred} (qmail bounces) with qmail's
"listed as best-preference MX" wording and code C{#4.4.6}: the usual cause
is a domain missing from control/locals or control/virtualdomains, which an
administrator fixes without losing the mail.  Loopback and unspecified
addresses always count as this machine's, so a remote domain pointing at
127.0.0.1 or 0.0.0.0 never loops back into pymta.

A failed lookup of an smtproutes relay host is a deferral as well (qmail
bounces): it is a configuration error, not the recipient's.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterable, Mapping, NoReturn

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from pymta.control import ControlTable
from pymta.interfaces import DEFERRAL, FAILURE
from pymta.dns import (
    DNSError,
    DNSPermanentError,
    DNSTemporaryError,
    Resolver,
    ip_literal,
    is_null_mx,
)
from pymta.remote.smtproutes import SMTP_PORT, Route, RouteError, lookup_suffixes, parse_route

__all__ = [
    "SMTP_PORT",
    "Route",
    "RouteError",
    "RouteFailure",
    "Target",
    "find_smtproute",
    "parse_route",
    "lookup_suffixes",
    "TargetPlanner",
    "is_self_address",
]

log = Logger(namespace="pymta.remote")

TEXT_NO_HOST = "Sorry, I couldn't find any host named {host}. (#5.1.2)"
TEXT_DNS_TEMPORARY = "Sorry, I couldn't find any host by that name. (#4.1.2)"
TEXT_NO_ADDRESS = "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)"
TEXT_NULL_MX = "Sorry, {host} does not accept mail (null MX). (#5.1.10)"
TEXT_RELAY_NOT_FOUND = "Sorry, I couldn't find the smtproutes relay {host}. (#4.4.3)"
TEXT_SELF_MX = (
    "Sorry. Although I'm listed as a best-preference MX or A for that host,\n"
    "it isn't in my control/locals file, so I don't treat it as local. (#4.4.6)"
)
TEXT_BAD_ROUTE = "Unable to read control files. (#4.3.0)"


class RouteFailure(Exception):
    """No target can be planned: C{status} (Z or D) and qmail's C{text}."""

    def __init__(self, status: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass(frozen=True)
class Target:
    """One address to try: where it came from (C{host}, C{preference}) and where to connect."""

    address: str
    port: int
    host: str
    preference: int = 0
    route: Route | None = None  # the smtproutes relay route it came from (TLS and AUTH options)


def find_smtproute(smtproutes: Mapping[str, str], domain: str) -> Route | None:
    """
    The smtproutes entry that applies to C{domain}, or None (plain MX
    delivery).  A value that does not parse raises L{RouteError}; its
    message starts with the file and line when C{smtproutes} is the
    L{ControlTable} the control files were read into.
    """
    for key in lookup_suffixes(domain):
        if key in smtproutes:
            try:
                return parse_route(smtproutes[key])
            except RouteError as e:
                if isinstance(smtproutes, ControlTable):
                    raise RouteError(str(smtproutes.error(key, str(e)))) from None
                raise
    return None


_ALWAYS_SELF = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("0.0.0.0/32"),
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("::/128"),
)


def is_self_address(address: str, own: Iterable[str]) -> bool:
    """True when C{address} is this machine's (C{own}), loopback or unspecified."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in _ALWAYS_SELF if net.version == ip.version):
        return True
    return str(ip) in own


class TargetPlanner:
    """
    Plans delivery targets for a domain.

    @param resolver: a L{pymta.dns.Resolver}.
    @param is_own_address: tells whether an address (text) is this machine's,
        for the self check (usually L{is_self_address} with the interfaces'
        addresses).
    @param shuffle: shuffles a list in place (equal MX preferences).
    """

    def __init__(
        self,
        resolver: Resolver,
        is_own_address: Callable[[str], bool],
        shuffle: Callable[[list], None] | None = None,
    ) -> None:
        self.resolver = resolver
        self.is_own_address = is_own_address
        self.shuffle = shuffle if shuffle is not None else random.shuffle

    def plan(self, domain: str, smtproutes: Mapping[str, str], about: str = "") -> "Deferred[list[Target]]":
        """
        Targets for C{domain} in the order to try; fails with L{RouteFailure}.
        C{about} names the delivery in a log line (C{msg ID delivery N}).
        """
        try:
            route = find_smtproute(smtproutes, domain)
        except RouteError as e:
            log.error("{about}smtproutes unusable for {domain}, deferring: {error}", about=f"{about}: " if about else "",
                      domain=domain, error=str(e))
            return defer.fail(RouteFailure(DEFERRAL, TEXT_BAD_ROUTE))
        return self.plan_route(domain, route)

    def plan_route(self, domain: str, route: Route | None) -> "Deferred[list[Target]]":
        """L{plan} for a route already found (C{None}: MX to port 25); QMTP's routes come this way."""
        if route is not None and route.relay is not None:
            return self._relay(route)
        port = route.port if route is not None else SMTP_PORT
        literal = ip_literal(domain) if domain.startswith("[") or _looks_numeric(domain) else None
        if literal is not None:
            return self._self_check(defer.succeed([Target(literal, port, domain, 0)]))
        return self._self_check(self._mx(domain, port))

    # -- pieces ------------------------------------------------------------

    def _relay(self, route: Route) -> "Deferred[list[Target]]":
        relay = route.relay
        assert relay is not None
        d = self.resolver.addresses(relay)

        def found(addresses: list[str]) -> list[Target]:
            if not addresses:
                raise RouteFailure(DEFERRAL, TEXT_RELAY_NOT_FOUND.format(host=relay))
            return [Target(a, route.port, relay, 0, route) for a in _unique(addresses)]

        def failed(f: Failure) -> NoReturn:
            f.trap(DNSError)
            if f.check(DNSTemporaryError):
                raise RouteFailure(DEFERRAL, TEXT_DNS_TEMPORARY)
            raise RouteFailure(DEFERRAL, TEXT_RELAY_NOT_FOUND.format(host=relay))

        return d.addCallbacks(found, failed)

    @defer.inlineCallbacks
    def _mx(self, domain: str, port: int) -> Generator[Deferred[Any], Any, list[Target]]:
        try:
            records = yield self.resolver.mx(domain)
        except DNSPermanentError:
            raise RouteFailure(FAILURE, TEXT_NO_HOST.format(host=domain))
        except DNSTemporaryError:
            raise RouteFailure(DEFERRAL, TEXT_DNS_TEMPORARY)
        if is_null_mx(records):
            raise RouteFailure(FAILURE, TEXT_NULL_MX.format(host=domain))
        if not records:
            try:
                addresses = yield self.resolver.addresses(domain)
            except DNSPermanentError:
                raise RouteFailure(FAILURE, TEXT_NO_HOST.format(host=domain))
            except DNSTemporaryError:
                raise RouteFailure(DEFERRAL, TEXT_DNS_TEMPORARY)
            if not addresses:
                raise RouteFailure(FAILURE, TEXT_NO_ADDRESS)
            return [Target(a, port, domain, 0) for a in _unique(addresses)]
        ordered = self._order(records)
        lookups = yield defer.DeferredList(
            [self.resolver.addresses(host) for _, host in ordered], consumeErrors=True
        )
        targets: list[Target] = []
        seen: set[str] = set()
        temporary = False
        for (preference, host), (ok, value) in zip(ordered, lookups):
            if not ok:
                if value.check(DNSTemporaryError) or not value.check(DNSError):
                    temporary = True
                continue
            for address in value:
                if address not in seen:
                    seen.add(address)
                    targets.append(Target(address, port, host, preference))
        if not targets:
            if temporary:
                raise RouteFailure(DEFERRAL, TEXT_DNS_TEMPORARY)
            raise RouteFailure(FAILURE, TEXT_NO_ADDRESS)
        return targets

    def _order(self, records: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """Ascending preference; the order among equal preferences is random."""
        groups: dict[int, list[str]] = {}
        for preference, host in records:
            hosts = groups.setdefault(preference, [])
            if host not in hosts:
                hosts.append(host)
        ordered: list[tuple[int, str]] = []
        for preference in sorted(groups):
            hosts = groups[preference]
            self.shuffle(hosts)
            ordered.extend((preference, h) for h in hosts)
        return ordered

    def _self_check(self, d: "Deferred[list[Target]]") -> "Deferred[list[Target]]":
        def check(targets: list[Target]) -> list[Target]:
            mine = [t.preference for t in targets if self.is_own_address(t.address)]
            if not mine:
                return targets
            limit = min(mine)
            kept = [t for t in targets if t.preference < limit]
            if not kept:
                raise RouteFailure(DEFERRAL, TEXT_SELF_MX)
            return kept

        return d.addCallback(check)


def _looks_numeric(domain: str) -> bool:
    return bool(domain) and all(c.isdigit() or c == "." for c in domain)


def _unique(addresses: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for a in addresses:
        if a not in seen:
            seen.append(a)
    return seen
