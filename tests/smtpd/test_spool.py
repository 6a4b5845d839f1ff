"""The spool of the end-of-data stage: replay into the real writer, header edits, backlog, abort."""

from __future__ import annotations

import io
from typing import Callable

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from pymta.smtpd.endofdata import StepVerdict
import pymta.smtpd.spool as spool_module
from pymta.smtpd.spool import CHUNK_BYTES, MEMORY_BYTES, SpooledMessage, SpoolingWriter
from tests.smtpd.helpers import MemorySink, MemoryWriter


class PausingWriter(MemoryWriter):
    """Reports a backlog after every write until resumed."""

    flow: tuple[Callable[[], None], Callable[[], None]]

    def watch_backlog(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self.flow = (pause, resume)

    def write(self, data: bytes) -> None:
        super().write(data)
        self.flow[0]()


class SpoolTests(SynchronousTestCase):
    def writer(self, verdict: StepVerdict, real: type[MemoryWriter] = MemoryWriter) -> tuple[SpoolingWriter, MemorySink, list[SpooledMessage]]:
        sink = MemorySink()
        seen: list[SpooledMessage] = []

        async def verdicts(message: SpooledMessage) -> list[StepVerdict]:
            seen.append(message)
            self.read = (message.read(), message.header())
            return [verdict]

        def open_real() -> MemoryWriter:
            w = real(sink, "a@x.test", ["b@y.test"])
            sink.opened.append(w)
            return w

        return SpoolingWriter(open_real, verdicts), sink, seen

    def test_large_message_with_header_edits_and_backlog(self) -> None:
        drop = StepVerdict(add=(b"X-Added: 1\n",), drop=lambda name, value: name.lower() == b"x-drop")
        spool, sink, seen = self.writer(drop, PausingWriter)
        header = b"Received: by us\nX-Drop: one\n two\nSubject: s\nX-Keep: x-drop: no\n\n"
        body = b"y" * 99 + b"\n"
        spool.write(header)
        for _ in range(MEMORY_BYTES // 100 * 3):  # rolls over to a file
            spool.write(body)
        d = spool.finish()
        self.assertEqual(sink.opened[0].finished, False)
        writes = 0
        while not d.called:  # every write pauses: resume, one piece at a time
            self.assertLessEqual(len(sink.opened[0].chunks) - writes, 2)  # the added fields go with the first one
            writes = len(sink.opened[0].chunks)
            sink.opened[0].flow[1]()
        self.assertEqual(self.successResultOf(d).qp, 4001)
        data = sink.queued[0].data
        self.assertTrue(data.startswith(b"X-Added: 1\nReceived: by us\nSubject: s\nX-Keep: x-drop: no\n\nyyy"))
        self.assertEqual(len(data), len(b"X-Added: 1\n") + len(header) - len(b"X-Drop: one\n two\n") + 100 * (MEMORY_BYTES // 100 * 3))
        self.assertEqual(seen[0].size, len(header) + 100 * (MEMORY_BYTES // 100 * 3))
        self.assertTrue(max(len(c) for c in sink.queued[0].chunks) <= CHUNK_BYTES)

    def test_a_step_sees_the_message(self) -> None:
        spool, sink, seen = self.writer(StepVerdict())
        spool.write(b"Subject: s\n\nbody\n")
        self.successResultOf(spool.finish())
        self.assertEqual(self.read, (b"Subject: s\n\nbody\n", b"Subject: s\n\n"))

    def test_abort_while_the_steps_run(self) -> None:
        sink = MemorySink()
        pending: defer.Deferred = defer.Deferred()

        async def verdicts(message: SpooledMessage) -> list[StepVerdict]:
            return await pending

        spool = SpoolingWriter(lambda: sink.open_message("a@x", ["b@y"], origin="from network"), verdicts)
        spool.write(b"x\n")
        d = spool.finish()
        spool.abort()
        pending.callback([StepVerdict()])
        self.failureResultOf(d)
        self.assertEqual(sink.opened, [])

    def test_abort_while_the_steps_read_leaves_the_spool_open_for_them(self) -> None:
        pending: defer.Deferred = defer.Deferred()
        read: list[bytes] = []

        async def verdicts(message: SpooledMessage) -> list[StepVerdict]:
            await pending
            read.append(message.read())  # a step still reading after the client left
            return [StepVerdict()]

        spool = SpoolingWriter(lambda: MemorySink().open_message("a@x", ["b@y"], origin="x"), verdicts)
        spool.write(b"Subject: s\n\nbody\n")
        d = spool.finish()
        spool.abort()
        pending.callback(None)
        self.assertEqual(read, [b"Subject: s\n\nbody\n"])
        self.assertIn("dropped", str(self.failureResultOf(d).value))
        self.assertTrue(spool._spool.closed)

    def test_abort_while_the_real_writer_has_a_backlog_ends_the_replay(self) -> None:
        spool, sink, seen = self.writer(StepVerdict(), PausingWriter)
        spool.write(b"Received: by us\nSubject: s\n\n" + b"y" * CHUNK_BYTES * 3)
        d = spool.finish()
        self.assertFalse(d.called)  # paused after the first field
        spool.abort()
        self.assertIn("dropped", str(self.failureResultOf(d).value))
        self.assertEqual(sink.queued, [])
        self.assertTrue(spool._spool.closed)


class HeaderFieldsTests(SynchronousTestCase):
    """How the replay splits the header: a bare CR ends a line; a long field's parts go with its first."""

    def fields(self, header: bytes) -> list[bytes]:
        spool = io.BytesIO(header + b"\nbody\n")
        return list(spool_module._fields(spool))

    def test_bare_cr_ends_a_line(self) -> None:
        self.assertEqual(self.fields(b"X-Note: a\rB: b\n\tc\r\nC: c\n"),
                         [b"X-Note: a\r", b"B: b\n\tc\r\n", b"C: c\n", b"\n"])

    def test_long_field_comes_in_parts(self) -> None:
        long = b"A: x\n" + b"\t" + b"y" * spool_module.MAX_FIELD_BYTES + b"\n\tz\n"
        self.assertEqual(self.fields(long + b"B: b\n"), [b"A: x\n\t" + b"y" * spool_module.MAX_FIELD_BYTES + b"\n",
                                                         b"\tz\n", b"B: b\n", b"\n"])
