"""smtpd stops reading while the queue writer's buffer is over its bound (watch_backlog) and goes on after."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.smtpd.helpers import MemorySink, MemoryWriter, Session, make_root


class WatchedWriter(MemoryWriter):
    def watch_backlog(self, pause, resume):  # type: ignore[no-untyped-def]
        self.pause, self.resume = pause, resume


class WatchedSink(MemorySink):
    def open_message(self, sender, recipients, *, origin, uid=None, pid=None):  # type: ignore[no-untyped-def]
        w = WatchedWriter(self, sender, list(recipients))
        self.opened.append(w)
        return w


class QueueBacklog(SynchronousTestCase):
    def setUp(self) -> None:
        self.sink = WatchedSink()
        self.s = Session(make_root(self.mktemp()), sink=self.sink)
        self.addCleanup(self.s.close)
        self.s.take()
        self.s.cmd("MAIL FROM:<a@x>")
        self.s.cmd("RCPT TO:<b@y>")
        self.assertEqual(self.s.cmd("DATA"), ["354 go ahead"])
        self.writer = self.sink.opened[0]

    def test_paused_while_backlogged(self) -> None:
        self.s.send(b"Subject: x\r\n\r\nline one\r\n")
        self.writer.pause()
        self.assertEqual(self.s.transport.producerState, "paused")
        self.s.send(b"line two\r\n")
        self.writer.resume()
        self.assertEqual(self.s.transport.producerState, "producing")
        self.assertEqual(self.s.send(b".\r\n"), ["250 ok 1800000000 qp 4001"])
        self.assertTrue(self.sink.queued[0].data.endswith(b"line one\nline two\n"))

    def test_no_timeout_while_the_queue_holds_the_session(self) -> None:
        self.writer.pause()
        self.s.clock.advance(3600)
        self.assertFalse(self.s.transport.disconnecting)
        self.writer.resume()
        self.s.clock.advance(3600)
        self.assertTrue(self.s.transport.disconnecting)

    def test_pause_from_a_finished_writer_ignored(self) -> None:
        self.assertEqual(self.s.send(b"body\r\n.\r\n"), ["250 ok 1800000000 qp 4001"])
        self.writer.pause()
        self.assertEqual(self.s.transport.producerState, "producing")
