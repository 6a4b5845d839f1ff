"""ConnectionCloser with task.Clock: abort while a TLS handshake is unfinished, else lose then abort after the grace."""

from __future__ import annotations

from typing import Any

from twisted.internet import abstract, task
from twisted.test.proto_helpers import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from pymta.connectionclose import CLOSE_GRACE_SECONDS, ConnectionCloser, pending_output


class RecordingTransport:
    """Records loseConnection and abortConnection calls, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def loseConnection(self) -> None:
        self.calls.append("lose")

    def abortConnection(self) -> None:
        self.calls.append("abort")


class StdioLikeTransport:
    """A transport without abortConnection (stdio)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def loseConnection(self) -> None:
        self.calls.append("lose")


class SlowSocket(abstract.FileDescriptor):
    """
    Twisted's real write buffer (L{abstract.FileDescriptor}) over a socket
    that takes only C{allow} more bytes; C{flush} runs what the reactor
    would when the socket is writable.
    """

    def __init__(self) -> None:
        super().__init__(reactor=task.Clock())
        self.connected = 1
        self.allow = 0
        self.sent = 0
        self.calls: list[str] = []

    def startWriting(self) -> None:
        pass

    def stopWriting(self) -> None:
        pass

    def startReading(self) -> None:
        pass

    def stopReading(self) -> None:
        pass

    def writeSomeData(self, data: Any) -> int:
        taken = min(len(data), self.allow)
        self.allow -= taken
        self.sent += taken
        return taken

    def flush(self, allow: int) -> None:
        self.allow = allow
        self.doWrite()

    def loseConnection(self, *args: Any) -> None:
        self.calls.append("lose")
        super().loseConnection()

    def abortConnection(self) -> None:
        self.calls.append("abort")


class Wrapper:
    """A layer over another transport (TLS, HAProxy), holding C{held} back (as TLS before its handshake)."""

    def __init__(self, transport: Any, held: list[bytes] | None = None) -> None:
        self.transport = transport
        self._appSendBuffer = held if held is not None else []
        self.calls: list[str] = []

    def loseConnection(self) -> None:
        self.calls.append("lose")

    def abortConnection(self) -> None:
        self.calls.append("abort")


class PendingOutput(SynchronousTestCase):
    def test_a_write_buffer_counts_what_is_not_sent(self) -> None:
        socket = SlowSocket()
        self.assertEqual(pending_output(socket), 0)
        socket.write(b"x" * 1000)
        self.assertEqual(pending_output(socket), 1000)
        socket.flush(300)
        self.assertEqual(pending_output(socket), 700)
        socket.write(b"y" * 50)
        self.assertEqual(pending_output(socket), 750)

    def test_layers_add_up(self) -> None:
        socket = SlowSocket()
        socket.write(b"x" * 10)
        top = Wrapper(Wrapper(socket), held=[b"abc", b"de"])
        self.assertEqual(pending_output(top), 15)

    def test_unknown_transport(self) -> None:
        self.assertIsNone(pending_output(StringTransport()))


class FinishingAfterACompleteReply(SynchronousTestCase):
    """finish(): the output drains while it moves; aborted only after C{idle} seconds without progress."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.closer = ConnectionCloser(self.clock, idle=60)
        self.socket = SlowSocket()
        self.socket.write(b"m" * 1_000_000)  # a long RETR, buffered
        self.transport = Wrapper(self.socket)  # TLS over TCP

    def test_a_slow_reader_gets_everything(self) -> None:
        self.closer.finish(self.transport)
        self.assertEqual(self.transport.calls, ["lose"])
        for _ in range(100):  # 10,000 bytes per 5 s: 500 s, far beyond the idle time
            self.clock.advance(CLOSE_GRACE_SECONDS)
            self.assertNotIn("abort", self.transport.calls)
            self.socket.flush(10_000)
        self.assertEqual(self.socket.sent, 1_000_000)
        self.clock.advance(CLOSE_GRACE_SECONDS)
        # all of it with the kernel: the socket itself is closed in order (no TLS close_notify awaited)
        self.assertEqual(self.socket.calls, ["lose"])
        self.assertEqual(self.transport.calls, ["lose"])
        self.closer.lost()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_reader_that_stops_is_aborted_after_idle(self) -> None:
        self.closer.finish(self.transport)
        self.clock.advance(CLOSE_GRACE_SECONDS)
        self.socket.flush(1000)
        self.clock.advance(CLOSE_GRACE_SECONDS)  # moved: the idle time starts now
        self.clock.advance(60 - CLOSE_GRACE_SECONDS)
        self.assertEqual(self.transport.calls, ["lose"])
        self.clock.advance(CLOSE_GRACE_SECONDS)
        self.assertEqual(self.transport.calls, ["lose", "abort"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_not_gone_after_the_socket_is_closed_is_aborted(self) -> None:
        closer = ConnectionCloser(self.clock, idle=60)
        transport = Wrapper(SlowSocket())  # nothing buffered
        closer.finish(transport)
        self.clock.advance(CLOSE_GRACE_SECONDS)
        self.assertEqual(transport.transport.calls, ["lose"])
        self.clock.advance(CLOSE_GRACE_SECONDS)
        self.assertEqual(transport.calls, ["lose", "abort"])

    def test_unfinished_handshake_is_aborted_at_once(self) -> None:
        self.closer.tls_started()
        self.closer.finish(self.transport)
        self.assertEqual(self.transport.calls, ["abort"])

    def test_finish_after_close_does_nothing(self) -> None:
        self.closer.close(self.transport)
        self.closer.finish(self.transport)
        self.assertEqual(self.transport.calls, ["lose"])

    def test_transport_without_abort(self) -> None:
        stdio = StdioLikeTransport()
        self.closer.finish(stdio)
        self.assertEqual(stdio.calls, ["lose"])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class Closing(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.closer = ConnectionCloser(self.clock)
        self.transport = RecordingTransport()

    def test_plain_close_is_polite_then_aborted_after_the_grace(self) -> None:
        self.closer.close(self.transport)
        self.assertEqual(self.transport.calls, ["lose"])
        self.clock.advance(CLOSE_GRACE_SECONDS - 0.1)
        self.assertEqual(self.transport.calls, ["lose"])
        self.clock.advance(0.1)
        self.assertEqual(self.transport.calls, ["lose", "abort"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_gone_within_the_grace_is_not_aborted(self) -> None:
        self.closer.close(self.transport)
        self.clock.advance(1)
        self.closer.lost()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(CLOSE_GRACE_SECONDS)
        self.assertEqual(self.transport.calls, ["lose"])

    def test_unfinished_handshake_is_aborted_at_once(self) -> None:
        self.closer.tls_started()
        self.assertTrue(self.closer.handshaking)
        self.closer.close(self.transport)
        self.assertEqual(self.transport.calls, ["abort"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_finished_handshake_closes_politely(self) -> None:
        self.closer.tls_started()
        self.closer.handshake_completed()
        self.assertFalse(self.closer.handshaking)
        self.closer.close(self.transport)
        self.assertEqual(self.transport.calls, ["lose"])

    def test_decrypted_bytes_end_the_handshake(self) -> None:
        # behind haproxy:ssl: handshakeCompleted never reaches the protocol; its first dataReceived does
        self.closer.tls_started()
        self.closer.received()
        self.assertFalse(self.closer.handshaking)
        self.closer.close(self.transport)
        self.assertEqual(self.transport.calls, ["lose"])

    def test_starttls_after_a_plain_start(self) -> None:
        self.closer.tls_started()  # STARTTLS on a connection that began in plaintext
        self.closer.close(self.transport)
        self.assertEqual(self.transport.calls, ["abort"])

    def test_closed_once(self) -> None:
        self.closer.close(self.transport)
        self.closer.close(self.transport)
        self.clock.advance(CLOSE_GRACE_SECONDS)
        self.closer.close(self.transport)
        self.assertEqual(self.transport.calls, ["lose", "abort"])

    def test_close_after_lost_does_nothing(self) -> None:
        self.closer.lost()
        self.closer.close(self.transport)
        self.assertEqual(self.transport.calls, [])

    def test_transport_without_abort(self) -> None:
        stdio = StdioLikeTransport()
        self.closer.close(stdio)
        self.assertEqual(stdio.calls, ["lose"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_grace_is_configurable(self) -> None:
        closer = ConnectionCloser(self.clock, grace=0.5)
        closer.close(self.transport)
        self.clock.advance(0.5)
        self.assertEqual(self.transport.calls, ["lose", "abort"])
