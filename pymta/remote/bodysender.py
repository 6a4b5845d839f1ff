# -*- test-case-name: tests.remote.test_bodysender -*-
"""
Sending a stored message after C{354}: the file read in big chunks, each
encoded whole by L{pymta.remote.datastream.DataEncoder} (bytes operations
over the chunk, no work per line) and handed to the transport in one write.

The end of the file is known from a short read (a buffered binary file
returns fewer bytes than asked only at its end), so the last chunk and the
terminating C{.CRLF} go in the same write: a message smaller than
L{CHUNK_SIZE} is one read and one write.  A bigger one is a pull producer:
the next chunk is read only when the transport has sent the previous one,
so memory stays flat in the message's size.

The caller learns of progress (L{BodySender} calls C{progress} for every
chunk but the last: the client's timeout is reset), of the last piece
(C{last(data)}: the caller writes it, the final dot included, after it has
marked the transaction as possibly delivered) and of a read error
(C{unreadable(error)}).  When the transport asks it to stop (the
connection went away) it stops without a word: the connection's loss is
reported elsewhere.
"""

from __future__ import annotations

from typing import IO, Callable

from twisted.internet.interfaces import IConsumer, IPullProducer
from zope.interface import implementer

from pymta.remote.datastream import DataEncoder

__all__ = ["CHUNK_SIZE", "BodySender"]

CHUNK_SIZE = 64 * 1024


@implementer(IPullProducer)
class BodySender:
    """Streams one message's DATA bytes to C{consumer}; see the module docstring."""

    def __init__(
        self,
        message: IO[bytes],
        consumer: IConsumer,
        progress: Callable[[], None],
        last: Callable[[bytes], None],
        unreadable: Callable[[OSError], None],
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self._message = message
        self._consumer = consumer
        self._progress = progress
        self._last = last
        self._unreadable = unreadable
        self._chunk_size = chunk_size
        self._encoder = DataEncoder()
        self._registered = False
        self._over = False

    def start(self) -> None:
        """Write the first chunk now; stream the rest as the transport drains."""
        self._step()
        if not self._over:
            self._registered = True
            self._consumer.registerProducer(self, False)

    def resumeProducing(self) -> None:
        if not self._over:
            self._step()

    def stopProducing(self) -> None:
        self._over = True  # the transport is dropping us: nothing to unregister
        self._registered = False

    def _step(self) -> None:
        try:
            chunk = self._message.read(self._chunk_size)
        except OSError as e:
            self._end()
            self._unreadable(e)
            return
        data = self._encoder.encode(chunk)
        if len(chunk) < self._chunk_size:
            self._end()
            self._last(data + self._encoder.finish())
            return
        self._consumer.write(data)
        self._progress()

    def _end(self) -> None:
        self._over = True
        if self._registered:
            self._registered = False
            self._consumer.unregisterProducer()
