"""
pymta.queue.handoff: why a hand-off to the queue failed, logged once per
condition - units with task.Clock, and the inject client on real sockets
(missing, refusing, then a real inject server).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile

from twisted.internet import defer, reactor
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger
from twisted.trial import unittest

from pymta.interfaces import QueueReceipt, QueueRefused
from pymta.queue.disk import QueueDisk
from pymta.queue.errors import EXIT_NETWORK, EXIT_WRITE_ERROR, QueueFailure
from pymta.queue.framing import inject_socket_path
from pymta.queue.handoff import HandOffLog
from pymta.queue.injectclient import InjectClientSink
from pymta.queue.injectserver import InjectServerFactory, listen_inject
from pymta.queue.layout import QueueLayout
from pymta.queue.sink import QueueSink
from pymta.queue.store import Queue


class Recorded:
    """A Logger whose events are kept as (level, formatted text)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.logger = Logger(namespace="test.handoff", observer=self.observe)

    def observe(self, event: dict) -> None:
        from twisted.logger import formatEvent

        self.events.append((event["log_level"].name, formatEvent(event)))


class HandOffLogTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.recorded = Recorded()
        self.handoffs = HandOffLog(self.recorded.logger)

    def test_once_per_condition_then_recovery(self) -> None:
        down = QueueFailure(EXIT_NETWORK, "inject socket /r/run/inject.sock is missing: is pymta-send running?")
        for _ in range(5):
            self.handoffs.outcome(down)
        self.assertEqual(self.recorded.events, [(
            "warn", "queue hand-off failed: qq trouble making network connection (#4.3.0): "
            "inject socket /r/run/inject.sock is missing: is pymta-send running? "
            "(repeats of this cause are counted, not logged)")])
        self.handoffs.outcome(QueueReceipt(7, 7))
        self.handoffs.outcome(QueueReceipt(8, 8))
        self.assertEqual(self.recorded.events[1:], [(
            "info", "queue hand-off works again; 5 failed meanwhile (last cause: qq trouble making network "
            "connection (#4.3.0): inject socket /r/run/inject.sock is missing: is pymta-send running?)")])

    def test_a_new_condition_is_logged_with_the_count_of_the_last(self) -> None:
        self.handoffs.outcome(QueueFailure(EXIT_NETWORK, "refused"))
        self.handoffs.outcome(QueueFailure(EXIT_NETWORK, "refused"))
        disk = QueueFailure(EXIT_WRITE_ERROR)
        self.handoffs.outcome(disk)
        self.handoffs.outcome(disk)
        self.assertEqual([text for _, text in self.recorded.events][1],
                         "queue hand-off failed: qq write error or disk full (#4.3.0) "
                         "(after 2 failed: qq trouble making network connection (#4.3.0): refused)")
        self.handoffs.outcome(QueueReceipt(1, 1))
        self.assertIn("4 failed meanwhile", self.recorded.events[-1][1])

    def test_permanent_refusals_and_plain_success_log_nothing(self) -> None:
        self.handoffs.outcome(QueueReceipt(1, 1))
        self.handoffs.outcome(QueueRefused("address too long (#5.1.3)", permanent=True))
        self.assertEqual(self.recorded.events, [])

    def test_timeouts_with_a_clock(self) -> None:
        """No reply in time (the clock's): one warning for three messages."""
        clock = MemoryReactorClock()
        sink = InjectClientSink(clock, "/nowhere/inject.sock", timeout=30.0, handoffs=self.handoffs)
        results = []
        for _ in range(3):
            w = sink.open_message("a@b", ["c@d"], origin="from network")
            w.write(b"x\n")
            w.finish().addErrback(results.append)
        clock.advance(30)
        self.assertEqual([f.value.text for f in results], ["qq timeout (#4.3.0)"] * 3)
        self.assertEqual(self.recorded.events, [(
            "warn", "queue hand-off failed: qq timeout (#4.3.0): inject socket: no reply "
            "(repeats of this cause are counted, not logged)")])

    def test_an_aborted_message_is_not_a_failure(self) -> None:
        sink = InjectClientSink(MemoryReactorClock(), "/nowhere/inject.sock", handoffs=self.handoffs)
        sink.open_message("a@b", ["c@d"], origin="from network").abort()
        self.assertEqual(self.recorded.events, [])


class RealSocketTests(unittest.TestCase):
    """The inject client on real UNIX sockets: missing, refusing, then a real inject server."""

    timeout = 30

    def setUp(self) -> None:
        self.root = tempfile.mkdtemp(prefix="pymta-ho-")
        self.addCleanup(shutil.rmtree, self.root, True)
        os.makedirs(os.path.join(self.root, "run"))
        self.path = inject_socket_path(self.root)
        self.recorded = Recorded()
        self.sink = InjectClientSink(reactor, self.path, handoffs=HandOffLog(self.recorded.logger))
        self.addCleanup(self.sink.close)

    def send(self) -> defer.Deferred:
        w = self.sink.open_message("a@b", ["c@d"], origin="from network")
        w.write(b"Subject: t\n\nbody\n")
        return w.finish()

    async def fails(self) -> QueueRefused:
        try:
            await self.send()
        except QueueRefused as e:
            return e
        raise AssertionError("the hand-off worked")

    async def test_missing_refused_then_recovered(self) -> None:
        for _ in range(3):
            e = await self.fails()
            self.assertEqual(e.text, "qq trouble making network connection (#4.3.0)")
        # a socket file nobody listens on
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(self.path)
        for _ in range(2):
            await self.fails()
        stale.close()
        os.unlink(self.path)
        layout = QueueLayout(os.path.join(self.root, "queue"))
        layout.create()
        port = await listen_inject(reactor, self.root,
                                   InjectServerFactory(QueueSink(Queue(QueueDisk.plain(layout)), reactor)))
        self.addCleanup(port.stopListening)
        receipt = await self.send()
        self.assertTrue(os.path.exists(layout.mess(receipt.message_id)))
        await self.send()
        self.assertEqual(self.recorded.events, [
            ("warn", f"queue hand-off failed: qq trouble making network connection (#4.3.0): inject socket "
                     f"{self.path} is missing: is pymta-send running? (repeats of this cause are counted, not logged)"),
            ("warn", f"queue hand-off failed: qq trouble making network connection (#4.3.0): inject socket "
                     f"{self.path} refuses connections: pymta-send is not listening on it (after 3 failed: "
                     f"qq trouble making network connection (#4.3.0): inject socket {self.path} is missing: "
                     f"is pymta-send running?)"),
            ("info", f"queue hand-off works again; 5 failed meanwhile (last cause: qq trouble making network "
                     f"connection (#4.3.0): inject socket {self.path} refuses connections: "
                     f"pymta-send is not listening on it)"),
        ])
