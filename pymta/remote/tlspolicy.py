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
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from zope.interface import implementer

from pymta.remote.routes import lookup_suffixes

__all__ = ["OFF", "OPPORTUNISTIC", "VERIFY", "TLSPolicy", "TLSPolicyTable", "OpportunisticTLS"]

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


@implementer(IOpenSSLClientConnectionCreator)
class OpportunisticTLS:
    """Client TLS without certificate checks, sending SNI when the host is a name."""

    _shared_options: ssl.CertificateOptions | None = None

    def __init__(self, hostname: str | None) -> None:
        self._hostname = hostname

    @classmethod
    def _context(cls) -> SSL.Context:
        # one context for every opportunistic session: building one is costly
        if cls._shared_options is None:
            cls._shared_options = ssl.CertificateOptions(verify=False)
        return cls._shared_options.getContext()

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self._context(), None)
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
    """The parsed C{tlsdestinations} entries."""

    def __init__(self, lines: list[str] | None) -> None:
        self._verify: dict[str, str | None] = {}
        self._off: set[str] = set()
        for line in lines or ():
            if line.startswith("-"):
                self._off.add(_key(line[1:].split(":", 1)[0]))
                continue
            key, _, ca = line.partition(":")
            self._verify[_key(key)] = ca.strip() or None

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
        if policy.ca_file:
            with open(policy.ca_file, "rb") as f:
                trust = ssl.trustRootFromCertificates(
                    [ssl.Certificate.loadPEM(block) for block in _pem_blocks(f.read())]
                )
        else:
            trust = ssl.platformTrust()
        return ssl.optionsForClientTLS(hostname.strip("[]"), trustRoot=trust)


def _key(text: str) -> str:
    text = text.strip().lower()
    return "" if text == "*" else text


def _pem_blocks(data: bytes) -> list[bytes]:
    end = b"-----END CERTIFICATE-----"
    blocks = []
    for part in data.split(end)[:-1]:
        start = part.find(b"-----BEGIN CERTIFICATE-----")
        if start != -1:
            blocks.append(part[start:] + end + b"\n")
    return blocks
