# -*- test-case-name: tests.remote.test_tlspolicy -*-
"""
STARTTLS policy for remote delivery, per destination domain.

By default TLS is opportunistic: used whenever a server offers STARTTLS,
without checking its certificate (an unverifiable certificate still
encrypts).  When such a handshake fails, the caller retries the same server
on a new plain connection.

C{control/tlsdestinations} (pymta's extra control file) changes that per
recipient domain.  One entry per line, keys matched like smtproutes (the
domain, then C{.suffix} keys longest first, then the empty key or C{*}):

  - C{example.com:}              TLS required, certificate verified against
                                 the system's trusted CAs and the MX (or
                                 relay) host name
  - C{example.com:/etc/ca.pem}   TLS required, verified against that CA file
  - C{-example.com}              never use TLS for this domain

A required TLS session that cannot be set up (no STARTTLS, failed
handshake, failed verification) is a deferral; the next MX is tried.

A line that cannot be used is an error naming file and line when the file
is read (L{tls_destinations}; pymta-send checks it at start and reload).

A relay route's options (L{pymta.remote.smtproutes}) override the
domain's policy (L{route_policy}): a route with C{auth=} or C{ca=} always
verifies the relay's certificate (against its C{ca=} file, else the
system's CAs) and the relay's name as the route writes it; an C{smtps}
route cannot do without TLS, so C{-domain} means unverified TLS there.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from zope.interface import implementer

from pymta.control import ControlLines, Controls, entry_error
from pymta.hostnames import domain_problem
from pymta.remote.smtproutes import Route, lookup_suffixes
from pymta.remote.trustanchors import check_ca_file, verified_creator

__all__ = [
    "OFF",
    "OPPORTUNISTIC",
    "VERIFY",
    "TLSPolicy",
    "TLSPolicyTable",
    "OpportunisticTLS",
    "tls_destinations",
    "route_policy",
]

OFF = "off"
OPPORTUNISTIC = "opportunistic"
VERIFY = "verify"


@dataclass(frozen=True)
class TLSPolicy:
    mode: str = OPPORTUNISTIC
    ca_file: str | None = None

    @property
    def required(self) -> bool:
        return self.mode == VERIFY


_UNVERIFIED: list[ssl.CertificateOptions] = []


def unverified_client_context() -> SSL.Context:
    """
    The one client context without certificate checks that opportunistic
    and DANE sessions share (building one is costly); a session that checks
    something sets its own verify callback on its connection.
    """
    if not _UNVERIFIED:
        _UNVERIFIED.append(ssl.CertificateOptions(verify=False))
    return _UNVERIFIED[0].getContext()


@implementer(IOpenSSLClientConnectionCreator)
class OpportunisticTLS:
    """Client TLS without certificate checks, sending SNI when the host is a name."""

    def __init__(self, hostname: str | None) -> None:
        self._hostname = hostname

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = SSL.Connection(unverified_client_context(), None)
        if self._hostname and not _is_ip(self._hostname):
            try:
                connection.set_tlsext_host_name(self._hostname.encode("idna"))
            except (UnicodeError, ValueError):
                pass
        connection.set_connect_state()
        return connection


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


class TLSPolicyTable:
    """
    The parsed C{tlsdestinations} entries.  A line that cannot be used is a
    L{ControlError} naming it (when C{lines} is the L{ControlLines} of the
    file; else its position): a domain that is none (a blank, C{*.example}),
    a line without C{:} or C{-} (C{example.com} alone: verify or not?),
    something after C{-domain}, a CA file that is not an absolute path or
    holds no readable PEM certificate, a domain given twice.
    """

    def __init__(self, lines: list[str] | None) -> None:
        self._verify: dict[str, str | None] = {}
        self._off: set[str] = set()
        entries = lines if lines is not None else []
        seen: dict[str, int] = {}
        for index, line in enumerate(entries):
            try:
                key, off, ca = _destination(line)
            except ValueError as e:
                raise entry_error(entries, index, str(e), "tlsdestinations") from None
            if key in seen:
                earlier = entries.linenos[seen[key]] if isinstance(entries, ControlLines) else seen[key] + 1
                raise entry_error(entries, index, f"domain {key or '*'!r} repeats line {earlier}: one of the two "
                                  "would never apply", "tlsdestinations")
            seen[key] = index
            if off:
                self._off.add(key)
            else:
                self._verify[key] = ca

    @property
    def keys(self) -> frozenset[str]:
        """Every domain key of the file (C{""}: every domain), TLS on or off."""
        return frozenset(self._verify) | frozenset(self._off)

    def policy_for(self, domain: str) -> TLSPolicy:
        for key in lookup_suffixes(domain):
            if key in self._off:
                return TLSPolicy(OFF)
            if key in self._verify:
                return TLSPolicy(VERIFY, self._verify[key])
        return TLSPolicy(OPPORTUNISTIC)

    @staticmethod
    def creator(policy: TLSPolicy, hostname: str) -> Any:
        """The TLS connection creator for a server reached as C{hostname}, None when TLS is off."""
        if policy.mode == OFF:
            return None
        if policy.mode == OPPORTUNISTIC:
            return OpportunisticTLS(hostname)
        return verified_creator(hostname, policy.ca_file)


def _key(text: str) -> str:
    """A domain key: the empty key or C{*} (every domain), a domain, a C{.suffix}; ValueError when none."""
    if text in ("", "*"):
        return ""
    problem = domain_problem(text)
    if problem is not None:
        raise ValueError(f"bad domain: {problem}")
    return text.lower()


def _destination(line: str) -> tuple[str, bool, str | None]:
    """(key, TLS off?, CA file) of one tlsdestinations line; ValueError says what is wrong."""
    if line.startswith("-"):
        if ":" in line:
            raise ValueError(f"nothing may follow the domain of a -domain line: {line!r}")
        return _key(line[1:]), True, None
    if ":" not in line:
        raise ValueError(f"expected domain: (TLS verified), domain:CAFILE or -domain (no TLS), found {line!r}")
    key, _, ca = line.partition(":")
    if ca:
        check_ca_file(ca)
    return _key(key), False, ca or None


def route_policy(policy: TLSPolicy, route: Route | None) -> TLSPolicy:
    """The TLS policy for a domain's C{policy} sent over C{route} (see the module docstring)."""
    if route is None:
        return policy
    if route.verified:
        return TLSPolicy(VERIFY, route.ca_file)
    if route.smtps and policy.mode == OFF:
        return TLSPolicy(OPPORTUNISTIC)
    return policy


def tls_destinations(controls: Controls) -> TLSPolicyTable:
    """The policy table of C{controls}' control/tlsdestinations; L{ControlError} on a bad line."""
    return TLSPolicyTable(controls.extra_lines("tlsdestinations"))

