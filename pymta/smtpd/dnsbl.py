# -*- test-case-name: tests.smtpd.test_dnsbl -*-
"""
rblsmtpd's decision for one client, without blocking the reactor.

Order (as qmail's rblsmtpd; docs/relaying.md): the C{RBLSMTPD} variable from the access rules
decides first - set and empty accepts without lookups, C{-text} rejects
permanently (553), other text rejects temporarily (451).  Otherwise each zone
of C{control/rbls} is asked in file order and the first answer decides:

- C{zone} (rblsmtpd C{-r zone}): a TXT record at C{d.c.b.a.zone} rejects
  with its text, temporarily (451);
- C{zone:permanent} (rblsmtpd C{-b -r zone}): the same, permanently (553);
- C{+zone} (rblsmtpd C{-a zone}): an A record at C{d.c.b.a.zone} accepts.

A name that does not exist is no answer.  DNS errors and lookups slower than
the time bound are ignored (rblsmtpd's default C{-C}).  Decisions are cached
per address for C{cache_ttl} seconds, at most C{cache_size} addresses.

The resolver is any object with C{txt(name)} and C{a(name)} returning
Deferreds (L{pymta.dns.DNSResolver} in the daemons, a fake in tests).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable

from twisted.internet import defer
from twisted.logger import Logger

from pymta.control import ControlLines, Controls, entry_error
from pymta.hostnames import host_name_problem
from pymta.dns import DNSPermanentError

__all__ = ["RBLZone", "parse_rbls", "rbl_zones", "DNSBL", "reply_from_variable", "reverse_name", "clean_text"]

log = Logger()


@dataclass(frozen=True)
class RBLZone:
    name: str
    permanent: bool = False
    allowlist: bool = False


def _zone(line: str) -> RBLZone:
    """One entry of control/rbls; ValueError says what is wrong."""
    allowlist = line.startswith("+")
    name, colon, flag = line[1 if allowlist else 0 :].partition(":")
    if colon and (allowlist or flag.lower() != "permanent"):
        raise ValueError(f"expected zone, zone:permanent or +zone, found {line!r}")
    problem = host_name_problem(name, final_dot=True)
    if problem is not None:
        raise ValueError(f"bad zone: {problem}")
    return RBLZone(name.rstrip("."), permanent=bool(colon), allowlist=allowlist)


def parse_rbls(lines: Iterable[str]) -> list[RBLZone]:
    """
    Zones from the entries of control/rbls (comments and blank lines
    already removed, as L{pymta.control.Controls.extra_lines} gives them).
    A line that is not C{zone}, C{zone:permanent} or C{+zone} with a zone
    that is a host name is a L{ControlError} naming its line.
    """
    entries = lines if isinstance(lines, ControlLines) else list(lines)
    zones = []
    for index, line in enumerate(entries):
        try:
            zones.append(_zone(line))
        except ValueError as e:
            raise entry_error(entries, index, str(e), "rbls") from None
    return zones


def rbl_zones(controls: Controls) -> list[RBLZone]:
    """The zones of C{controls}' control/rbls (none when it is absent); L{ControlError} on a bad line."""
    return parse_rbls(controls.extra_lines("rbls") or [])


def clean_text(text: str) -> str:
    """rblsmtpd's reply text: at most 200 characters, anything outside 32..126 as C{?}."""
    return "".join(c if 32 <= ord(c) <= 126 else "?" for c in text[:200])


def reply_from_variable(value: str) -> str | None:
    """The decision the C{RBLSMTPD} variable makes: None accepts, else the reply line."""
    if value == "":
        return None
    if value.startswith("-"):
        return "553 " + clean_text(value[1:])
    return "451 " + clean_text(value)


def reverse_name(ip: str) -> str | None:
    """C{4.3.2.1} for 1.2.3.4, nibbles for IPv6; None for something that is not an address."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if isinstance(addr, ipaddress.IPv4Address):
        return ".".join(reversed(str(addr).split(".")))
    return ".".join(reversed(addr.exploded.replace(":", "")))


class DNSBL:
    """Decides per client address, asking the zones in order, with a cache."""

    def __init__(
        self,
        resolver: Any,
        zones: list[RBLZone],
        clock: Any,
        timeout: float = 10.0,
        cache_ttl: float = 300.0,
        cache_size: int = 10000,
    ) -> None:
        self.resolver = resolver
        self.zones = list(zones)
        self.clock = clock
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    def check(self, ip: str, variable: str | None = None) -> "defer.Deferred[str | None]":
        """
        Fires with None (accept) or the reject reply line (C{451 text} /
        C{553 text}); never fails.
        """
        if variable is not None:
            return defer.succeed(reply_from_variable(variable))
        reverse = reverse_name(ip)
        if not self.zones or reverse is None:
            return defer.succeed(None)
        now = self.clock.seconds()
        cached = self._cache.get(ip)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(ip)
            return defer.succeed(cached[1])
        d = defer.ensureDeferred(self._decide(reverse))
        d.addTimeout(self.timeout, self.clock)

        def store(reply: str | None) -> str | None:
            self._remember(ip, reply)
            return reply

        def give_up(failure: Any) -> None:
            log.info("rblsmtpd: {ip}: lookup gave no decision: {why}", ip=ip, why=failure.getErrorMessage())
            return None

        d.addCallbacks(store, give_up)
        return d

    def _remember(self, ip: str, reply: str | None) -> None:
        self._cache[ip] = (self.clock.seconds() + self.cache_ttl, reply)
        self._cache.move_to_end(ip)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def _decide(self, reverse: str) -> str | None:
        for zone in self.zones:
            name = f"{reverse}.{zone.name}"
            try:
                if zone.allowlist:
                    answers = await self.resolver.a(name)
                    if answers:
                        return None
                    continue
                texts = await self.resolver.txt(name)
            except DNSPermanentError:
                continue
            except defer.CancelledError:
                raise
            except Exception as e:  # DNS trouble is ignored, as rblsmtpd -C does
                log.info("rblsmtpd: lookup of {name} failed: {why}", name=name, why=str(e))
                continue
            if texts:
                text = clean_text(" ".join(texts)) or f"listed in {zone.name}"
                return ("553 " if zone.permanent else "451 ") + text
        return None
