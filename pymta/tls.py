# -*- test-case-name: tests.test_tls -*-
"""
Server TLS contexts from one PEM file (ROOT/control/servercert.pem): the
private key, the certificate and any chain certificates in one file, as
qmail's TLS patches keep it.

L{ServerTLS} is a context factory whose certificate can be replaced at run
time: L{ServerTLS.reload} reads the file again, and every connection started
afterwards (STARTTLS, or implicit TLS through C{TLSMemoryBIOFactory}) gets the
new certificate; a broken file keeps the old one and raises.

The server profile (L{SERVER_CIPHERS}): TLS 1.2 is the minimum; at TLS 1.2
only suites with forward secrecy (ECDHE key exchange) and an AEAD cipher
(AES-GCM, ChaCha20-Poly1305) are offered; TLS 1.3 keeps OpenSSL's suites,
which all have both.  Finite-field DHE is left out: Twisted configures no
DH group unless given one, and every client that has the TLS 1.2 AEAD
suites also has ECDHE.  The SMTP client's opportunistic STARTTLS
(L{pymta.remote.tlspolicy}) keeps a broader list: for it the alternative is
plain text.

L{server_listener} is how smtpd and pop3d turn one endpoint string into a
listening service: C{ssl:PORT[:opts]} without key files (L{implicit_tls_port})
means implicit TLS with the reloadable certificate, anything else is used as
Twisted parses it.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.application import internet
from twisted.internet import endpoints, ssl
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import usage
from zope.interface import implementer

from pymta.listenbacklog import with_backlog
from pymta.proxylistener import TrustedProxyFactory, split_proxy_prefix
from pymta.trustedproxies import TrustedProxies

__all__ = [
    "TLSConfigError",
    "load_server_options",
    "server_options_from_pem",
    "ServerTLS",
    "cert_path",
    "implicit_tls_port",
    "server_listener",
    "check_server_endpoint",
    "SERVER_TLS12_SUITES",
    "SERVER_CIPHERS",
    "server_options",
]

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----\s*", re.S)


#: the TLS 1.2 suites the server side offers, in its order of preference
SERVER_TLS12_SUITES = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
)

#: Twisted's form of the server profile (TLS 1.3 suites are not affected by it)
SERVER_CIPHERS = ssl.AcceptableCiphers.fromOpenSSLCipherString(":".join(SERVER_TLS12_SUITES))


class TLSConfigError(Exception):
    """The certificate file is missing, unreadable or inconsistent."""


def server_options(
    private_key: Any, certificate: Any, chain: list[Any] | None = None
) -> ssl.CertificateOptions:
    """C{CertificateOptions} with the server profile: TLS 1.2 minimum, L{SERVER_CIPHERS}."""
    return ssl.CertificateOptions(
        privateKey=private_key,
        certificate=certificate,
        extraCertChain=chain or [],
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        acceptableCiphers=SERVER_CIPHERS,
    )


def load_server_options(path: str) -> ssl.CertificateOptions:
    """C{CertificateOptions} (the server profile) from a PEM with key, certificate and chain."""
    try:
        with open(path, "rb") as f:
            pem = f.read()
    except OSError as e:
        raise TLSConfigError(f"{path}: {e.strerror or e}") from None
    return server_options_from_pem(pem, path)


def server_options_from_pem(pem: bytes, path: str) -> ssl.CertificateOptions:
    """L{load_server_options} for PEM text already read (C{path} only names it in errors)."""
    key = None
    certs: list[x509.Certificate] = []
    for m in _PEM_BLOCK.finditer(pem):
        kind, block = m.group(1), m.group(0)
        try:
            if kind.endswith(b"PRIVATE KEY"):
                if key is not None:
                    raise TLSConfigError(f"{path}: more than one private key")
                key = serialization.load_pem_private_key(block, password=None)
            elif kind == b"CERTIFICATE":
                certs.append(x509.load_pem_x509_certificate(block))
        except (ValueError, TypeError) as e:
            raise TLSConfigError(f"{path}: unreadable {kind.decode()}: {e}") from None
    if key is None:
        raise TLSConfigError(f"{path}: no private key")
    if not certs:
        raise TLSConfigError(f"{path}: no certificate")
    pub = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    leaf_index = next(
        (
            i
            for i, c in enumerate(certs)
            if c.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            == pub
        ),
        None,
    )
    if leaf_index is None:
        raise TLSConfigError(f"{path}: no certificate matches the private key")
    leaf = certs.pop(leaf_index)
    return server_options(
        crypto.PKey.from_cryptography_key(key),  # type: ignore[arg-type]
        crypto.X509.from_cryptography(leaf),
        [crypto.X509.from_cryptography(c) for c in certs],
    )


@implementer(IOpenSSLContextFactory)
class ServerTLS:
    """
    A reloadable server context factory over one PEM file.

    C{available} is False while no usable certificate has been loaded (the
    file is absent): callers then offer no STARTTLS.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._options: ssl.CertificateOptions | None = None
        self.error: str | None = None
        try:
            self.reload()
        except TLSConfigError as e:
            self.error = str(e)

    @property
    def available(self) -> bool:
        return self._options is not None

    def reload(self) -> None:
        """Read the file again; on error the previous certificate stays and L{TLSConfigError} is raised."""
        self._options = load_server_options(self.path)
        self.error = None

    def getContext(self) -> SSL.Context:
        """The current context (the interface C{startTLS} and C{TLSMemoryBIOFactory} use)."""
        if self._options is None:
            raise TLSConfigError(self.error or f"{self.path}: no certificate loaded")
        return self._options.getContext()


def cert_path(root: str) -> str:
    """The server certificate file of a pymta root: C{ROOT/control/servercert.pem}."""
    return os.path.join(root, "control", "servercert.pem")


def implicit_tls_port(description: str) -> str | None:
    """For C{ssl:PORT[:opts]} without key files: the equivalent C{tcp:} string."""
    if not description.startswith("ssl:"):
        return None
    rest = description[4:]
    if "privateKey=" in rest or "certKey=" in rest:
        return None
    return "tcp:" + rest


def check_server_endpoint(reactor: Any, description: str) -> None:
    """
    Raise C{usage.UsageError} unless C{description} is an endpoint string
    L{server_listener} can listen on (for implicit TLS: its C{tcp:} form;
    the certificate itself is checked when the service is built).
    """
    proxied, inner = split_proxy_prefix(description)
    if proxied and split_proxy_prefix(inner)[0]:
        # the inner one would be Twisted's own wrapper, which believes anyone's header
        raise usage.UsageError(f"bad endpoint {description!r}: haproxy: given twice")
    try:
        endpoints.serverFromString(reactor, implicit_tls_port(inner) or description)
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise usage.UsageError(f"bad endpoint {description!r}: {e}") from None


def server_listener(
    reactor: Any,
    description: str,
    factory: Any,
    tls: ServerTLS,
    proxies: Callable[[], TrustedProxies] | None = None,
    backlog: int | None = None,
) -> internet.StreamServerEndpointService:
    """
    A service listening on the endpoint C{description} with C{factory}.  For
    implicit TLS (L{implicit_tls_port}) the factory is wrapped in
    C{TLSMemoryBIOFactory} over C{tls}, which must then hold a certificate
    (else L{TLSConfigError}); an C{ssl:} endpoint with its own key files gets
    the server profile too (L{_with_server_profile}).  Listening errors are raised from
    C{privilegedStartService}/C{startService}, not only logged.

    C{haproxy:ENDPOINT} listens on ENDPOINT behind a proxy: the factory is
    wrapped in L{TrustedProxyFactory}, which believes a PROXY header only
    from the addresses C{proxies()} lists (None: no proxy is trusted).  For
    implicit TLS (C{haproxy:ssl:PORT}) the header comes before the TLS
    handshake, as HAProxy sends it; an C{ssl:} endpoint with its own key
    files reads it inside TLS, as Twisted's C{haproxy:} did.

    C{backlog} (from the listener's connection limit,
    L{pymta.listenbacklog.listen_backlog}) is the listen queue's length
    unless C{description} sets C{backlog=} (L{with_backlog}); None leaves
    Twisted's default.
    """
    proxied, description = split_proxy_prefix(description)
    tcp = implicit_tls_port(description)
    if tcp is not None:
        if not tls.available:
            raise TLSConfigError(tls.error or f"{tls.path}: no certificate for {description}")
        endpoint = endpoints.serverFromString(reactor, with_backlog(tcp, backlog))
        factory = TLSMemoryBIOFactory(tls, False, factory)
    else:
        endpoint = endpoints.serverFromString(reactor, with_backlog(description, backlog))
        endpoint = _with_server_profile(endpoint, description)
    if proxied:  # outermost: the header is read before anything else
        factory = TrustedProxyFactory(factory, proxies or TrustedProxies, reactor)
    listener = internet.StreamServerEndpointService(endpoint, factory)
    listener._raiseSynchronously = True
    return listener


def _with_server_profile(endpoint: Any, description: str) -> Any:
    """
    C{endpoint}, with the server profile when it is an C{ssl:} endpoint with
    its own key files, also inside a wrapping endpoint such as
    C{haproxy:ssl:...}.  Twisted's parser builds those options with its
    default cipher list and keeps them in the endpoint; they are rebuilt
    from the same key and certificates.
    """
    inner = getattr(endpoint, "_wrappedEndpoint", None)  # Twisted's _WrapperServerEndpoint (haproxy:)
    if inner is not None:
        endpoint._wrappedEndpoint = _with_server_profile(inner, description)
        return endpoint
    if not isinstance(endpoint, endpoints.SSL4ServerEndpoint):
        return endpoint
    options = getattr(endpoint, "_sslContextFactory", None)
    if not isinstance(options, ssl.CertificateOptions):
        raise TLSConfigError(f"{description}: cannot apply the server TLS profile to this endpoint")
    endpoint._sslContextFactory = server_options(options.privateKey, options.certificate, options.extraCertChain)
    return endpoint
