# -*- test-case-name: tests.queue.test_store,tests.queue.test_sink_early -*-
"""
The in-process L{pymta.interfaces.MessageSink}: messages go straight into a
L{pymta.queue.store.Queue} without blocking the reactor.

Files are created and written in the reactor thread (cheap calls, page
cache); only the waits for the disk - the fsyncs and the group commit
(L{pymta.queue.groupcommit}) - run in a thread pool.  pymta-send writes
every message it is given (inject socket, bounces, forwards) through one
L{QueueSink}, and tells its scheduler about each commit through
C{on_commit}; its sink takes the early path (C{early_entry}: a message's
envelope and C{mess/N} entry made durable while its data arrives,
docs/internals.md, "The early path").
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any, Callable, Sequence

from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure

from pymta.dsn.params import MessageDsn
from pymta.interfaces import MessageWriter, QueueReceipt, QueueRefused
from pymta.queue.envelope import Envelope, check_envelope
from pymta.queue.errors import EXIT_BUG, QueueFailure
from pymta.queue.groupcommit import GroupCommitter
from pymta.queue.store import PendingMessage, Queue

__all__ = ["QueueSink", "RefusedWriter", "SPILL_BYTES", "CommitListener", "CommitFeed", "CommitNotices"]

log = Logger(namespace="pymta.queue")

#: message bytes a L{QueueSink} writer keeps in memory before it creates the message's file
SPILL_BYTES = 65536

#: told of each message committed: C{(message_id, envelope, size of the message file)}; no envelope
#: for a message queued held (it must not be tried from memory)
CommitListener = Callable[[int, Envelope | None, int], None]


class CommitFeed:
    """
    Passes each commit a L{QueueSink} reports (give it L{publish} as
    C{on_commit}) to every listener subscribed.  It lets the sink be built
    before the scheduler that listens to it, and the scheduler with that
    sink: pymta-send subscribes the scheduler once both exist.
    """

    def __init__(self) -> None:
        self._listeners: list[CommitListener] = []

    def subscribe(self, listener: CommitListener) -> None:
        """Tell C{listener} of every commit from now on."""
        self._listeners.append(listener)

    def publish(self, message_id: int, envelope: Envelope | None, size: int) -> None:
        """A message was committed: tell every listener (in the order they subscribed)."""
        for listener in self._listeners:
            listener(message_id, envelope, size)


class RefusedWriter:
    """A writer for a message the queue already refused: discards data, finish() fails."""

    def __init__(self, failure: QueueRefused) -> None:
        self._failure = failure

    def write(self, data: bytes) -> None:
        pass

    def watch_backlog(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """Nothing is kept, so there is never a backlog: a no-op."""

    def finish(self) -> "defer.Deferred[QueueReceipt]":
        return defer.fail(self._failure)

    def abort(self) -> None:
        pass


class CommitNotices:
    """
    Tells C{listener} of each commit on the reactor's next turn, after the
    receipt has gone to the writer's caller: the reply the caller writes
    now reaches the socket when the reactor next polls, before the
    listener (the scheduler planning a first attempt) runs.  The calls are
    made in the order the commits were posted, each exactly once, whatever
    the caller's callbacks or an earlier listener call raise.

    C{reactor.callFromThread} gives the next turn (from the reactor thread
    too: its queue is run at the start of a turn, after the poll);
    C{callLater(0)} would run in this very turn, before the poll.
    """

    def __init__(self, reactor: Any, listener: CommitListener) -> None:
        self._reactor = reactor
        self._listener = listener
        self._waiting: deque[tuple[int, Envelope | None, int]] = deque()

    def post(self, message_id: int, envelope: Envelope | None, size: int) -> None:
        """A message was committed: tell the listener on the next turn."""
        self._waiting.append((message_id, envelope, size))
        if len(self._waiting) == 1:
            self._reactor.callFromThread(self._tell)

    def _tell(self) -> None:
        while self._waiting:
            message_id, envelope, size = self._waiting[0]
            try:
                self._listener(message_id, envelope, size)
            except Exception:
                log.failure("queue: on_commit hook failed for message {id}", id=message_id)
            finally:
                self._waiting.popleft()


class _SinkWriter:
    """
    L{QueueSink}'s writer.  Up to L{SPILL_BYTES} are kept in memory, so a
    small message's file is created and written in one go at the end; a
    larger message gets its file at once and is streamed there (page
    cache, no fsync).  C{finish()} stages the message in the calling
    (reactor) thread - file creation and writes, cheap calls - and leaves
    only the fsyncs, which wait for the disk, to the pool (running the
    cheap calls there too would only add hand-offs of the GIL between the
    two threads).  When the group committer is idle (no batch running or
    waiting: a lone session), the message goes to it staged and its own
    fsyncs run in the commit's thread: one trip to the pool and back
    instead of two on the way to the C{250}.  Under load the fsyncs of
    the messages run in parallel in the pool, as their batches form.

    With the sink's C{early_entry}, when the group committer is idle at
    open (a lone session: under load, the batches share each C{mess/N}
    fsync, which the early path would spend on every message), on the
    reactor's turn after the writer is opened (the envelope is known, the
    data is on its way) the pool creates the message's file, writes its
    envelope and starts the fsyncs of the envelope and of C{mess/N}
    (L{PendingMessage.start_entry}: they go on in the sync pool, owning
    what they touch).  The data that arrives meanwhile is kept in memory
    and written when that job is back, and C{finish()} waits for it before
    it goes on as above; the commit fsyncs the data while the entry's
    fsyncs may still run, and waits for them before the link.  A writer
    finished in the turn it was opened (a filter's rewritten message, a
    small injected message read at once) takes the plain order: nothing
    would be gained by a second trip to the pool.
    """

    def __init__(self, sink: "QueueSink", sender: str, recipients: Sequence[str], origin: str, uid: int, pid: int,
                 dsn: MessageDsn | None = None, held: bool = False) -> None:
        self._dsn = dsn
        self._held = held
        self._sink = sink
        self._pending: PendingMessage | None = None
        self._buffer = bytearray()
        self._refusal: QueueRefused | None = None
        self._sender = sender
        self._recipients = list(recipients)
        self._origin = origin
        self._uid = uid
        self._pid = pid
        self._state = "open"
        #: the early path: its start on the next turn, then the pool's job (which owns the message until it is back)
        self._entry_start: Any = None
        self._entry_job: defer.Deferred[None] | None = None
        if sink.early_entry and sink.committer.idle:
            self._entry_start = sink.reactor.callLater(0, self._start_entry)

    def write(self, data: bytes) -> None:
        if self._state != "open" or self._refusal is not None:
            return
        if self._pending is not None:
            self._pending.write(data)
            return
        self._buffer += data
        if len(self._buffer) > SPILL_BYTES and self._entry_job is None:
            self._cancel_entry()
            try:
                self._begin()
            except QueueRefused as e:
                self._refusal = e
                self._buffer = bytearray()

    def watch_backlog(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """Data goes to the page cache as it comes, nothing piles up: a no-op."""

    def _cancel_entry(self) -> None:
        """The early path was scheduled but not started: the plain order instead."""
        if self._entry_start is not None:
            self._entry_start.cancel()
            self._entry_start = None

    def _start_entry(self) -> None:
        self._entry_start = None
        sink = self._sink
        job = threads.deferToThreadPool(sink.reactor, sink.threadpool, self._enter)
        self._entry_job = job.addCallbacks(self._entered, self._entry_failed)

    def _enter(self) -> PendingMessage:
        """In the pool: the message's file and its entry, their fsyncs started (the reactor keeps off it meanwhile)."""
        pending = self._sink.queue.begin(self._origin, self._uid, self._pid)
        pending.dsn = self._dsn
        pending.held = self._held
        pending.start_entry(self._sender, self._recipients)
        return pending

    def _entered(self, pending: PendingMessage) -> None:
        if self._state == "aborted":
            pending.abort()
            return
        pending.write(bytes(self._buffer))
        self._buffer = bytearray()
        self._pending = pending

    def _entry_failed(self, failure: Failure) -> None:
        self._buffer = bytearray()
        if self._state == "aborted":
            return
        if failure.check(QueueRefused):
            self._refusal = failure.value
        else:
            log.failure("queue: unexpected error making a message's entry durable", failure)
            self._refusal = QueueFailure(EXIT_BUG, str(failure.value))

    def _begin(self) -> PendingMessage:
        """Create the message's file and write what was kept so far (any thread; the reactor's waits meanwhile)."""
        if self._pending is None:
            pending = self._sink.queue.begin(self._origin, self._uid, self._pid)
            pending.dsn = self._dsn
            pending.held = self._held
            pending.write(bytes(self._buffer))
            self._buffer = bytearray()
            self._pending = pending
        return self._pending

    def finish(self) -> "defer.Deferred[QueueReceipt]":
        if self._state != "open":
            return defer.fail(QueueFailure(EXIT_BUG, f"finish() on a message that is {self._state}"))
        self._state = "finishing"
        self._cancel_entry()
        d: defer.Deferred[QueueReceipt]
        if self._entry_job is not None and not self._entry_job.called:
            d = self._entry_job.addCallback(lambda _: self._commit())
        else:
            d = self._commit()
        d.addCallbacks(self._committed, self._failed)
        return d

    def _commit(self) -> "defer.Deferred[QueueReceipt]":
        sink = self._sink
        if self._refusal is not None:
            return defer.fail(self._refusal)
        try:
            pending = self._begin()
            pending.stage(self._sender, self._recipients)
        except QueueRefused as e:
            return defer.fail(e)
        except Exception as e:
            # never raised to the caller (an inject connection would drop without a reply)
            if self._pending is not None:
                self._pending.abort()
            return defer.fail(QueueFailure(EXIT_BUG, f"{type(e).__name__}: {e}"))
        if sink.queue.disk.sync.whole_fs or sink.committer.idle:
            # syncfs: the batch's syncfs makes it durable with the others; an idle
            # committer (one session): its fsyncs run in the commit's thread, one hop
            return sink.committer.add(pending)
        durable = threads.deferToThreadPool(sink.reactor, sink.threadpool, pending.make_durable)
        return durable.addCallback(lambda _: sink.committer.add(pending))

    def _committed(self, receipt: QueueReceipt) -> QueueReceipt:
        self._state = "committed"
        notices = self._sink.notices
        if notices is not None:
            dsn = self._dsn if self._dsn is not None and self._dsn.meaningful else None
            envelope = Envelope(self._uid, receipt.qp, self._sender, tuple(self._recipients), dsn)
            size = self._pending.size if self._pending is not None else 0
            # a held message is picked up from todo/ (no first attempt from memory)
            notices.post(receipt.message_id, None if self._held else envelope, size)
        return receipt

    def _failed(self, failure: Failure) -> Failure | defer.Deferred[QueueReceipt]:
        self._state = "failed"
        if not failure.check(QueueRefused):
            log.failure("queue: unexpected error while committing", failure)
            return defer.fail(QueueFailure(EXIT_BUG, str(failure.value)))
        log.warn("queue: message refused: {error}", error=str(failure.value))
        return failure

    def abort(self) -> None:
        if self._state == "open":
            self._state = "aborted"
            self._buffer = bytearray()
            self._cancel_entry()
            if self._pending is not None:
                self._pending.abort()


class QueueSink:
    """
    The in-process L{pymta.interfaces.MessageSink}: messages go straight into
    C{queue}.  C{write()} keeps up to L{SPILL_BYTES} in memory, beyond that
    it creates the mess file and appends to it in the caller's (reactor)
    thread - page cache, no fsync; C{finish()} writes the rest and the
    envelope there too, fsyncs the message's own files in C{threadpool}
    (default: the reactor's; several messages at once), then publishes it
    with the others prepared meanwhile in one group commit
    (L{pymta.queue.groupcommit}) and fires with the receipt once the
    message is durable.

    C{on_commit(message_id, envelope, size)} is then called in the reactor
    thread, on the turn after the receipt went to the writer's caller
    (L{CommitNotices}), so an in-process scheduler can pick the message up
    at once - it is given the message's L{Envelope} and the size of its
    file too, so the scheduler need not read them back; with such a
    listener the trigger FIFO is not pulled (it would only make that
    scheduler rescan todo/).

    C{early_entry} (off: qmail's order) makes each writer's envelope and
    C{mess/N} entry durable while its data arrives (L{_SinkWriter}); it
    needs a C{reactor} with C{callLater}, and is ignored when the queue
    syncs its whole file system (one syncfs covers them with the data).
    """

    def __init__(self, queue: Queue, reactor: Any, threadpool: Any = None, on_commit: CommitListener | None = None,
                 early_entry: bool = False) -> None:
        self.queue = queue
        self.reactor = reactor
        self.threadpool = threadpool if threadpool is not None else reactor.getThreadPool()
        self.on_commit = on_commit
        self.notices = CommitNotices(reactor, on_commit) if on_commit is not None else None
        self.early_entry = early_entry and not queue.disk.sync.whole_fs
        #: batches the prepared messages into group commits (its counters show the grouping achieved)
        self.committer = GroupCommitter(reactor, self.threadpool, trigger=on_commit is None)

    def open_message(
        self,
        sender: str,
        recipients: Sequence[str],
        *,
        origin: str,
        uid: int | None = None,
        pid: int | None = None,
        dsn: MessageDsn | None = None,
        held: bool = False,
    ) -> MessageWriter:
        """
        Start a message.  A bad envelope or a queue that cannot take a file
        gives a writer whose C{finish()} fails with the L{QueueRefused}.
        C{held}: queued held (a filter's quarantine, L{PendingMessage.held}).
        """
        try:
            check_envelope(sender, recipients)
        except QueueRefused as e:
            log.warn("queue: message refused: {error}", error=str(e))
            return RefusedWriter(e)
        uid = os.getuid() if uid is None else uid
        pid = os.getpid() if pid is None else pid
        return _SinkWriter(self, sender, recipients, origin, uid, pid, dsn, held)
