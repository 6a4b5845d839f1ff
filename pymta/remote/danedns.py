# -*- test-case-name: tests.remote.test_dane -*-
"""
DNSSEC-aware lookups for DANE: answers with the resolver's verdict on them.

L{SecureResolver} is a L{pymta.dns.DNSResolver} (its own thread pool, so
never blocking the reactor) whose queries ask for DNSSEC (the DO bit, and
the AD bit set in the query, RFC 6840 section 5.7).  Its answers say
whether the resolver marked them authenticated (the AD bit).  That bit
means something only when the resolver validates and the path to it
cannot be tampered with: pymta trusts it only when control/resolvers
declares every server C{validating} (L{pymta.resolvers.validating_resolvers}).

Outcomes: L{SecureAnswer} (records, and C{secure} when the AD bit was
set); an empty answer when the name has no record of the type or does not
exist; L{pymta.dns.DNSTemporaryError} when no answer came (SERVFAIL, which
a validating resolver also gives for a bogus answer, a timeout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import dns.flags
import dns.resolver
from twisted.internet.defer import Deferred

from pymta.dns import DNSPermanentError, DNSResolver
from pymta.remote.danematch import TLSARecord
from pymta.resolvers import make_resolver

__all__ = ["SecureAnswer", "SecureResolver", "dnssec_resolver", "tlsa_name"]

T = TypeVar("T")

#: EDNS payload size asked for (the DNS flag day 2020 value)
EDNS_PAYLOAD = 1232


@dataclass(frozen=True)
class SecureAnswer(Generic[T]):
    """Records of one lookup, and whether the resolver authenticated them (AD)."""

    records: tuple[T, ...]
    secure: bool


def tlsa_name(host: str, port: int) -> str:
    """Where the TLSA records of an SMTP server live: C{_25._tcp.mx.example.com}."""
    return f"_{port}._tcp.{host.rstrip('.')}"


def dnssec_resolver(nameservers: tuple[tuple[str, int], ...] | None) -> dns.resolver.Resolver:
    """A dnspython resolver (L{make_resolver}) whose queries set DO and AD."""
    resolver = make_resolver(nameservers)
    resolver.use_edns(0, dns.flags.DO, EDNS_PAYLOAD)
    resolver.flags = dns.flags.RD | dns.flags.AD
    return resolver


def _authenticated(answer: Any) -> bool:
    response = getattr(answer, "response", None)
    return response is not None and bool(response.flags & dns.flags.AD)


class SecureResolver(DNSResolver):
    """L{DNSResolver} asking with DO and AD (L{dnssec_resolver}); see the module docstring."""

    def __init__(self, reactor: Any = None, nameservers: tuple[tuple[str, int], ...] | None = None,
                 resolver: dns.resolver.Resolver | None = None, lifetime: float = 30.0) -> None:
        super().__init__(reactor, resolver=resolver or dnssec_resolver(nameservers), lifetime=lifetime, maxthreads=4)

    def secure_mx(self, domain: str) -> "Deferred[SecureAnswer[str]]":
        """MX host names of C{domain} (no preference), lowercase, without the final dot."""

        def convert(answer: Any) -> SecureAnswer[str]:
            return SecureAnswer(tuple(r.exchange.to_text(omit_final_dot=True).lower() for r in answer), _authenticated(answer))

        return self._secure(domain, "MX", convert)

    def tlsa(self, host: str, port: int) -> "Deferred[SecureAnswer[TLSARecord]]":
        """The TLSA records of the SMTP server C{host} on C{port}."""

        def convert(answer: Any) -> SecureAnswer[TLSARecord]:
            records = tuple(TLSARecord(int(r.usage), int(r.selector), int(r.mtype), bytes(r.cert)) for r in answer)
            return SecureAnswer(records, _authenticated(answer))

        return self._secure(tlsa_name(host, port), "TLSA", convert)

    def _secure(self, name: str, rdtype: str, convert: Any) -> "Deferred[SecureAnswer[Any]]":
        def absent(failure: Any) -> SecureAnswer[Any]:
            failure.trap(DNSPermanentError)  # NXDOMAIN: no records (secure or not, DANE does not apply)
            return SecureAnswer((), False)

        return self._lookup(name, rdtype, convert).addErrback(absent)
