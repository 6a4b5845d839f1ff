"""
A message queued held (a content filter's quarantine): its hold/ID is durable before its todo/ID,
the scheduler never tries it until `pymta ctl release`, the cleaner leaves a writer's marker alone,
and the inject socket carries the request.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.internet import defer, reactor
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from pymta.dsn.params import MessageDsn, RecipientDsn
from pymta.interfaces import QueueRefused
from pymta.queue.cleaner import clean_queue
from pymta.queue.ctlrequest import CtlRequest
from pymta.queue.ctlserver import answer
from pymta.queue.disk import QueueDisk
from pymta.queue.framing import encode_envelope, inject_socket_path, parse_envelope_dsn, split_held, split_netstrings
from pymta.queue.injectclient import InjectClientSink
from pymta.queue.injectserver import InjectServerFactory, listen_inject
from pymta.queue.layout import QueueLayout
from pymta.queue.messagestate import Stage
from pymta.queue.sink import QueueSink
from pymta.queue.store import Queue, WriteState
from tests.queue.test_scheduler import SchedulerTestMixin
from tests.queue.test_store import ImmediateReactor, ImmediateThreadPool, make_layout


class Writing(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.layout = make_layout(self)
        self.queue = Queue(QueueDisk.plain(self.layout))

    def test_the_marker_is_there_before_the_commit_point(self) -> None:
        message = self.queue.begin("from network", 0, 1)
        message.held = True
        message.write(b"Subject: x\n\nbody\n")
        seen = []
        link = message.link_todo

        def link_todo() -> None:
            seen.append(os.path.exists(self.layout.hold(message.message_id)))
            link()

        message.link_todo = link_todo  # type: ignore[method-assign]
        receipt = message.commit("a@b", ["c@d"])
        self.assertEqual(seen, [True])
        self.assertTrue(os.path.exists(self.layout.todo(receipt.message_id)))
        self.assertTrue(os.path.exists(self.layout.hold(receipt.message_id)))

    def test_an_unheld_message_has_no_marker(self) -> None:
        message = self.queue.begin("from network", 0, 1)
        receipt = message.commit("a@b", ["c@d"])
        self.assertFalse(os.path.exists(self.layout.hold(receipt.message_id)))

    def test_aborted_before_the_commit_point_leaves_no_marker(self) -> None:
        message = self.queue.begin("from network", 0, 1)
        message.held = True
        message.prepare("a@b", ["c@d"])
        self.assertEqual(message.state, WriteState.DURABLE)
        self.assertTrue(os.path.exists(self.layout.hold(message.message_id)))
        message.abort()
        self.assertEqual(os.listdir(self.layout.dir("hold")), [])

    def test_the_sink_gives_no_envelope_for_a_first_attempt(self) -> None:
        heard: list = []
        sink = QueueSink(self.queue, ImmediateReactor(), ImmediateThreadPool(),
                         lambda message_id, envelope, size: heard.append((message_id, envelope)))
        writer = sink.open_message("a@b", ["c@d"], origin="from network", held=True)
        writer.write(b"Subject: x\n\nbody\n")
        receipt = self.successResultOf(writer.finish())
        self.assertEqual(heard, [(receipt.message_id, None)])
        self.assertTrue(os.path.exists(self.layout.hold(receipt.message_id)))

    def test_the_cleaner_leaves_a_writers_marker_alone(self) -> None:
        message = self.queue.begin("from network", 0, 1)
        message.held = True
        message.prepare("a@b", ["c@d"])  # durable, marker written, not yet linked: the writer holds its lock
        clean_queue(self.layout, grace=0.0)
        self.assertTrue(os.path.exists(self.layout.hold(message.message_id)))
        message._unlock()  # the writer died here
        clean_queue(self.layout, grace=0.0)
        self.assertFalse(os.path.exists(self.layout.hold(message.message_id)))
        self.assertFalse(os.path.exists(message.mess_path))


class Framing(unittest.SynchronousTestCase):
    def test_held_part_round_trip(self) -> None:
        dsn = MessageDsn("HDRS", None, (RecipientDsn(("NEVER",)),))
        for given in (None, dsn):
            [payload] = split_netstrings(encode_envelope("from network", "a@b", ["c@d"], given, held=True))
            payload, held = split_held(payload)
            self.assertTrue(held)
            self.assertEqual(parse_envelope_dsn(payload), ("from network", "a@b", ["c@d"], given))
        [payload] = split_netstrings(encode_envelope("from network", "a@b", ["c@d"]))
        self.assertEqual(split_held(payload), (payload, False))


class Scheduling(SchedulerTestMixin, unittest.SynchronousTestCase):
    def test_held_until_released(self) -> None:
        s = self.start()
        sink = QueueSink(Queue(QueueDisk.plain(self.layout)), ImmediateReactor(), ImmediateThreadPool(), s.notify)
        writer = sink.open_message("a@mail.example", ["r@remote.example"], origin="from network", held=True)
        writer.write(b"Subject: quarantined\n\nbody\n")
        mid = self.successResultOf(writer.finish()).message_id
        self.clock.advance(0)
        self.assertEqual(s.messages.stage(mid), Stage.HELD)
        self.clock.advance(3 * 86400)
        self.assertEqual(self.remote.jobs, [])
        self.assertEqual(answer(s, CtlRequest("queue", ())), ["ok", f"msg {mid} remote held"])
        self.assertEqual(answer(s, CtlRequest("release", (str(mid),)))[1], f"msg {mid}: released")
        self.clock.advance(0)
        self.assertEqual([job.message_id for job in self.remote.jobs], [mid])
        self.assertFalse(os.path.exists(self.layout.hold(mid)))

    def test_held_in_todo_at_a_restart(self) -> None:
        """Committed held, not yet preprocessed when pymta-send stopped: still held after the start."""
        queue = Queue(QueueDisk.plain(self.layout))
        message = queue.begin("from network", 0, 1)
        message.held = True
        message.write(b"Subject: x\n\nbody\n")
        mid = message.commit("a@mail.example", ["r@remote.example"]).message_id
        s = self.start()
        self.clock.advance(0)
        self.assertEqual(s.messages.stage(mid), Stage.HELD)
        self.assertEqual(self.remote.jobs, [])


class OverTheInjectSocket(unittest.TestCase):
    """smtpd's path in the daemons: InjectClientSink -> inject socket -> QueueSink, the hold kept."""

    def setUp(self) -> None:
        self.root = tempfile.mkdtemp(prefix="pymta-held-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.layout = QueueLayout(os.path.join(self.root, "queue"))
        self.layout.create()
        self.heard: list = []
        self.queue_sink = QueueSink(Queue(QueueDisk.plain(self.layout)), reactor,
                                    on_commit=lambda message_id, envelope, size: self.heard.append((message_id, envelope)))
        self.sink = InjectClientSink(reactor, inject_socket_path(self.root))
        self.addCleanup(self.sink.close)

    def listen(self, peer_uid: int | None = None, trusted_uids: tuple[int, ...] = ()) -> defer.Deferred:
        """The inject socket; C{peer_uid} stands in for the peer's real uid when given."""
        factory = InjectServerFactory(self.queue_sink, trusted_uids)
        if peer_uid is not None:
            factory.credentials = lambda transport: (os.getpid(), peer_uid, os.getgid())
        d = listen_inject(reactor, self.root, factory)
        return d.addCallback(lambda port: self.addCleanup(port.stopListening))

    @defer.inlineCallbacks
    def test_held_and_not(self):  # type: ignore[no-untyped-def]
        yield self.listen()
        for held in (True, False):
            writer = self.sink.open_message("a@b", ["c@d"], origin="from network", held=held)
            writer.write(b"Subject: t\n\nbody\n")
            receipt = yield writer.finish()
            self.assertEqual(os.path.exists(self.layout.hold(receipt.message_id)), held)
            self.assertEqual(self.heard[-1][0], receipt.message_id)
            self.assertEqual(self.heard[-1][1] is None, held)

    @defer.inlineCallbacks
    def test_a_trusted_uid_may_ask_for_the_hold(self):  # type: ignore[no-untyped-def]
        yield self.listen(peer_uid=os.getuid() + 4242, trusted_uids=(os.getuid() + 4242,))
        writer = self.sink.open_message("a@b", ["c@d"], origin="from network", held=True)
        writer.write(b"Subject: t\n\nbody\n")
        receipt = yield writer.finish()
        self.assertTrue(os.path.exists(self.layout.hold(receipt.message_id)))

    @defer.inlineCallbacks
    def test_an_untrusted_uid_asking_for_the_hold_is_refused(self):  # type: ignore[no-untyped-def]
        """Only smtpd (a trusted uid) quarantines; a refusal, not a delivery, if its uid is not trusted."""
        logged: list = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        yield self.listen(peer_uid=os.getuid() + 4343)
        writer = self.sink.open_message("a@b", ["c@d"], origin="by uid 1", held=True)
        writer.write(b"Subject: t\n\nbody\n")
        refused = yield self.assertFailure(writer.finish(), QueueRefused)
        self.assertFalse(refused.permanent)
        self.assertIn("only a trusted uid may queue a message held", refused.text)
        self.assertEqual(self.heard, [])
        self.assertEqual((os.listdir(self.layout.dir("todo")), os.listdir(self.layout.dir("hold"))), ([], []))
        self.assertTrue(any("may not ask to hold" in str(e.get("log_format")) for e in logged))
        writer = self.sink.open_message("a@b", ["c@d"], origin="by uid 1")  # the same connection goes on
        writer.write(b"Subject: t\n\nbody\n")
        receipt = yield writer.finish()
        self.assertFalse(os.path.exists(self.layout.hold(receipt.message_id)))
