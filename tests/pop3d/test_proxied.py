"""POP3 behind a trusted proxy: connection limits count the client the PROXY header names, not the proxy."""

from __future__ import annotations

import ipaddress

from twisted.internet.address import IPv4Address

from pymta.proxylistener import TrustedProxyFactory
from pymta.trustedproxies import TrustedProxies
from tests.pop3d.helpers import TLSStringTransport
from tests.pop3d.test_protocol import ProtocolTestBase
from tests.proxyheaders import v2

PROXY = IPv4Address("TCP", "10.0.0.5", 50000)


class ProxiedLimits(ProtocolTestBase):
    def setUp(self) -> None:
        super().setUp()
        self.settings.max_connections = 5
        self.settings.max_connections_per_address = 2
        trusted = TrustedProxies((ipaddress.ip_network("10.0.0.5/32"),))
        self.proxied = TrustedProxyFactory(self.factory, lambda: trusted, self.clock)

    def through_proxy(self, client: str) -> TLSStringTransport:
        transport = TLSStringTransport(peerAddress=PROXY)
        connection = self.proxied.buildProtocol(PROXY)
        connection.makeConnection(transport)
        connection.dataReceived(v2(client, "10.0.0.1", 40000, 110))
        return transport

    def test_per_address_limit_counts_clients(self) -> None:
        # setUp's direct session holds one slot of 192.0.2.1; the proxy holds none of its own
        replies = [self.through_proxy(ip).value() for ip in ("192.0.2.1", "192.0.2.1", "192.0.2.8", "192.0.2.8")]
        self.assertEqual([r[:4] for r in replies], [b"+OK ", b"-ERR", b"+OK ", b"+OK "])
        self.assertIn(b"too many connections from your address", replies[1])
        self.assertEqual(self.settings.connections.total, 4)
