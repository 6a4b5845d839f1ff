"""QMQPSink, pymta-smtpd's queue sink on a null client: finish() fires only after a server's K."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from pymta.interfaces import QueueReceipt
from pymta.qmqpservers import QMQPServer
from pymta.qmqpsink import QMQPSink
from pymta.queue.errors import QueueFailure
from pymta.queue.framing import split_netstrings
from tests.test_qmqpclient import FakeServer, closed_port


def now(f, *args):  # type: ignore[no-untyped-def]
    """in_thread for tests: run at once."""
    return defer.maybeDeferred(f, *args)


class SinkTests(SynchronousTestCase):
    def sink(self, *servers: QMQPServer) -> QMQPSink:
        return QMQPSink(None, lambda: servers, in_thread=now)

    def test_k_after_the_message_reached_the_server(self) -> None:
        far = FakeServer(self, b"Kok 1800000000 qp 12")
        writer = self.sink(closed_port(), far.server).open_message("a@app.example", ["b@x.example"], origin="from network")
        writer.write(b"Received: x\n")
        writer.write(b"Subject: s\n\nbody\n")
        receipt = self.successResultOf(writer.finish())
        self.assertEqual(receipt, QueueReceipt(0, 12))
        far.thread.join(10)
        self.assertEqual(split_netstrings(far.packets[0]),
                         [b"Received: x\nSubject: s\n\nbody\n", b"a@app.example", b"b@x.example"])

    def test_refusals_fail_finish(self) -> None:
        far = FakeServer(self, b"Dno (#5.1.1)")
        writer = self.sink(far.server).open_message("", ["b@x.example"], origin="from network")
        writer.write(b"m\n")
        failure = self.failureResultOf(writer.finish(), QueueFailure)
        self.assertEqual((failure.value.text, failure.value.permanent), ("no (#5.1.1)", True))
        writer = self.sink(closed_port()).open_message("", ["b@x.example"], origin="from network")
        failure = self.failureResultOf(writer.finish(), QueueFailure)
        self.assertFalse(failure.value.permanent)
        failure = self.failureResultOf(self.sink().open_message("", ["b@x.example"], origin="x").finish(), QueueFailure)
        self.assertFalse(failure.value.permanent)

    def test_abort_sends_nothing(self) -> None:
        far = FakeServer(self, b"Kok 1 qp 1")
        writer = self.sink(far.server).open_message("", ["b@x.example"], origin="from network")
        writer.write(b"m\n")
        writer.abort()
        far.stop()
        self.assertEqual(far.packets, [])
