# -*- test-case-name: tests.pop3d.test_childmailbox -*-
"""
The daemon's side of L{pymta.pop3d.mailboxchild}: a L{MailboxSession}
whose Maildir is read by a per-session child running as the mailbox owner.

L{open_child_mailbox} spawns the child (C{spawnProcess}, empty environment
but C{PYTHONPATH}, cwd C{/}), asks it to C{LOAD} and fires with a
L{ChildMailbox}.  C{send_message} relays the child's already encoded frames
to the client as a streaming producer: when the client's socket is full,
reading from the child's pipe pauses (and the child blocks writing), so no
message is ever buffered whole.  Closing the session closes the child's
stdin; the child exits without deleting anything.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from typing import Callable, cast

from twisted.internet import defer
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IConsumer, IProcessTransport, IPushProducer
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

import pymta
from pymta.pop3d.mailbox import MessageInfo, MessageUnavailable, NoMaildir

__all__ = ["ChildMailbox", "open_child_mailbox", "ChildFailed", "MailboxDenied"]

log = Logger(namespace="pymta.pop3d")

_PYTHONPATH = os.path.dirname(os.path.dirname(os.path.abspath(pymta.__file__)))
MAX_REPLY_LINE = 4096


class ChildFailed(Exception):
    """The mailbox child died or answered something unexpected."""


class MailboxDenied(ChildFailed):
    """The root spawner's own check refused the login or its account (C{DENIED} to C{LOAD})."""


@implementer(IPushProducer)
class ChildMailbox(ProcessProtocol):
    """One mailbox child process, speaking the C{mailboxchild} protocol."""

    transport: IProcessTransport  # a spawned child (or the spawner's socket), connected before use

    def __init__(self) -> None:
        self.messages: list[MessageInfo] = []
        self.on_progress: Callable[[], None] | None = None
        self.ended: defer.Deferred = defer.Deferred()
        self._buffer = b""
        self._mode = "line"  # "line", "listing", "frame-len", "frame-data"
        self._waiting: deque[tuple[str, defer.Deferred]] = deque()
        self._listing_left = 0
        self._listing: list[MessageInfo] = []
        self._frame_left = 0
        self._consumer: IConsumer | None = None
        self._begin: Callable[[], None] | None = None
        self._transfer: defer.Deferred | None = None
        self._gone = False
        self._stderr = b""
        self._paused = False  # reading from the child paused by the client's transport

    # -- requests --------------------------------------------------------

    def _request(self, kind: str, line: bytes) -> defer.Deferred:
        if self._gone:
            return defer.fail(ChildFailed("mailbox child is gone"))
        d: defer.Deferred = defer.Deferred()
        self._waiting.append((kind, d))
        self.transport.write(line + b"\n")
        return d

    def load(self) -> defer.Deferred:
        return self._request("LOAD", b"LOAD")

    def load_or_close(self) -> defer.Deferred:
        """
        L{load}; when that fails, close the child and fail only after it has
        ended, so no child outlives a failed open.
        """

        def failed(failure: Failure) -> defer.Deferred:
            self.close()
            done: defer.Deferred = defer.Deferred()

            def ended(result: object) -> object:
                done.callback(None)
                return result

            self.ended.addBoth(ended)
            return done.addCallback(lambda _: failure)

        return self.load().addErrback(failed)

    def send_message(
        self, index: int, top_lines: int | None, begin: Callable[[], None], consumer: IConsumer
    ) -> defer.Deferred:
        top = b"-" if top_lines is None else b"%d" % top_lines
        self._begin, self._consumer = begin, consumer
        return self._request("RETR", b"RETR %d %s" % (index, top))

    def commit(self, deleted: list[int]) -> defer.Deferred:
        return self._request("COMMIT", b"COMMIT " + b",".join(b"%d" % i for i in deleted))

    def close(self) -> None:
        if self._consumer is not None and self._transfer is not None:
            self._consumer.unregisterProducer()
        if not self._gone:
            self.transport.closeStdin()
            self.transport.closeChildFD(1)

    # -- IPushProducer (towards the client's transport) --------------------

    def pauseProducing(self) -> None:
        if not self._gone and not self._paused:
            self._paused = True
            cast(IPushProducer, self.transport).pauseProducing()  # a Process and the socket stand-in both are

    def resumeProducing(self) -> None:
        if not self._gone and self._paused:
            self._paused = False
            cast(IPushProducer, self.transport).resumeProducing()

    def stopProducing(self) -> None:
        self._consumer = None
        if self._transfer is not None:
            d, self._transfer = self._transfer, None
            d.errback(ConnectionLost("client went away during a transfer"))
        if not self._gone:
            self.transport.signalProcess("KILL")

    # -- child output ----------------------------------------------------

    def childDataReceived(self, fd: int, data: bytes) -> None:
        if fd == 2:
            self._stderr = (self._stderr + data)[-2048:]
            return
        self._buffer += data
        try:
            self._parse()
        except ChildFailed as e:
            log.error("pop3 mailbox child protocol error: {error}", error=str(e))
            self._buffer = b""
            self.transport.signalProcess("KILL")

    def _line(self) -> bytes | None:
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > MAX_REPLY_LINE:
                raise ChildFailed("reply line too long")
            return None
        line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
        return line

    def _parse(self) -> None:
        while self._buffer:
            if self._mode == "frame-data":
                chunk = self._buffer[: self._frame_left]
                self._buffer = self._buffer[len(chunk) :]
                self._frame_left -= len(chunk)
                if self._consumer is not None:
                    self._consumer.write(chunk)
                    if self.on_progress is not None:
                        self.on_progress()
                if self._frame_left == 0:
                    self._mode = "frame-len"
                continue
            line = self._line()
            if line is None:
                return
            if self._mode == "frame-len":
                if not line.isdigit():
                    raise ChildFailed("bad frame length")
                self._frame_left = int(line)
                if self._frame_left == 0:
                    self._end_transfer()
                else:
                    self._mode = "frame-data"
            elif self._mode == "listing":
                uid, _, size = line.partition(b" ")
                if not size.isdigit():
                    raise ChildFailed("bad listing line")
                self._listing.append(MessageInfo(uid.decode("ascii", "replace"), int(size)))
                self._listing_left -= 1
                if self._listing_left == 0:
                    self._finish_listing()
            else:
                self._reply(line)

    def _reply(self, line: bytes) -> None:
        if not self._waiting:
            raise ChildFailed("unrequested reply")
        kind, d = self._waiting.popleft()
        if kind == "LOAD":
            if line.startswith(b"OK ") and line[3:].isdigit():
                self._listing_left = int(line[3:])
                self._listing = []
                self._waiting.appendleft((kind, d))
                if self._listing_left == 0:
                    self._finish_listing()
                else:
                    self._mode = "listing"
            elif line == b"NOMAILDIR":
                d.errback(NoMaildir("no Maildir"))
            elif line.startswith(b"DENIED"):
                d.errback(MailboxDenied(line[7:].decode("utf-8", "replace")))
            else:
                d.errback(ChildFailed(line.decode("utf-8", "replace")))
        elif kind == "RETR":
            if line == b"NOFILE":
                self._consumer = self._begin = None
                d.errback(MessageUnavailable("unable to open that message"))
            elif line == b"OK":
                self._transfer = d
                assert self._begin is not None and self._consumer is not None
                self._begin()
                self._consumer.registerProducer(self, True)
                self._mode = "frame-len"
            else:
                d.errback(ChildFailed(line.decode("utf-8", "replace")))
        elif kind == "COMMIT":
            if line in (b"OK 1", b"OK 0"):
                d.callback(line == b"OK 1")
            else:
                d.errback(ChildFailed(line.decode("utf-8", "replace")))

    def _finish_listing(self) -> None:
        self._mode = "line"
        kind, d = self._waiting.popleft()
        self.messages = self._listing
        d.callback(self)

    def _end_transfer(self) -> None:
        self._mode = "line"
        consumer, d = self._consumer, self._transfer
        self._consumer = self._begin = None
        self._transfer = None
        if consumer is not None:
            consumer.unregisterProducer()
        # The client's transport may have paused us just before the end; it
        # will not resume a producer it no longer has, so read on ourselves.
        self.resumeProducing()
        if d is not None:
            d.callback(None)

    def processEnded(self, reason: Failure) -> None:
        self._gone = True
        if self._stderr:
            log.warn("pop3 mailbox child: {stderr}", stderr=self._stderr.decode("utf-8", "replace").strip())
        error = ChildFailed(f"mailbox child ended: {reason.value}")
        if self._transfer is not None:
            d, self._transfer = self._transfer, None
            if self._consumer is not None:
                self._consumer.unregisterProducer()
                self._consumer = None
            d.errback(error)
        while self._waiting:
            _, d = self._waiting.popleft()
            d.errback(error)
        self.ended.callback(reason.value.exitCode)


def open_child_mailbox(
    reactor: object,
    uid: int,
    gid: int,
    maildir: str,
    python: str = sys.executable,
    on_spawn: Callable[[ChildMailbox], None] | None = None,
) -> defer.Deferred:
    """Spawn a mailbox child for C{uid}/C{gid} and load C{maildir} -> Deferred[L{ChildMailbox}]."""
    child = ChildMailbox()
    if on_spawn is not None:
        on_spawn(child)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": _PYTHONPATH, "PYTHONDONTWRITEBYTECODE": "1"}
    reactor.spawnProcess(  # type: ignore[attr-defined]
        child,
        python,
        [python, "-m", "pymta.pop3d.mailboxchild", str(uid), str(gid), maildir],
        env=env,
        path="/",
        childFDs={0: "w", 1: "r", 2: "r"},
    )
    return child.load_or_close()
