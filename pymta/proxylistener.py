# -*- test-case-name: tests.test_proxylistener -*-
"""
A listener behind a trusted proxy: the C{haproxy:} endpoint prefix
(C{--smtp haproxy:tcp:25}, C{--pop3 haproxy:tcp:110}).

L{TrustedProxyFactory} wraps a listener's factory.  For each connection:

  1. the socket peer (the proxy) must be in control/trustedproxies
     (L{pymta.trustedproxies}); any other peer is refused at once;
  2. the connection must start with a PROXY header (L{pymta.proxyheader}),
     version 1 or 2, within L{HEADER_SECONDS} and its size bound; a
     trusted proxy's connection without one is refused;
  3. only then is the listener's protocol built and connected, with the
     header's addresses as C{getPeer()} and C{getHost()}: access rules,
     DNSBL, connection limits, login budgets, logs and Received lines all
     see the client.  A header naming nobody (version 2's LOCAL: the
     proxy's health checks) leaves the connection's own addresses, the
     proxy's; L{is_health_check} tells such a connection, which the
     connection limits count in the total only
     (L{pymta.connectionlimit.counted_address}).

A refusal closes the connection and logs one line
(C{proxy: refused ADDRESS: REASON}); nothing is sent, since the peer is
not known to be a client.  Bytes after the header reach the protocol
unchanged, so a client may pipeline behind the proxy.

Twisted's own wrapper (C{twisted.protocols.haproxy}) connects the protocol
before the header arrives, so the protocol's C{connectionMade} saw the
proxy's address, and it believes a header from anyone; hence this one.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols import policies
from twisted.python.failure import Failure
from zope.interface import directlyProvides, providedBy

from pymta.proxyheader import BadProxyHeader, ProxyHeader, read_header
from pymta.trustedproxies import TrustedProxies

__all__ = ["TrustedProxyFactory", "ProxiedConnection", "HEADER_SECONDS", "PROXY_PREFIX", "split_proxy_prefix",
           "is_health_check"]

log = Logger()

#: the endpoint prefix that puts a listener behind a proxy (Twisted's name for it)
PROXY_PREFIX = "haproxy:"
#: seconds a proxy has to send the whole header after connecting
HEADER_SECONDS = 10.0


def split_proxy_prefix(description: str) -> tuple[bool, str]:
    """(whether C{description} starts with C{haproxy:}, the endpoint string without it)."""
    if description.startswith(PROXY_PREFIX):
        return True, description[len(PROXY_PREFIX) :]
    return False, description


def is_health_check(transport: Any) -> bool:
    """
    Whether C{transport} (a protocol's, maybe a TLS wrapper over the
    proxied connection) carries a header naming nobody: the proxy's own
    connection, its health check.
    """
    for _ in range(3):  # the proxied connection may sit under a TLS wrapper
        if isinstance(transport, ProxiedConnection):
            return transport.health_check
        transport = getattr(transport, "transport", None)
    return False


class ProxiedConnection(policies.ProtocolWrapper):
    """
    One connection from a proxy: reads the header, then is the transport of
    the listener's protocol (built only then) with the client's addresses.
    """

    factory: TrustedProxyFactory

    def __init__(self, factory: TrustedProxyFactory) -> None:
        super().__init__(factory, Protocol())  # a placeholder until the header names the client
        self._connected = False  # the listener's protocol is connected
        self._refused = False
        self._buffer = b""
        self._header: ProxyHeader | None = None
        self._deadline: IDelayedCall | None = None

    def makeConnection(self, transport: Any) -> None:
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)

    def connectionMade(self) -> None:
        if not self.factory.trusted().trusts(self._socket_peer()):
            self._refuse("not in control/trustedproxies")
            return
        self._deadline = self.factory.clock.callLater(self.factory.header_seconds, self._timed_out)

    def dataReceived(self, data: bytes) -> None:
        if self._connected:
            self.wrappedProtocol.dataReceived(data)
            return
        if self._refused:
            return
        self._buffer += data
        try:
            found = read_header(self._buffer)
        except BadProxyHeader as e:
            self._refuse(str(e))
            return
        if found is None:
            return
        self._header, rest = found
        self._buffer = b""
        self._cancel_deadline()
        self._connect_protocol(rest)

    def _connect_protocol(self, rest: bytes) -> None:
        protocol = self.factory.wrappedFactory.buildProtocol(self.getPeer())
        if protocol is None:
            self._refuse("the listener took no connection")
            return
        self.wrappedProtocol = protocol
        self._connected = True
        self.factory.registerProtocol(self)
        protocol.makeConnection(self)
        if rest and self._connected and not self.disconnecting:
            protocol.dataReceived(rest)

    @property
    def health_check(self) -> bool:
        """The header names nobody (version 2's LOCAL): the proxy's own connection, its health check."""
        return self._header is not None and self._header.source is None

    def getPeer(self) -> IAddress:
        if self._header is not None and self._header.source is not None:
            return self._header.source
        return self._socket().getPeer()

    def getHost(self) -> IAddress:
        if self._header is not None and self._header.destination is not None:
            return self._header.destination
        return self._socket().getHost()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_deadline()
        if self._connected:
            self._connected = False
            super().connectionLost(reason)

    def _socket(self) -> Any:
        """The connection from the proxy (an ITCPTransport; set by makeConnection)."""
        assert self.transport is not None
        return self.transport

    def _socket_peer(self) -> str:
        peer = self._socket().getPeer()
        return str(getattr(peer, "host", None) or peer)

    def _timed_out(self) -> None:
        self._deadline = None
        self._refuse(f"no PROXY header within {self.factory.header_seconds:g} seconds")

    def _refuse(self, reason: str) -> None:
        self._refused = True
        self._cancel_deadline()
        log.info("proxy: refused {peer}: {reason}", peer=self._socket_peer(), reason=reason)
        self._socket().abortConnection()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None


class TrustedProxyFactory(policies.WrappingFactory[ProxiedConnection]):
    """
    Wraps a listener's factory: connections come from the proxies
    C{trusted()} lists, each starting with a PROXY header (see the module).
    """

    protocol = ProxiedConnection
    noisy = False

    def __init__(
        self,
        wrappedFactory: Any,
        trusted: Callable[[], TrustedProxies],
        clock: IReactorTime,
        header_seconds: float = HEADER_SECONDS,
    ) -> None:
        super().__init__(wrappedFactory)
        self.trusted = trusted
        self.clock = clock
        self.header_seconds = header_seconds

    def buildProtocol(self, addr: IAddress | None) -> ProxiedConnection:
        return ProxiedConnection(self)

    def logPrefix(self) -> str:
        return f"{super().logPrefix()} (PROXY)"
