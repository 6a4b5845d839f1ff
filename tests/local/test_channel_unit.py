"""LocalChannel's report handling with a fake process reactor (no real spawner)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from twisted.internet import task
from twisted.internet.error import ProcessTerminated
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial import unittest

from pymta.control import ControlReader
from pymta.interfaces import DeliveryJob
from pymta.local.channel import SPAWNER_DIED, LocalChannel
from pymta.local.spawnrecords import DeliveryCounts, DeliveryReport, DeliveryRequest, SpawnerHello
from pymta.local.wire import RecordReader, encode_record
from tests.local.test_channel import RecordingSink


@contextmanager
def captured_log() -> Iterator[list[dict]]:
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(events.append)


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""
        self.signals: list[str] = []
        self.stdin_closed = False

    def writeToChild(self, fd: int, data: bytes) -> None:
        self.written += data

    def closeStdin(self) -> None:
        self.stdin_closed = True

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)


class FakeProcessReactor(task.Clock):
    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[tuple] = []

    def spawnProcess(self, protocol, executable, args=(), env=None, path=None, childFDs=None, **kw):
        transport = FakeTransport()
        protocol.makeConnection(transport)
        self.spawned.append((protocol, executable, list(args), env, childFDs))
        return transport


class ChannelUnitTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "control"))
        with open(os.path.join(self.root, "control", "defaultdelivery"), "w") as f:
            f.write("./Mailbox\n")
        self.message = os.path.join(self.root, "mess")
        with open(self.message, "wb") as f:
            f.write(b"Subject: x\n\nbody\n")
        self.reactor = FakeProcessReactor()
        self.sink = RecordingSink()
        self.channel = LocalChannel(self.root, ControlReader(self.root), self.sink, self.reactor, restart_delay=5)
        self.channel.start()
        self.protocol = self.reactor.spawned[0][0]
        self.protocol.childDataReceived(1, SpawnerHello(77, 0).encode())

    def requests(self) -> list[DeliveryRequest]:
        return [DeliveryRequest.parse(r) for r in RecordReader().feed(self.protocol.transport.written)]

    def report(self, report: DeliveryReport) -> None:
        self.protocol.childDataReceived(1, report.encode())

    def raw_report(self, **record) -> None:
        self.protocol.childDataReceived(1, encode_record(record))

    def test_spawn_arguments(self) -> None:
        _, executable, args, env, child_fds = self.reactor.spawned[0]
        self.assertEqual(args[1:], ["-m", "pymta.local.spawner", self.root])
        self.assertEqual(child_fds, {0: "w", 1: "r", 2: "r"})
        self.assertEqual(sorted(env), ["LANG", "PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH"])
        self.assertEqual(self.channel.spawner_uid, 0)

    def test_request_and_reports(self) -> None:
        d = self.channel.deliver(DeliveryJob(5, self.message, "a@b", ("joe@x",)))
        [request] = self.requests()
        self.assertEqual(request, DeliveryRequest(1, self.message, "a@b", "joe@x", "./Mailbox\n"))
        self.assertNoResult(d)
        self.report(DeliveryReport(1, "K", "hi\n", DeliveryCounts(1, 0, 2), (), "a@b", 5))
        [result] = self.successResultOf(d)
        self.assertEqual((result.status, result.text), ("K", "hi\ndid 1+0+2\n"))

    def test_bad_status_and_unknown_slot(self) -> None:
        d = self.channel.deliver(DeliveryJob(5, self.message, "a@b", ("joe@x",)))
        self.report(DeliveryReport.report(99, "K", ""))
        self.assertNoResult(d)
        self.raw_report(slot=1, status="Q", output="")
        [result] = self.successResultOf(d)
        self.assertEqual(result.status, "Z")
        self.assertIn("'Q'", result.text)

    def test_not_root_deferral_is_logged(self) -> None:
        d = self.channel.deliver(DeliveryJob(5, self.message, "a@b", ("joe@x",)))
        text = "Not running as root, cannot deliver as uid 5. (#4.3.0)"
        with captured_log() as events:
            self.report(DeliveryReport.report(1, "Z", text, needs_root=True))
        [result] = self.successResultOf(d)
        self.assertEqual((result.status, result.text), ("Z", text))
        self.assertTrue(any("pymta-send is not root" in str(e.get("log_format")) for e in events))

    def test_not_root_line_names_message_and_delivery(self) -> None:
        d = self.channel.deliver(DeliveryJob(5, self.message, "a@b", ("joe@x", "ann@x"), (11, 12)))
        with captured_log() as events:
            self.report(DeliveryReport.report(2, "Z", "Not running as root. (#4.3.0)", needs_root=True))
            self.report(DeliveryReport(1, "K", "hi\n", DeliveryCounts(1, 0, 0), (), "a@b", 5))
        self.successResultOf(d)
        lines = [formatEvent(e) for e in events if "not root" in formatEvent(e)]
        self.assertEqual(lines, ["msg 5 delivery 12: local delivery to ann@x needs another uid but pymta-send is not"
                                 " root: deferred"])

    def test_malformed_report_defers_its_delivery(self) -> None:
        d = self.channel.deliver(DeliveryJob(5, self.message, "a@b", ("joe@x",)))
        self.raw_report(slot=1, status="K", output="", did=[1, 0], forwards=[], newsender="", uid=5, needsroot=False)
        [result] = self.successResultOf(d)
        self.assertEqual(result.status, "Z")
        self.assertIn("did is not three counts", result.text)

    def test_garbage_kills_spawner(self) -> None:
        self.protocol.childDataReceived(1, b"garbage")
        self.assertEqual(self.protocol.transport.signals, ["KILL"])

    def test_forward_with_verp_newsender(self) -> None:
        d = self.channel.deliver(DeliveryJob(5, self.message, "a@b", ("list@x",)))
        self.report(DeliveryReport(1, "K", "", DeliveryCounts(0, 1, 0), ("m@y",), "list-owner-@x-@[]", 9))
        [result] = self.successResultOf(d)
        self.assertEqual(result.text, "did 0+1+0\nqp 4711\n")
        self.assertEqual(self.sink.queued[0]["sender"], "list-owner-@x-@[]")
        self.assertEqual(self.sink.queued[0]["data"], b"Delivered-To: list@x\nSubject: x\n\nbody\n")

    def test_forward_message_vanished(self) -> None:
        d = self.channel.deliver(DeliveryJob(5, self.message, "a@b", ("list@x",)))
        os.unlink(self.message)
        self.report(DeliveryReport(1, "K", "", DeliveryCounts(0, 1, 0), ("m@y",), "a@b", 9))
        [result] = self.successResultOf(d)
        self.assertEqual(result.status, "Z")
        self.assertIn("Unable to forward message: cannot read the queued message", result.text)

    def test_death_defers_in_flight_and_restarts(self) -> None:
        d = self.channel.deliver(DeliveryJob(5, self.message, "a@b", ("joe@x",)))
        self.protocol.processEnded(Failure(ProcessTerminated(signal=9)))
        [result] = self.successResultOf(d)
        self.assertEqual((result.status, result.text), ("Z", SPAWNER_DIED))
        self.assertEqual(len(self.reactor.spawned), 1)
        self.reactor.advance(5)
        self.assertEqual(len(self.reactor.spawned), 2)
        self.flushLoggedErrors()

    def test_restart_backs_off_while_spawner_cannot_start(self) -> None:
        self.protocol.processEnded(Failure(ProcessTerminated(exitCode=1)))  # after hello: plain delay
        self.reactor.advance(5)
        self.assertEqual(len(self.reactor.spawned), 2)
        for expected_delay in (10, 20, 40, 60, 60):
            self.reactor.spawned[-1][0].processEnded(Failure(ProcessTerminated(exitCode=1)))  # no hello
            count = len(self.reactor.spawned)
            self.reactor.advance(expected_delay - 0.5)
            self.assertEqual(len(self.reactor.spawned), count)
            self.reactor.advance(0.5)
            self.assertEqual(len(self.reactor.spawned), count + 1)
        self.flushLoggedErrors()

    def test_stop_closes_input_then_times_out(self) -> None:
        d = self.channel.stop()
        self.assertTrue(self.protocol.transport.stdin_closed)
        self.assertNoResult(d)
        self.reactor.advance(self.channel.stop_timeout)
        self.assertEqual(self.protocol.transport.signals, ["TERM"])
        self.protocol.processEnded(Failure(ProcessTerminated(signal=15)))
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(len(self.reactor.spawned), 1)  # no restart after stop
