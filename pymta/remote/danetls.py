# -*- test-case-name: tests.remote.test_danetls -*-
"""
Client TLS checked against an SMTP server's TLSA records (RFC 7672).

L{DaneTLS} is the connection creator for a server whose TLSA records were
authenticated: the usual PKIX checks are replaced by
L{pymta.remote.danematch.check_chain} over the chain the server sent.  A
chain that does not match aborts the handshake with L{DaneMismatch}, whose
text becomes the deferral's (C{TLS session with ADDRESS failed: TLSA
records of mx.example.com do not match its certificate. (#4.7.5)}, with
the reason when it is more than that); the next MX is tried.

With no usable record (C{records} empty) TLS is still required but not
authenticated (RFC 7672 section 2.2): L{DaneTLS} then checks nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.python.failure import Failure
from zope.interface import implementer

from pymta.remote.danematch import NO_MATCH, TLSARecord, check_chain
from pymta.remote.tlspolicy import unverified_client_context

__all__ = ["DaneMismatch", "DaneTLS"]


class DaneMismatch(Exception):
    """The server's certificate chain matches none of its TLSA records."""


@dataclass(frozen=True)
class DaneTLS:
    """
    What DANE asks of one MX host: TLS always, its chain matching one of
    C{records} (none: TLS unauthenticated); C{names} are the reference
    names for DANE-TA (the MX host name, then the recipient domain).
    """

    host: str
    records: tuple[TLSARecord, ...]
    names: tuple[str, ...]

    required = True

    def creator(self) -> "_DaneCreator":
        return _DaneCreator(self)


@implementer(IOpenSSLClientConnectionCreator)
class _DaneCreator:
    def __init__(self, policy: DaneTLS) -> None:
        self.policy = policy

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = SSL.Connection(unverified_client_context(), None)
        try:
            connection.set_tlsext_host_name(self.policy.host.encode("idna"))
        except (UnicodeError, ValueError):
            pass
        if self.policy.records:
            connection.set_verify(SSL.VERIFY_PEER, _verifier(tlsProtocol, self.policy))
        else:
            connection.set_verify(SSL.VERIFY_NONE, None)
        connection.set_connect_state()
        return connection


def _verifier(tls_protocol: Any, policy: DaneTLS) -> Any:
    """
    OpenSSL's verify callback: PKIX's verdict is ignored; at the server's
    own certificate (depth 0, which OpenSSL may visit more than once) the
    chain the server sent is checked once against the TLSA records.
    """
    verdict: list[bool] = []

    def verify(connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
        if depth != 0:
            return True
        if verdict:
            return verdict[0]
        sent = connection.get_peer_cert_chain() or [cert]
        chain = [c.to_cryptography() for c in sent]
        if chain[0] != cert.to_cryptography():
            chain.insert(0, cert.to_cryptography())
        try:
            problem = check_chain(chain, policy.records, policy.names)
        except Exception as e:  # an exception here would escape the handshake unlogged: a mismatch with its reason
            problem = f"unusable certificate: {e}"
        verdict.append(problem is None)
        if problem is not None:
            detail = "" if problem == NO_MATCH else f" ({problem})"
            error = DaneMismatch(f"TLSA records of {policy.host} do not match its certificate{detail}")
            tls_protocol.failVerification(Failure(error))
        return verdict[0]

    return verify
