"""
pymta.proxylistener over StringTransport: only listed proxies, a header
first (v1 or v2, bounded in size and time), then the listener's protocol
with the client's addresses, in smtpd's access rules and Received line too.
"""

from __future__ import annotations

import ipaddress

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pymta.control import ControlReader
from pymta.pop3d.protocol import POP3Factory, ServerSettings
from pymta.proxylistener import HEADER_SECONDS, ProxiedConnection, TrustedProxyFactory
from pymta.smtpd.access import AccessRules
from pymta.smtpd.context import SMTPDContext
from pymta.smtpd.factory import SMTPFactory
from pymta.trustedproxies import TrustedProxies
from tests.proxyheaders import v1, v2, v2_local
from tests.smtpd.helpers import MemorySink, make_root

PROXY_IP = "10.0.0.5"
TRUSTED = TrustedProxies((ipaddress.ip_network("10.0.0.0/24"),))


class Recorder(Protocol):
    """What the listener's protocol saw."""

    def __init__(self, addr: object) -> None:
        self.addr = addr
        self.peer: object = None
        self.host: object = None
        self.data = b""
        self.lost = False

    def connectionMade(self) -> None:
        self.peer = self.transport.getPeer()  # type: ignore[union-attr]
        self.host = self.transport.getHost()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: B008
        self.lost = True


class RecordingFactory(Factory):
    def __init__(self) -> None:
        self.built: list[Recorder] = []

    def buildProtocol(self, addr: object) -> Recorder:  # type: ignore[override]
        self.built.append(Recorder(addr))
        return self.built[-1]


class Base(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.inner = RecordingFactory()
        self.factory = TrustedProxyFactory(self.inner, lambda: TRUSTED, self.clock)
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def connect(self, peer: str = PROXY_IP) -> tuple[ProxiedConnection, StringTransport]:
        transport = StringTransport(
            hostAddress=IPv4Address("TCP", "10.0.0.1", 2525), peerAddress=IPv4Address("TCP", peer, 50000)
        )
        connection = self.factory.buildProtocol(transport.getPeer())
        connection.makeConnection(transport)
        return connection, transport

    def proxy_lines(self) -> list[str]:
        return [formatEvent(e) for e in self.events if formatEvent(e).startswith("proxy: ")]


class Refusals(Base):
    def test_unlisted_peer_is_refused_at_once_header_or_not(self) -> None:
        connection, transport = self.connect("192.0.2.50")
        self.assertTrue(transport.disconnecting)
        connection.dataReceived(v1("203.0.113.9", "10.0.0.1"))
        self.assertEqual(self.inner.built, [])
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.proxy_lines(), ["proxy: refused 192.0.2.50: not in control/trustedproxies"])

    def test_no_file_trusts_nobody(self) -> None:
        self.factory.trusted = TrustedProxies
        connection, transport = self.connect()
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.inner.built, [])

    def test_listed_proxy_without_a_header_is_refused(self) -> None:
        connection, transport = self.connect()
        self.assertFalse(transport.disconnecting)
        connection.dataReceived(b"EHLO client.example\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.inner.built, [])
        self.assertEqual(self.proxy_lines(), [f"proxy: refused {PROXY_IP}: no PROXY header"])

    def test_header_must_arrive_in_time(self) -> None:
        connection, transport = self.connect()
        connection.dataReceived(v1("203.0.113.9", "10.0.0.1")[:10])
        self.clock.advance(HEADER_SECONDS - 0.1)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.inner.built, [])
        self.assertEqual(self.proxy_lines(), [f"proxy: refused {PROXY_IP}: no PROXY header within 10 seconds"])

    def test_lost_before_the_header_leaves_no_timer_and_no_protocol(self) -> None:
        connection, transport = self.connect()
        connection.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.inner.built, [])


class Accepted(Base):
    def test_v1_client_addresses_and_pipelined_bytes(self) -> None:
        connection, transport = self.connect()
        connection.dataReceived(v1("203.0.113.9", "198.51.100.1", 1234, 25) + b"EHLO x\r\n")
        [proto] = self.inner.built
        self.assertEqual(proto.addr, IPv4Address("TCP", "203.0.113.9", 1234))
        self.assertEqual(proto.peer, IPv4Address("TCP", "203.0.113.9", 1234))
        self.assertEqual(proto.host, IPv4Address("TCP", "198.51.100.1", 25))
        self.assertEqual(proto.data, b"EHLO x\r\n")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        connection.dataReceived(b"QUIT\r\n")
        self.assertEqual(proto.data, b"EHLO x\r\nQUIT\r\n")
        connection.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(proto.lost)
        self.assertEqual(self.factory.protocols, {})

    def test_v2_a_byte_at_a_time(self) -> None:
        connection, transport = self.connect()
        for byte in v2("203.0.113.9", "198.51.100.1", 1234, 25):
            connection.dataReceived(bytes([byte]))
        [proto] = self.inner.built
        self.assertEqual(proto.peer, IPv4Address("TCP", "203.0.113.9", 1234))
        self.assertEqual(proto.data, b"")

    def test_local_header_keeps_the_proxys_own_addresses(self) -> None:
        connection, transport = self.connect()
        connection.dataReceived(v2_local() + b"QUIT\r\n")
        [proto] = self.inner.built
        self.assertEqual(proto.peer, IPv4Address("TCP", PROXY_IP, 50000))
        self.assertEqual(proto.data, b"QUIT\r\n")

    def test_the_list_is_asked_at_each_connection(self) -> None:
        lists = [TrustedProxies(), TRUSTED]
        self.factory.trusted = lambda: lists[0]
        self.assertTrue(self.connect()[1].disconnecting)
        lists.pop(0)
        self.assertFalse(self.connect()[1].disconnecting)


class SMTPBehindTheProxy(Base):
    """smtpd's access rules and Received line see the client the header names, not the proxy."""

    RULES = f'{PROXY_IP}:allow,RELAYCLIENT=""\n203.0.113.66:deny\n:allow\n'

    def setUp(self) -> None:
        super().setUp()
        self.clock.advance(1_800_000_000)
        root = make_root(self.mktemp(), rcpthosts="example.org")
        self.sink = MemorySink()
        context = SMTPDContext(
            reader=ControlReader(root), sink=self.sink, clock=self.clock, rules=AccessRules.parse(self.RULES)
        )
        self.factory = TrustedProxyFactory(SMTPFactory(context, None), lambda: TRUSTED, self.clock)

    def session(self, header: bytes) -> tuple[ProxiedConnection, StringTransport]:
        connection, transport = self.connect()
        self.addCleanup(lambda: connection.connectionLost(Failure(ConnectionDone())))
        connection.dataReceived(header)
        return connection, transport

    def command(self, connection: ProxiedConnection, transport: StringTransport, line: bytes) -> bytes:
        transport.clear()
        connection.dataReceived(line + b"\r\n")
        return transport.value()

    def test_client_is_no_relay_client_and_is_named_in_received(self) -> None:
        connection, transport = self.session(v2("203.0.113.9", "10.0.0.1", 1234, 25))
        self.assertTrue(transport.value().startswith(b"220 "))
        self.command(connection, transport, b"HELO client.example")
        self.command(connection, transport, b"MAIL FROM:<a@client.example>")
        refused = self.command(connection, transport, b"RCPT TO:<b@elsewhere.example>")
        self.assertTrue(refused.startswith(b"553 "), refused)  # the proxy's RELAYCLIENT is not the client's
        self.assertEqual(self.command(connection, transport, b"RCPT TO:<b@example.org>"), b"250 ok\r\n")
        self.command(connection, transport, b"DATA")
        self.assertTrue(self.command(connection, transport, b"Subject: x\r\n\r\nhi\r\n.").startswith(b"250 ok"))
        [message] = self.sink.queued
        self.assertIn(b"(HELO client.example) (203.0.113.9)", message.data.split(b"\n")[0])
        self.assertNotIn(PROXY_IP.encode(), message.data)

    def test_client_deny_rule_applies(self) -> None:
        connection, transport = self.session(v1("203.0.113.66", "10.0.0.1"))
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)

    def test_health_check_is_the_proxy_itself(self) -> None:
        connection, transport = self.session(v2_local())
        self.assertTrue(transport.value().startswith(b"220 "))
        self.command(connection, transport, b"HELO proxy")
        self.command(connection, transport, b"MAIL FROM:<>")
        self.assertEqual(self.command(connection, transport, b"RCPT TO:<b@elsewhere.example>"), b"250 ok\r\n")


class HealthChecksAndLimits(Base):
    """
    A health check (v2 LOCAL) is the proxy's own connection: it counts in the
    server's total but never against an address's share, which clients whose
    header names the proxy's address (an application on the proxy's host) hold.
    """

    def setUp(self) -> None:
        super().setUp()
        root = make_root(self.mktemp(), rcpthosts="example.org", concurrencyincoming="3", concurrencyperip="1")
        context = SMTPDContext(reader=ControlReader(root), sink=MemorySink(), clock=self.clock,
                               rules=AccessRules.parse(":allow\n"))
        self.factory = TrustedProxyFactory(SMTPFactory(context, None), lambda: TRUSTED, self.clock)

    def greeting(self, header: bytes) -> bytes:
        connection, transport = self.connect()
        self.addCleanup(lambda: connection.connectionLost(Failure(ConnectionDone())))
        connection.dataReceived(header)
        return transport.value()

    def test_a_client_at_the_proxys_address_leaves_room_for_health_checks(self) -> None:
        self.assertTrue(self.greeting(v2(PROXY_IP, "10.0.0.1")).startswith(b"220 "))
        self.assertTrue(self.greeting(v2_local()).startswith(b"220 "))
        self.assertTrue(self.greeting(v2(PROXY_IP, "10.0.0.1")).startswith(b"421 "))  # clients keep their limit

    def test_health_checks_take_no_clients_slot_but_count_in_the_total(self) -> None:
        self.assertTrue(self.greeting(v2_local()).startswith(b"220 "))
        self.assertTrue(self.greeting(v2_local()).startswith(b"220 "))
        self.assertTrue(self.greeting(v2(PROXY_IP, "10.0.0.1")).startswith(b"220 "))
        self.assertTrue(self.greeting(v2("203.0.113.9", "10.0.0.1")).startswith(b"421 "))  # 3 in all

    def test_pop3_health_checks_are_not_counted_per_address(self) -> None:
        settings = ServerSettings(hostname="pop.example", authenticator=None,  # type: ignore[arg-type]
                                  open_mailbox=lambda account: None,  # type: ignore[arg-type,return-value]
                                  max_connections=3, max_connections_per_address=1, clock=self.clock)
        self.factory = TrustedProxyFactory(POP3Factory(settings), lambda: TRUSTED, self.clock)
        self.assertTrue(self.greeting(v2(PROXY_IP, "10.0.0.1", dport=110)).startswith(b"+OK "))
        self.assertTrue(self.greeting(v2_local()).startswith(b"+OK "))
        self.assertTrue(self.greeting(v2(PROXY_IP, "10.0.0.1", dport=110)).startswith(b"-ERR "))
        self.assertEqual((settings.connections.total, settings.connections.by_group), (2, {PROXY_IP: 1}))
