# -*- test-case-name: tests.smtpd.test_spool -*-
"""
The spool of L{pymta.smtpd.endofdata}: a message held until its
end-of-data steps have spoken, then replayed into the real queue writer.

L{SpoolingWriter} is a L{pymta.interfaces.MessageWriter}: C{write()}
appends to a C{tempfile.SpooledTemporaryFile} (memory up to
L{MEMORY_BYTES}, then an anonymous file in the temporary directory, gone
when closed; smtpd's databytes bounds it).  C{finish()} runs the steps,
then opens the real writer, writes the steps' new header fields, the
message's header without the fields a step drops (a bare CR in the
header ends a line, as it will at a later hop), and the rest in
pieces, pausing while the real writer reports a backlog; its commit is
C{finish()}'s result.  C{abort()} drops the spool and a real writer
already open.
"""

from __future__ import annotations

import re
import tempfile
from typing import Any, Awaitable, Callable, Iterable, Iterator, Protocol, Sequence

from twisted.internet import defer

from pymta.interfaces import MessageWriter, QueueReceipt, QueueRefused

__all__ = ["SpooledMessage", "SpoolingWriter", "HeaderEdit", "MEMORY_BYTES", "CHUNK_BYTES", "MAX_FIELD_BYTES"]

MEMORY_BYTES = 1024 * 1024
CHUNK_BYTES = 64 * 1024
#: a header field longer than this comes to the steps in parts: they see the first, which decides for all
MAX_FIELD_BYTES = 64 * 1024


class HeaderEdit(Protocol):
    """What a step asks of the header (L{pymta.smtpd.endofdata.StepVerdict})."""

    @property
    def add(self) -> tuple[bytes, ...]:
        """Whole header fields to put at the top."""

    @property
    def drop(self) -> Callable[[bytes, bytes], bool] | None:
        """Which incoming fields C{(name, value)} to remove."""

    @property
    def message(self) -> "SpooledMessage | None":
        """The whole message rewritten by the step (replayed instead of the spool), or None."""


class SpooledMessage:
    """The spooled message as the steps see it (blocking reads: memory or page cache)."""

    def __init__(self, spool: Any, size: int) -> None:
        self._spool = spool
        self.size = size

    @classmethod
    def of(cls, data: Iterable[bytes]) -> "SpooledMessage":
        """A new spool holding the pieces of C{data} (a step's rewritten message)."""
        spool: Any = tempfile.SpooledTemporaryFile(max_size=MEMORY_BYTES)
        size = 0
        for piece in data:
            spool.write(piece)
            size += len(piece)
        return cls(spool, size)

    def close(self) -> None:
        if not self._spool.closed:
            self._spool.close()

    def fields(self) -> Iterator[bytes]:
        """The header's fields (see L{_fields}); the body follows at the spool's position."""
        return _fields(self._spool)

    def rest(self, size: int = CHUNK_BYTES) -> Iterator[bytes]:
        """What follows the position L{fields} left, in chunks of at most C{size} bytes."""
        while chunk := self._spool.read(size):
            yield chunk

    def read(self) -> bytes:
        """The whole message."""
        self._spool.seek(0)
        return bytes(self._spool.read())

    def header(self, limit: int = 1024 * 1024) -> bytes:
        """The header (up to and with the empty line), at most C{limit} bytes."""
        self._spool.seek(0)
        lines = []
        total = 0
        while total < limit:
            line = self._spool.readline(limit - total)
            if not line:
                break
            lines.append(line)
            total += len(line)
            if line == b"\n":
                break
        return b"".join(lines)


_BARE_CR = re.compile(rb"(?<=\r)(?!\n)")


def _lines(spool: Any) -> Iterator[bytes]:
    """
    The lines from the spool's position; a bare CR (one not before the
    LF) ends a line too, as it will once a later hop (pymta's own relay
    among them) writes it as CRLF.
    """
    while True:
        line = spool.readline()
        if not line:
            return
        yield from (piece for piece in _BARE_CR.split(line) if piece) if b"\r" in line else (line,)


def _fields(spool: Any) -> Iterator[bytes]:
    """
    The header's fields from the start of C{spool}, each with its
    continuation lines (a field over L{MAX_FIELD_BYTES} comes in parts,
    the later ones starting with white space), then the empty line that
    ends the header, if there is one; the spool is left after it.
    """
    spool.seek(0)
    field = b""
    for line in _lines(spool):
        if line[:1] in (b" ", b"\t") and field and len(field) < MAX_FIELD_BYTES:
            field += line
            continue
        if field:
            yield field
        if line == b"\n":
            yield line
            return
        field = line
    if field:
        yield field


class SpoolingWriter:
    """A L{MessageWriter} that spools; see the module's description."""

    def __init__(self, open_real: Callable[[], MessageWriter],
                 verdicts: Callable[[SpooledMessage], Awaitable[Sequence[HeaderEdit]]]) -> None:
        self._open_real = open_real
        self._verdicts = verdicts
        self._spool: Any = tempfile.SpooledTemporaryFile(max_size=MEMORY_BYTES)
        self._size = 0
        self._real: MessageWriter | None = None
        self._aborted = False
        self._finishing = False
        self._backlog: defer.Deferred[None] | None = None

    def write(self, data: bytes) -> None:
        if not self._aborted:
            self._spool.write(data)
            self._size += len(data)

    def watch_backlog(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """The spool takes everything at once: never a backlog."""

    def finish(self) -> "defer.Deferred[QueueReceipt]":
        return defer.Deferred.fromCoroutine(self._finish())

    def abort(self) -> None:
        self._aborted = True
        real, self._real = self._real, None
        if real is not None:
            real.abort()
        if not self._finishing:  # else a step may be reading it: finish() closes it when it stops
            self._close()
        self._resumed()  # a replay waiting on the aborted writer's backlog goes on, to its end

    def _close(self) -> None:
        if not self._spool.closed:
            self._spool.close()

    async def _finish(self) -> QueueReceipt:
        edits: Sequence[HeaderEdit] = ()
        self._finishing = True
        try:
            edits = await self._verdicts(SpooledMessage(self._spool, self._size))
            if self._aborted:
                raise QueueRefused("message dropped (#4.3.0)")
            try:
                real = self._real = self._open_real()
            except Exception:
                raise QueueRefused("qqt failure (#4.3.0)") from None
            real.watch_backlog(self._paused, self._resumed)
            await self._replay(real, edits)
            if self._aborted:
                raise QueueRefused("message dropped (#4.3.0)")
            self._real = None
            return await real.finish()
        finally:
            self._close()
            for edit in edits:
                if edit.message is not None:
                    edit.message.close()

    def _paused(self) -> None:
        if self._backlog is None:
            self._backlog = defer.Deferred()

    def _resumed(self) -> None:
        backlog, self._backlog = self._backlog, None
        if backlog is not None:
            backlog.callback(None)

    async def _replay(self, real: MessageWriter, edits: Sequence[HeaderEdit]) -> None:
        drops = [edit.drop for edit in edits if edit.drop is not None]
        rewritten = [edit.message for edit in edits if edit.message is not None]
        spool = rewritten[-1]._spool if rewritten else self._spool
        for edit in edits:
            for line in edit.add:
                real.write(line)
        dropping = False
        for text in _fields(spool):
            if self._aborted:
                return
            if text[:1] in (b" ", b"\t"):  # the later part of a long field: goes with its first part
                pass
            else:
                name, colon, value = text.partition(b":")
                dropping = bool(colon) and any(drop(name, value) for drop in drops)
            if not dropping:
                real.write(text)
            if self._backlog is not None:
                await self._backlog
        while not self._aborted:
            if self._backlog is not None:
                await self._backlog
                continue
            chunk = spool.read(CHUNK_BYTES)
            if not chunk:
                break
            real.write(chunk)
