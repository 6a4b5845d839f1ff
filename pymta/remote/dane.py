# -*- test-case-name: tests.remote.test_dane -*-
"""
DANE for outbound SMTP (RFC 7672): which MX hosts must show a certificate
their TLSA records vouch for.

DANE is off unless control/resolvers marks every server C{validating}
(L{pymta.resolvers.validating_resolvers}): an AD bit pymta cannot trust
proves nothing.  When on, for a recipient domain that goes by MX:

  1. the MX RRset must be authenticated (the AD bit), else DANE does not
     apply to the domain;
  2. for each MX host, the TLSA RRset C{_PORT._tcp.HOST} is asked:
       - authenticated, with records: TLS is required and the certificate
         must match a usable record (L{pymta.remote.danetls.DaneTLS}); with
         only unusable records (PKIX-TA, PKIX-EE, unknown types) TLS is
         required but not authenticated;
       - not authenticated, or no record: DANE does not apply to the host;
       - no answer (SERVFAIL, which is also how a validating resolver
         reports a bogus answer; a timeout): the host is not tried, the
         text (C{#4.7.5}) is its deferral, and the next MX is tried.

Precedence: an smtproutes relay route, or a control/tlsdestinations entry
for the domain (even C{*:}), wins: DANE is only asked when the domain's
policy is the default, opportunistic TLS (a route that only sets the port,
C{domain::PORT}, is still MX delivery; the TLSA records are those of that
port).  IP-literal domains have no DANE.

Not done (documented in docs/remote.md): a domain without MX records (its
own address records) gets no DANE, and CNAMEs of MX hosts are not
followed for the TLSA base name.
"""

from __future__ import annotations

from typing import Any, Generator, Mapping

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from pymta.control import Controls
from pymta.dns import DNSError, ip_literal
from pymta.remote.danedns import SecureResolver, tlsa_name
from pymta.remote.danematch import usable
from pymta.remote.danetls import DaneTLS
from pymta.remote.routes import Target
from pymta.remote.smtproutes import Route
from pymta.remote.tlspolicy import OPPORTUNISTIC, TLSPolicy
from pymta.resolvers import configured_nameservers, validating_resolvers

__all__ = ["DanePlanner", "HostDecisions"]

log = Logger(namespace="pymta.remote")

#: per MX host: what DANE asks of it, or the text of its deferral; hosts without an entry: no DANE
HostDecisions = Mapping[str, "DaneTLS | str"]

TEXT_MX_LOOKUP = "The DNSSEC lookup of the MX records of {domain} failed: {reason}. (#4.7.5)\n"
TEXT_TLSA_LOOKUP = "The TLSA lookup of {name} failed: {reason}. (#4.7.5)\n"


class DanePlanner:
    """
    Decides DANE per MX host (see the module docstring).

    @param resolver: a L{SecureResolver} asking servers declared validating,
        or None: DANE is off.
    """

    def __init__(self, resolver: SecureResolver | None) -> None:
        self.resolver = resolver

    @classmethod
    def from_controls(cls, controls: Controls, reactor: Any = None) -> "DanePlanner":
        """On when control/resolvers marks every server C{validating}; off otherwise."""
        if not validating_resolvers(controls):
            return cls(None)
        return cls(SecureResolver(reactor, configured_nameservers(controls)))

    @property
    def enabled(self) -> bool:
        return self.resolver is not None

    def stop(self) -> None:
        if self.resolver is not None:
            self.resolver.stop()

    def applies(self, domain: str, policy: TLSPolicy, route: Route | None) -> bool:
        """Whether DANE is asked for C{domain} at all (on, by MX or C{domain::PORT}, nothing configured wins)."""
        return (self.enabled and (route is None or route.relay is None) and policy.mode == OPPORTUNISTIC
                and not domain.startswith("[") and ip_literal(domain) is None)

    def decide(self, domain: str, targets: list[Target], policy: TLSPolicy, route: Route | None,
               about: str = "") -> "Deferred[HostDecisions]":
        """The L{HostDecisions} for delivering C{domain}'s mail to C{targets}; never fails."""
        if not targets or not self.applies(domain, policy, route):
            return defer.succeed({})
        return self._decide(domain, targets, about)

    @defer.inlineCallbacks
    def _decide(self, domain: str, targets: list[Target], about: str) -> Generator[Deferred[Any], Any, HostDecisions]:
        assert self.resolver is not None
        hosts = list(dict.fromkeys(t.host for t in targets))
        try:
            mx = yield self.resolver.secure_mx(domain)
        except DNSError as e:
            log.warn("{about}: DANE: MX of {domain} not authenticated, deferring: {error}", about=about,
                     domain=domain, error=e.reason)
            return {host: TEXT_MX_LOOKUP.format(domain=domain, reason=e.reason) for host in hosts}
        if not mx.secure or not mx.records:
            return {}
        port = targets[0].port
        answers = yield defer.DeferredList([self.resolver.tlsa(host, port) for host in hosts], consumeErrors=True)
        decisions: dict[str, DaneTLS | str] = {}
        for host, (ok, value) in zip(hosts, answers):
            if not ok:
                reason = value.value.reason if isinstance(value.value, DNSError) else value.getErrorMessage()
                log.warn("{about}: DANE: TLSA lookup of {name} failed, not trying {host}: {error}", about=about,
                         name=tlsa_name(host, port), host=host, error=reason)
                decisions[host] = TEXT_TLSA_LOOKUP.format(name=tlsa_name(host, port), reason=reason)
            elif value.secure and value.records:
                records = tuple(r for r in value.records if usable(r))
                decisions[host] = DaneTLS(host, records, (host, domain))
                log.info("{about}: DANE: {host} has {usable} usable TLSA records of {count}", about=about, host=host,
                         usable=len(records), count=len(value.records))
        return decisions
