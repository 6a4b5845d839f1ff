"""pymta.qmailqueue.stdinpipe: our own pipe to a program's descriptor 0 counts what it took, on real pipes and the reactor."""

from __future__ import annotations

import os

from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from pymta.qmailqueue.stdinpipe import MessagePipe
from tests.waiting import eventually


class MessagePipeTests(TestCase):
    def pipe(self) -> tuple[int, MessagePipe, list[int]]:
        """The read end, our writer on the write end, and the writer's C{unsent} each time it ended."""
        read_end, write_end = os.pipe()
        ends: list[int] = []
        pipe = MessagePipe(write_end, reactor, lambda: ends.append(pipe.unsent))
        self.addCleanup(pipe.close)
        return read_end, pipe, ends

    def read_all(self, fd: int) -> "defer.Deferred[bytes]":
        """Everything until end of file, read in a thread (the reactor must run to write)."""
        def read() -> bytes:
            got = []
            while chunk := os.read(fd, 65536):
                got.append(chunk)
            os.close(fd)
            return b"".join(got)

        return deferToThread(read)

    async def test_everything_taken_then_end_of_file(self) -> None:
        read_end, pipe, ends = self.pipe()
        reading = self.read_all(read_end)
        message = b"x" * 300000 + b"\n"
        pipe.write(message[:1000])
        pipe.write(message[1000:])
        pipe.loseConnection()
        self.assertEqual(await reading, message)
        await eventually(lambda: ends, what="the pipe's end")
        self.assertEqual((ends, pipe.handed, pipe.taken), ([0], len(message), len(message)))
        pipe.write(b"late")  # nothing is taken once it has ended
        self.assertEqual(pipe.handed, len(message))

    async def test_a_reader_that_went_away_leaves_bytes_unsent(self) -> None:
        read_end, pipe, ends = self.pipe()
        os.close(read_end)
        pipe.write(b"y" * 200000)
        pipe.loseConnection()
        await eventually(lambda: ends, what="the pipe's end")
        self.assertEqual(ends, [200000])  # EPIPE at the first write: the pipe took nothing
        self.assertEqual(pipe.unsent, 200000)

    async def test_a_reader_that_read_a_little(self) -> None:
        read_end, pipe, ends = self.pipe()
        pipe.write(b"z" * 500000)
        await eventually(lambda: pipe.taken > 0, what="the pipe's first bytes")
        self.assertEqual(os.read(read_end, 10), b"z" * 10)
        os.close(read_end)
        await eventually(lambda: ends, what="the pipe's end")
        self.assertEqual(len(ends), 1)
        self.assertGreater(ends[0], 0)
        self.assertEqual(ends[0], 500000 - pipe.taken)

    def test_close_ends_it_at_once_with_what_it_held(self) -> None:
        read_end, pipe, ends = self.pipe()
        self.addCleanup(os.close, read_end)
        pipe.write(b"held")  # buffered until the reactor writes it
        pipe.close()
        self.assertEqual(ends, [4])
        pipe.close()  # once only
        self.assertEqual(ends, [4])
        self.assertEqual(pipe.fileno(), -1)
