"""
Tests for pymta.streamtransport: the transports Twisted really gives a
stream protocol (TCP, UNIX, TLS, stdio) have what IStreamTransport says.
"""

from __future__ import annotations

import os

from twisted.internet import defer, reactor, ssl
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.stdio import StandardIO
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.trial.unittest import TestCase
from zope.interface.exceptions import BrokenImplementation
from zope.interface.verify import verifyObject

from pymta.streamtransport import ISocketStreamTransport, IStreamTransport
from tests.smtpd.tlsutil import cert_pem


class _Recording(Protocol):
    def __init__(self) -> None:
        self.connected_transport: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.connected_transport.callback(self.transport)


class StreamTransportTests(TestCase):
    def _server(self) -> tuple[Factory, _Recording]:
        protocol = _Recording()
        return Factory.forProtocol(lambda: protocol), protocol

    def _check(self, transport: object, interface: type[IStreamTransport] = ISocketStreamTransport) -> None:
        self.assertTrue(verifyObject(interface, transport, tentative=True))
        self.assertFalse(transport.disconnecting)  # type: ignore[attr-defined]
        transport.loseConnection()  # type: ignore[attr-defined]
        self.assertTrue(transport.disconnecting)  # type: ignore[attr-defined]

    async def _connected(self, port: object, client_endpoint: object, server: _Recording) -> object:
        self.addCleanup(port.stopListening)  # type: ignore[attr-defined]
        client = await connectProtocol(client_endpoint, Protocol())  # type: ignore[arg-type]
        self.addCleanup(client.transport.loseConnection)
        return await server.connected_transport

    @defer.inlineCallbacks
    def test_tcp(self):
        factory, server = self._server()
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        transport = yield defer.Deferred.fromCoroutine(self._connected(port, endpoint, server))
        self.assertTrue(ITCPTransport.providedBy(transport))
        self._check(transport)

    @defer.inlineCallbacks
    def test_unix(self):
        factory, server = self._server()
        path = os.path.abspath(self.mktemp())
        port = reactor.listenUNIX(path, factory)
        transport = yield defer.Deferred.fromCoroutine(self._connected(port, UNIXClientEndpoint(reactor, path), server))
        self._check(transport)

    @defer.inlineCallbacks
    def test_tls(self):
        factory, server = self._server()
        options = ssl.PrivateCertificate.loadPEM(cert_pem()).options()
        port = reactor.listenTCP(0, TLSMemoryBIOFactory(options, False, factory), interface="127.0.0.1")
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        transport = yield defer.Deferred.fromCoroutine(self._connected(port, endpoint, server))
        self.assertIsInstance(transport, TLSMemoryBIOProtocol)
        self._check(transport)

    def test_stdio(self):
        read_end, write_end = os.pipe()
        protocol = _Recording()
        stdio = StandardIO(protocol, stdin=read_end, stdout=write_end, reactor=reactor)
        self.assertIs(self.successResultOf(protocol.connected_transport), stdio)
        closed = defer.Deferred()
        protocol.connectionLost = lambda reason: closed.callback(None)  # type: ignore[method-assign]
        self.assertRaises(BrokenImplementation, verifyObject, ISocketStreamTransport, stdio, tentative=True)
        self._check(stdio, IStreamTransport)
        return closed
