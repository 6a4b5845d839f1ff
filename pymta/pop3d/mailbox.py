# -*- test-case-name: tests.pop3d.test_mailbox -*-
"""
The asynchronous mailbox a POP3 session talks to, and its in-process form.

L{MailboxSession} is what the protocol needs after login: the fixed list of
messages (uid, CRLF size), C{send_message} that streams one encoded
message to a consumer (calling C{begin} first, only once the file is known
to be open, so the protocol can answer C{-ERR unable to open that message}
instead of C{+OK}), C{commit} for the deletions at QUIT, and C{close} when
the connection goes away (nothing is deleted then).

L{LocalMailbox} serves a Maildir the daemon's own uid may read (virtual
users).  Messages are streamed by L{FileStreamer}, a pull producer that
reads 64 KiB at a time as the transport drains, so a message is never held
in memory whole.  The per-user child of system users is
L{pymta.pop3d.childclient.ChildMailbox}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Callable, Protocol as TypingProtocol

from twisted.internet import defer, threads
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IConsumer, IPullProducer, IReactorThreads
from zope.interface import implementer

from pymta.pop3d.encoding import CHUNK_SIZE, MessageEncoder
from pymta.pop3d.maildir import MaildirStore, MessageUnavailable, NoMaildir

__all__ = [
    "MessageInfo",
    "MailboxSession",
    "LocalMailbox",
    "FileStreamer",
    "open_local_mailbox",
    "MessageUnavailable",
    "NoMaildir",
]


@dataclass(frozen=True)
class MessageInfo:
    uid: str
    size: int


class MailboxSession(TypingProtocol):
    messages: list[MessageInfo]

    def send_message(
        self, index: int, top_lines: int | None, begin: Callable[[], None], consumer: IConsumer
    ) -> defer.Deferred: ...

    def commit(self, deleted: list[int]) -> defer.Deferred: ...

    def close(self) -> None: ...


@implementer(IPullProducer)
class FileStreamer:
    """Streams C{f} through a L{MessageEncoder} to C{consumer} as a pull producer."""

    def __init__(
        self,
        f: BinaryIO,
        encoder: MessageEncoder,
        consumer: IConsumer,
        on_progress: Callable[[], None] | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self._file = f
        self._encoder = encoder
        self._consumer = consumer
        self._on_progress = on_progress
        self._chunk_size = chunk_size
        self.deferred: defer.Deferred = defer.Deferred()
        self._finished = False

    def start(self) -> defer.Deferred:
        self._consumer.registerProducer(self, False)
        return self.deferred

    def resumeProducing(self) -> None:
        if self._finished:
            return
        try:
            while True:
                chunk = self._file.read(self._chunk_size)
                if not chunk:
                    self._finish(self._encoder.finish())
                    return
                out = self._encoder.feed(chunk)
                if self._encoder.done:
                    self._finish(out + self._encoder.finish())
                    return
                if len(chunk) < self._chunk_size:
                    # Probably the end: look now, so the last chunk and the
                    # terminator leave in one write.
                    more = self._file.read(self._chunk_size)
                    if not more:
                        self._finish(out + self._encoder.finish())
                        return
                    out += self._encoder.feed(more)
                    if self._encoder.done:
                        self._finish(out + self._encoder.finish())
                        return
                if out:
                    self._consumer.write(out)
                    if self._on_progress is not None:
                        self._on_progress()
                    return
        except OSError as e:
            # A read error after "+OK " was sent: the reply cannot be made
            # valid any more, so the connection is dropped by the caller.
            self._stop(e)

    def _finish(self, tail: bytes) -> None:
        self._finished = True
        self._file.close()
        self._consumer.unregisterProducer()
        self._consumer.write(tail)
        self.deferred.callback(None)

    def _stop(self, reason: Exception) -> None:
        if self._finished:
            return
        self._finished = True
        self._file.close()
        self._consumer.unregisterProducer()
        self.deferred.errback(reason)

    def stopProducing(self) -> None:
        self._stop(ConnectionLost("connection lost while sending a message"))


class LocalMailbox:
    """A L{MaildirStore} served in the daemon's own process."""

    def __init__(self, store: MaildirStore) -> None:
        self._store = store
        self.messages = [MessageInfo(m.uid, m.size) for m in store.messages]
        self._streamer: FileStreamer | None = None
        self.on_progress: Callable[[], None] | None = None

    def send_message(
        self, index: int, top_lines: int | None, begin: Callable[[], None], consumer: IConsumer
    ) -> defer.Deferred:
        try:
            f = self._store.open(index)
        except MessageUnavailable as e:
            return defer.fail(e)
        begin()
        self._streamer = FileStreamer(f, MessageEncoder(top_lines), consumer, self.on_progress)
        return self._streamer.start()

    def commit(self, deleted: list[int]) -> defer.Deferred:
        return defer.maybeDeferred(self._store.commit, deleted)

    def close(self) -> None:
        if self._streamer is not None:
            self._streamer.stopProducing()
            self._streamer = None


def open_local_mailbox(maildir: str, reactor: IReactorThreads | None = None) -> defer.Deferred:
    """
    Load C{maildir} in-process -> Deferred[L{LocalMailbox}] (fails with
    L{NoMaildir}).  With a C{reactor} the scan (which reads every message
    once to count its CRLF size) runs in the reactor's thread pool, so a big
    Maildir does not stall other sessions; without one it runs now.
    """
    def load() -> LocalMailbox:
        store = MaildirStore(maildir)
        store.load()
        return LocalMailbox(store)

    if reactor is None:
        return defer.maybeDeferred(load)
    return threads.deferToThreadPool(reactor, reactor.getThreadPool(), load)
