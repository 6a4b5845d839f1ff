"""Tests for pymta.remote.bodysender: the DATA bytes of a stored message, in big chunks."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from pymta.remote.bodysender import CHUNK_SIZE, BodySender
from pymta.remote.datastream import encode_message
from tests.remote.test_datastream import reference

TRICKY = {
    "dots": b".\n..\n.x\nnot.\n.\n",
    "no final line end": b"line\nlast line",
    "bare CR": b"a\rb\r\nc\r",
    "eight bit": "Grüße\n.ß\n".encode(),
    "empty": b"",
    "dot at chunk start": b"x" * (CHUNK_SIZE - 1) + b"\n.after\n",
    "CR at chunk end": b"x" * (CHUNK_SIZE - 1) + b"\r\n.y\n",
    "exactly one chunk": b"y" * (CHUNK_SIZE - 1) + b"\n",
    "one chunk without line end": b"y" * CHUNK_SIZE,
    "one byte more than a chunk": b"z" * CHUNK_SIZE + b"\n",
    "three chunks": (b"." + b"w" * 99 + b"\n") * (3 * CHUNK_SIZE // 100),
}


class Recorder:
    """Sends C{message} through a L{BodySender} into a StringTransport and keeps what happened."""

    def __init__(self, message: bytes | io.BufferedIOBase, chunk_size: int = CHUNK_SIZE) -> None:
        self.transport = StringTransport()
        self.writes: list[bytes] = []
        write = self.transport.write

        def counted(data: bytes) -> None:
            self.writes.append(data)
            write(data)

        self.transport.write = counted  # type: ignore[method-assign]  # counting the writes
        self.progress = 0
        self.last: list[bytes] = []
        self.errors: list[OSError] = []
        source = io.BytesIO(message) if isinstance(message, bytes) else message
        self.sender = BodySender(source, self.transport, self.progressed, self.last.append, self.errors.append,
                                 chunk_size)
        self.bound = len(source.getvalue()) // chunk_size + 2 if isinstance(source, io.BytesIO) else 1000

    def progressed(self) -> None:
        self.progress += 1

    def run(self) -> bytes:
        self.sender.start()
        for _ in range(self.bound):
            if self.transport.producer is None:
                break
            self.transport.producer.resumeProducing()
        return self.transport.value() + b"".join(self.last)


class WireTests(unittest.SynchronousTestCase):
    def test_tricky_bodies_match_the_encoder_and_the_model(self) -> None:
        for name, body in TRICKY.items():
            for size in (CHUNK_SIZE, 1, 2, 3, 7, 4096) if len(body) < 4096 else (CHUNK_SIZE, 4096, 4097):
                with self.subTest(body=name, chunk_size=size):
                    self.assertEqual(Recorder(body, size).run(), reference(body))
            self.assertEqual(encode_message(body), reference(body), name)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=300).map(lambda b: b.translate(bytes.maketrans(b"\x00\x01\x02\x03", b"\r\n.."))),
           st.integers(min_value=1, max_value=40))
    def test_any_body_at_any_chunk_size(self, body: bytes, size: int) -> None:
        self.assertEqual(Recorder(body, size).run(), reference(body))


class ShapeTests(unittest.SynchronousTestCase):
    def test_small_message_is_one_write_with_the_dot(self) -> None:
        r = Recorder(b"Subject: x\n\nbody\n")
        r.sender.start()
        self.assertIsNone(r.transport.producer)  # never registered: nothing left to stream
        self.assertEqual(r.writes, [])  # the last piece goes to the caller, who writes it
        self.assertEqual(r.last, [b"Subject: x\r\n\r\nbody\r\n.\r\n"])
        self.assertEqual(r.progress, 0)

    def test_big_message_streams_as_the_transport_drains(self) -> None:
        body = b"a" * (2 * CHUNK_SIZE + 5)
        r = Recorder(body)
        r.sender.start()
        self.assertIs(r.transport.producer, r.sender)
        self.assertEqual((len(r.writes), r.progress, r.last), (1, 1, []))
        r.transport.producer.resumeProducing()
        self.assertEqual((len(r.writes), r.progress, r.last), (2, 2, []))
        r.transport.producer.resumeProducing()
        self.assertIsNone(r.transport.producer)
        self.assertEqual(r.last, [b"aaaaa\r\n.\r\n"])
        self.assertEqual(b"".join(r.writes) + r.last[0], body + b"\r\n.\r\n")

    def test_read_error_is_reported_and_the_producer_unregistered(self) -> None:
        class Failing(io.BytesIO):
            reads = 0

            def read(self, size: int | None = -1) -> bytes:
                self.reads += 1
                if self.reads == 2:
                    raise OSError("disk gone")
                return super().read(size)

        r = Recorder(Failing(b"b" * (CHUNK_SIZE * 3)))
        r.sender.start()
        r.transport.producer.resumeProducing()
        self.assertIsNone(r.transport.producer)
        self.assertEqual([str(e) for e in r.errors], ["disk gone"])
        self.assertEqual(r.last, [])

    def test_stopped_by_the_transport_says_nothing(self) -> None:
        r = Recorder(b"c" * (CHUNK_SIZE * 3))
        r.sender.start()
        r.sender.stopProducing()
        r.sender.resumeProducing()
        self.assertEqual((len(r.writes), r.last, r.errors), (1, [], []))
