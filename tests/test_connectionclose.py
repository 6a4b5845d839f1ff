"""ConnectionCloser with task.Clock: abort while a TLS handshake is unfinished, else lose then abort after the grace."""

from __future__ import annotations

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from pymta.connectionclose import CLOSE_GRACE_SECONDS, ConnectionCloser


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
