"""
The null client's hand-over on the reactor (L{pymta.qmqpprotocol}): one
packet per connection, the first reply decides, servers that do not reply
are skipped; on a memory reactor with a clock and string transports.
"""

from __future__ import annotations

import io
from typing import Any

from twisted.internet import error
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pymta.interfaces import QueueReceipt
from pymta.qmqpclient import (
    EXIT_CONNECT_REFUSED,
    EXIT_CONNECT_TIMEOUT,
    EXIT_CONNECTION_DROPPED,
    IO_TIMEOUT,
    MAX_REPLY,
    encode_envelope,
)
from pymta.qmqpprotocol import QMQPHandOver
from pymta.qmqpservers import QMQPServer
from pymta.queue.errors import QueueFailure
from pymta.queue.framing import netstring, split_netstrings

FIRST, SECOND = QMQPServer("192.0.2.1"), QMQPServer("192.0.2.2", 2628)
MESSAGE = b"Subject: s\n\n" + b"body line\n" * 20000  # 200 kB: many of FileSender's chunks


class HandOverTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.spool = io.BytesIO(MESSAGE)
        self.hand_over = QMQPHandOver(self.reactor, [FIRST, SECOND], self.spool, len(MESSAGE),
                                      encode_envelope("a@app.example", ["b@x.example"]))
        self.result = self.hand_over.start()

    def connection(self, index: int) -> tuple[Any, StringTransport]:
        """Open the C{index}th connection attempt; its protocol and transport."""
        host, port, factory, timeout, _ = self.reactor.tcpClients[index]
        self.assertEqual(timeout, 10.0)
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def send_all(self, transport: StringTransport) -> bytes:
        while transport.producer is not None:
            transport.producer.resumeProducing()
        return transport.value()

    def test_the_packet_streams_from_the_spool(self) -> None:
        _, transport = self.connection(0)
        self.assertEqual(self.reactor.tcpClients[0][:2], ("192.0.2.1", 628))
        self.assertLess(len(transport.value()), 100)  # the head only: the message is pulled chunk by chunk
        packet = self.send_all(transport)
        [payload] = split_netstrings(packet)
        self.assertEqual(split_netstrings(payload), [MESSAGE, b"a@app.example", b"b@x.example"])
        self.assertNoResult(self.result)

    def test_k_is_a_receipt(self) -> None:
        protocol, transport = self.connection(0)
        self.send_all(transport)
        protocol.dataReceived(netstring(b"Kok 1800000000 qp 77"))
        self.assertEqual(self.successResultOf(self.result), QueueReceipt(0, 77))
        self.assertTrue(transport.disconnecting)

    def test_z_d_and_anything_else_decide(self) -> None:
        for reply, permanent in ((b"Zlater (#4.3.0)", False), (b"Dno (#5.1.1)", True), (b"Xwhat", False)):
            self.setUp()
            protocol, transport = self.connection(0)
            self.send_all(transport)
            protocol.dataReceived(netstring(reply))
            failure = self.failureResultOf(self.result, QueueFailure)
            self.assertEqual((failure.value.text, failure.value.permanent), (reply[1:].decode(), permanent))
            self.assertEqual(len(self.reactor.tcpClients), 1)  # a reply decides: the second server is not tried

    def assertNextServer(self, code: int) -> None:
        """The first server was skipped for the second, which then says K."""
        self.assertEqual(self.reactor.tcpClients[1][:2], ("192.0.2.2", 2628))
        protocol, transport = self.connection(1)
        self.assertEqual(split_netstrings(split_netstrings(self.send_all(transport))[0])[0], MESSAGE)
        protocol.dataReceived(netstring(b"Kok 1 qp 5"))
        self.assertEqual(self.successResultOf(self.result), QueueReceipt(0, 5))
        self.assertEqual(self.hand_over._last.exit_code, code)

    def test_garbage_moves_on(self) -> None:
        protocol, transport = self.connection(0)
        protocol.dataReceived(b"220 an SMTP server\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertNextServer(EXIT_CONNECTION_DROPPED)

    def test_an_oversized_reply_moves_on(self) -> None:
        protocol, transport = self.connection(0)
        self.send_all(transport)
        protocol.dataReceived(b"%d:" % (MAX_REPLY + 1))
        self.assertTrue(transport.disconnecting)
        self.assertNextServer(EXIT_CONNECTION_DROPPED)

    def test_a_dropped_connection_moves_on(self) -> None:
        protocol, transport = self.connection(0)
        self.send_all(transport)
        protocol.dataReceived(b"5:Kok")  # part of a reply is no reply
        protocol.connectionLost(Failure(error.ConnectionDone()))
        self.assertNextServer(EXIT_CONNECTION_DROPPED)

    def test_silence_times_out_and_progress_restarts_the_clock(self) -> None:
        protocol, transport = self.connection(0)
        self.reactor.advance(IO_TIMEOUT - 1)
        transport.producer.resumeProducing()  # a chunk written: progress
        self.reactor.advance(IO_TIMEOUT - 1)
        self.assertFalse(transport.disconnecting)
        self.send_all(transport)
        self.reactor.advance(IO_TIMEOUT - 1)
        protocol.dataReceived(b"1")  # part of the reply: progress too
        self.reactor.advance(IO_TIMEOUT - 1)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.reactor.advance(1)
        self.assertTrue(transport.disconnecting)
        self.assertNextServer(EXIT_CONNECTION_DROPPED)

    def test_a_refused_connection_moves_on(self) -> None:
        self.reactor.tcpClients[0][2].clientConnectionFailed(None, Failure(error.ConnectionRefusedError()))
        self.assertNextServer(EXIT_CONNECT_REFUSED)

    def test_all_servers_down_is_the_last_failure(self) -> None:
        self.reactor.tcpClients[0][2].clientConnectionFailed(None, Failure(error.ConnectionRefusedError()))
        self.reactor.tcpClients[1][2].clientConnectionFailed(None, Failure(error.TimeoutError()))
        failure = self.failureResultOf(self.result, QueueFailure)
        self.assertEqual(failure.value.exit_code, EXIT_CONNECT_TIMEOUT)
        self.assertFalse(failure.value.permanent)
        self.assertEqual(failure.value.text, "connection to mail server timed out (#4.4.1)")

    def test_abort_while_sending_closes_and_promises_nothing(self) -> None:
        protocol, transport = self.connection(0)
        transport.producer.resumeProducing()
        self.hand_over.abort()
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(error.ConnectionAborted()))
        failure = self.failureResultOf(self.result, QueueFailure)
        self.assertFalse(failure.value.permanent)
        self.assertEqual(len(self.reactor.tcpClients), 1)  # not sent elsewhere either

    def test_abort_while_connecting_cancels(self) -> None:
        connector = self.reactor.connectors[0]
        self.hand_over.abort()
        self.assertEqual(connector.stoppedConnecting, True)
        self.failureResultOf(self.result, QueueFailure)
        self.assertEqual(len(self.reactor.tcpClients), 1)


class NoServerTests(SynchronousTestCase):
    def test_an_empty_list_is_refused(self) -> None:
        result = QMQPHandOver(MemoryReactorClock(), [], io.BytesIO(b"m\n"), 2, b"0:,").start()
        self.assertEqual(self.failureResultOf(result, QueueFailure).value.exit_code, EXIT_CONNECT_REFUSED)
