# -*- test-case-name: tests.queue.test_store -*-
"""
The crash-safe queue writer: qmail-queue's write order, plus directory fsyncs.

One message goes in like this (reference §1.4); after a crash at any instant
the queue holds the whole message (C{todo/ID} present) or nothing the
scheduler will look at (no C{todo/ID}; the leftovers are removed by
L{pymta.queue.cleaner.clean_queue}):

 1. C{pid/<pid>.<time>.<seq>} created with C{O_EXCL}; its inode number is
    the message id ID.
 2. linked to C{mess/<ID % split>/ID}; the pid file is unlinked.
 3. C{Received: (pymta <qp> invoked <origin>); <date>} and the message are
    written to the mess file.
 4. C{intd/ID} created with C{O_EXCL} (or made from a spare inode, see
    L{pymta.queue.spares}) and the envelope
    C{u<uid>\0p<qp>\0F<sender>\0T<rcpt>\0...} written; then the mess
    file and the envelope are fsynced.
 5. the mess file's directory C{mess/N} is fsynced (qmail trusts
    synchronous metadata, ext4 and friends do not promise it, so pymta
    fsyncs directories), C{intd/ID} linked to C{todo/ID} - the commit
    point - and the todo directory fsynced.  Only now is the message
    acknowledged.  L{QueueSink} does this step for every message prepared
    meanwhile at once (group commit, L{commit_prepared}): one fsync per
    C{mess/N} directory and one of todo/ per batch.
 6. the trigger FIFO C{lock/trigger} gets one byte (non-blocking, errors
    ignored), waking a queue manager in another process.

Any error before the commit removes the mess and intd files again and
raises L{QueueFailure} with qmail-queue's exit code and text (§1.3): a full
disk is C{qq write error or disk full (#4.3.0)}, failing to create a queue
file is C{qq trouble creating files in queue (#4.3.0)}, both temporary.

B{qp}: qmail shows the qmail-queue process id as "qp".  pymta's writers live
in long-running processes, so pymta uses the message id as qp: smtpd's
C{250 ok <time> qp <qp>}, the C{Received:} line, the C{p} record and the
queue manager's C{info msg ID: ... qp <qp>} line then all name the same
message.  The C{pid} handed to L{Queue.begin} is the injecting process
(kept on L{PendingMessage.pid} for log lines).

B{Test hook}: when the environment variable C{PYMTA_QUEUE_TEST_PAUSE}
names one of L{STEPS}, a writer about to perform that step writes
C{paused <step>\\n} to stderr and sleeps, so a crash test can SIGKILL it
exactly there.

Two front ends share this writer: L{Queue}/L{PendingMessage} (blocking, for
command-line tools and threads) and L{QueueSink}, the in-process
L{pymta.interfaces.MessageSink} that keeps the reactor free by running the
fsyncs and links in a thread pool.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import threading
import time
from typing import Callable, Sequence

from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure

from pymta.address import qmail_date
from pymta.interfaces import QueueReceipt, QueueRefused
from pymta.queue.envelope import Envelope, check_envelope, encode_todo
from pymta.queue.errors import (
    EXIT_BUG,
    EXIT_INTD_FILE,
    EXIT_MESS_FILE,
    EXIT_PID_FILE,
    EXIT_TODO_FILE,
    EXIT_WRITE_ERROR,
    QueueFailure,
)
from pymta.queue.layout import QueueLayout
from pymta.queue.spares import SparePool, create_file, fill_file
from pymta.queue.syncing import QueueSync, fsync_each

__all__ = [
    "STEPS",
    "PAUSE_ENV",
    "Queue",
    "PendingMessage",
    "QueueSink",
    "RefusedWriter",
    "pull_trigger",
    "received_line",
    "commit_prepared",
]

log = Logger(namespace="pymta.queue")

PAUSE_ENV = "PYMTA_QUEUE_TEST_PAUSE"

#: the steps of the write sequence, in order, as the test hook names them
STEPS = (
    "pid",  # before creating the pid file
    "link_mess",  # before linking it into mess/
    "unlink_pid",  # before removing the pid file
    "write_mess",  # before writing the Received line and the data
    "fsync_mess",  # before the mess file's buffered data is written out
    "intd",  # before creating intd/ID
    "fsync_intd",  # before fsyncing the mess file and the envelope
    "link_todo",  # before the commit point (after the mess/N directories are fsynced)
    "fsync_todo",  # after the commit point, before the todo directory is durable
    "trigger",  # before pulling the trigger
    "done",  # after everything, before returning the receipt
)

_BUFFER = 65536


#: the step the test hook stops at in this process (read once: checked a dozen times per message)
_PAUSE_AT = os.environ.get(PAUSE_ENV)


def _pause(step: str) -> None:
    if _PAUSE_AT == step:
        os.write(2, f"paused {step}\n".encode())
        while True:
            time.sleep(3600)


def _write_failure(err: OSError, what: str) -> QueueFailure:
    return QueueFailure(EXIT_WRITE_ERROR, f"{what}: {err.strerror or err}")


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warn("queue: unable to remove {path}: {error}", path=path, error=e.strerror)


def received_line(qp: int, origin: str, when: float | None = None) -> bytes:
    """C{Received: (pymta <qp> invoked <origin>); <date>\\n}, qmail-queue's line with pymta's name."""
    safe_origin = origin.replace("\r", " ").replace("\n", " ")
    return f"Received: (pymta {qp} invoked {safe_origin}); {qmail_date(when)}\n".encode("utf-8", "surrogateescape")


def pull_trigger(layout: QueueLayout) -> None:
    """Write one byte to C{lock/trigger} without blocking; a missing reader or FIFO is fine."""
    try:
        fd = os.open(layout.trigger_path(), os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(fd, b"\0")
    except OSError:
        pass
    finally:
        os.close(fd)


class Queue:
    """
    The queue writer for one queue directory.  Thread-safe: any number of
    L{PendingMessage}s may be open at once, from any threads.

    When running as root, new files are given to the owner of the queue
    directory, so the queue manager (running as that owner) can use them.
    """

    def __init__(
        self,
        layout: QueueLayout,
        clock: Callable[[], float] = time.time,
        spares: SparePool | None = None,
        mess_spares: SparePool | None = None,
        sync: QueueSync | None = None,
    ) -> None:
        self.layout = layout
        self.clock = clock
        #: how a batch is made durable (control/queuesync): an fsync per file and directory, or one syncfs
        self.sync = sync if sync is not None else QueueSync(layout.queuedir)
        #: spare inodes for the envelope files (L{pymta.queue.spares}); None creates every file
        self.spares = spares
        #: spare message files (their inode numbers become message ids again); None creates every one
        self.mess_spares = mess_spares
        self._seq = itertools.count(1)
        self._seq_lock = threading.Lock()
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            try:
                st = os.stat(layout.queuedir)
            except OSError:
                st = None
            if st is not None and (st.st_uid, st.st_gid) != (0, 0):
                self._owner = (st.st_uid, st.st_gid)

    def begin(self, origin: str, uid: int, pid: int) -> "PendingMessage":
        """
        Start a message (steps 1-2 and the C{Received:} line): the mess file
        exists from now on, invisible to the scheduler.  Raises
        L{QueueFailure} when the queue cannot take a new file.
        """
        return PendingMessage(self, origin, uid, pid)

    def _pid_name(self) -> str:
        with self._seq_lock:
            seq = next(self._seq)
        return os.path.join(self.layout.dir("pid"), f"{os.getpid()}.{time.time_ns()}.{seq}")


class PendingMessage:
    """
    A message being written.  C{write()} appends data; C{commit()} makes it
    durable and visible and returns the receipt; C{abort()} removes it.
    C{write()} never raises: a write error is remembered and reported by
    C{commit()}.
    """

    def __init__(self, queue: Queue, origin: str, uid: int, pid: int) -> None:
        self.queue = queue
        self.origin = origin
        self.uid = uid
        self.pid = pid
        self.message_id = -1
        self.mess_path = ""
        #: bytes of the message file (the Received line and the data) written so far
        self.size = 0
        self._lock_fd = -1
        self._error: QueueFailure | None = None
        self._closed = False
        self._prepared = False
        self._reused = False
        #: the open C{intd/ID} between L{stage} and L{make_durable}
        self._intd_fd = -1
        #: the queue's sync error count before anything was written (L{QueueSync.sync}'s C{since})
        self._sync_generation = queue.sync.generation
        layout = queue.layout
        _pause("pid")
        fd = self._create_pid_file()
        try:
            st = os.fstat(fd)
            self.message_id = st.st_ino
            self.mess_path = layout.mess(self.message_id)
            _pause("link_mess")
            try:
                os.link(self._pid_path, self.mess_path)
            except OSError as e:
                raise QueueFailure(EXIT_MESS_FILE, f"link {self.mess_path}: {e.strerror}") from e
            _pause("unlink_pid")
            try:
                os.unlink(self._pid_path)
            except OSError as e:
                _unlink_quietly(self.mess_path)
                raise QueueFailure(EXIT_PID_FILE, f"unlink {self._pid_path}: {e.strerror}") from e
        except BaseException:
            os.close(fd)
            _unlink_quietly(self._pid_path)
            raise
        # The flock taken on the new inode stays held (through this duplicate
        # descriptor) until the message is committed or removed: the cleaner
        # leaves locked files alone, whatever their age.
        self._lock_fd = os.dup(fd)
        self._file = os.fdopen(fd, "wb", buffering=_BUFFER)
        _pause("write_mess")
        self.write(received_line(self.message_id, origin, queue.clock()))

    def _create_pid_file(self) -> int:
        spares = self.queue.mess_spares
        if spares is not None:
            taken = spares.take_open()
            if taken is not None:
                # a finished message's file, its old names durably gone (SparePool.settle):
                # already locked and ours; the old content is cut off when the data is flushed
                fd, self._pid_path = taken
                self._reused = True
                return fd
        for _ in range(9):
            self._pid_path = self.queue._pid_name()
            try:
                fd = os.open(self._pid_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                continue
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise _write_failure(e, f"create {self._pid_path}") from e
                raise QueueFailure(EXIT_PID_FILE, f"create {self._pid_path}: {e.strerror}") from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if self.queue._owner is not None:
                    os.fchown(fd, *self.queue._owner)
                os.fchmod(fd, 0o644)
            except OSError as e:
                os.close(fd)
                _unlink_quietly(self._pid_path)
                raise QueueFailure(EXIT_PID_FILE, f"lock/chown/chmod {self._pid_path}: {e.strerror}") from e
            return fd
        raise QueueFailure(EXIT_PID_FILE, "all pid file names taken")

    @property
    def qp(self) -> int:
        return self.message_id

    def write(self, data: bytes) -> None:
        """Append message bytes; errors are kept for L{commit}."""
        if self._error is not None or self._closed:
            return
        try:
            self._file.write(data)
        except OSError as e:
            self._error = _write_failure(e, f"write {self.mess_path}")
            return
        self.size += len(data)

    def commit(self, sender: str, recipients: Sequence[str]) -> QueueReceipt:
        """
        Steps 3-6: fsync the data, write the envelope, link it into todo/,
        make that durable, pull the trigger.  Raises L{QueueFailure} (with
        everything removed again) or returns the receipt.
        """
        self.prepare(sender, recipients)
        outcome = commit_prepared([self])[0]
        if isinstance(outcome, QueueFailure):
            raise outcome
        return outcome

    def prepare(self, sender: str, recipients: Sequence[str]) -> None:
        """
        Steps 3-4 for this message alone: the data and the envelope
        (C{intd/ID}) written and fsynced.  Nothing is visible yet; the
        message is published by L{commit_prepared}, which may share its
        directory fsyncs with other prepared messages.  Raises
        L{QueueFailure} with everything removed again.
        """
        self.stage(sender, recipients)
        self.make_durable()

    def stage(self, sender: str, recipients: Sequence[str]) -> None:
        """
        The first half of L{prepare}: the data flushed to the file and the
        envelope written to C{intd/ID}, neither fsynced yet (cheap calls, no
        waiting for the disk).  Raises L{QueueFailure} with everything
        removed again.
        """
        if self._closed or self._prepared or self._intd_fd >= 0:
            raise QueueFailure(EXIT_BUG, "message already committed, prepared or aborted")
        try:
            envelope = encode_todo(self.uid, self.qp, sender, recipients)
            self._flush_data()
            self._intd_fd = self._write_envelope(envelope)
        except BaseException:
            self.abort()
            raise

    def make_durable(self, fsync: bool = True) -> None:
        """
        The second half of L{prepare}, after L{stage}: fsync the data and
        the envelope (waits for the disk; any thread) - or, with
        C{fsync=False}, only close them, when a syncfs of the queue's file
        system made them durable already.  Raises L{QueueFailure} with
        everything removed again.
        """
        fd, self._intd_fd = self._intd_fd, -1
        if fd < 0 or self._closed:
            raise QueueFailure(EXIT_BUG, "message not staged, or already committed or aborted")
        try:
            try:
                # the data and the envelope; the mess/N directory entry is made
                # durable by the group commit, once per directory per batch
                _pause("fsync_intd")
                errors = fsync_each([self._file.fileno(), fd]) if fsync else [None, None]
            finally:
                os.close(fd)
                self._close_data()
            for error, what in zip(errors, (f"write {self.mess_path}", f"write {self.queue.layout.intd(self.message_id)}")):
                if error is not None:
                    raise _write_failure(error, what) from error
        except BaseException:
            self.abort()
            raise
        self._prepared = True

    def _flush_data(self) -> None:
        if self._error is not None:
            raise self._error
        _pause("fsync_mess")
        try:
            self._file.flush()
            if self._reused and os.fstat(self._file.fileno()).st_size > self.size:
                # a recycled file: cut off the rest of the old message
                self._file.truncate()
        except OSError as e:
            raise _write_failure(e, f"write {self.mess_path}") from e

    def _close_data(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass

    def _write_envelope(self, envelope: bytes) -> int:
        """Create C{intd/ID} with the envelope; returns its descriptor, not yet fsynced."""
        intd = self.queue.layout.intd(self.message_id)
        _pause("intd")
        queue = self.queue
        try:
            fd = create_file(intd, 0o644, queue.spares, queue._owner)
        except FileExistsError:
            # intd/ID belongs to our id, hence to a dead message: stale.
            _unlink_quietly(intd)
            try:
                fd = create_file(intd, 0o644, queue.spares, queue._owner)
            except OSError as e:
                raise QueueFailure(EXIT_INTD_FILE, f"create {intd}: {e.strerror}") from e
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _write_failure(e, f"create {intd}") from e
            raise QueueFailure(EXIT_INTD_FILE, f"create {intd}: {e.strerror}") from e
        try:
            fill_file(fd, envelope)
        except OSError as e:
            os.close(fd)
            raise _write_failure(e, f"write {intd}") from e
        return fd

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, -1
        if fd >= 0:
            os.close(fd)

    def abort(self) -> None:
        """Remove whatever this message has on disk; it never becomes visible."""
        if self._closed:
            return
        self._closed = True
        self._prepared = False
        fd, self._intd_fd = self._intd_fd, -1
        if fd >= 0:
            os.close(fd)
        file = getattr(self, "_file", None)
        if file is not None and not file.closed:
            try:
                file.close()
            except OSError:
                pass
        if self.message_id >= 0:
            _unlink_quietly(self.queue.layout.intd(self.message_id))
            _unlink_quietly(self.mess_path)
        self._unlock()

    def __del__(self) -> None:
        for name in ("_intd_fd", "_lock_fd"):
            fd = getattr(self, name, -1)
            if fd >= 0:
                os.close(fd)


def commit_prepared(messages: Sequence[PendingMessage], trigger: bool = True) -> list[QueueReceipt | QueueFailure]:
    """
    Steps 5-6 for a batch of L{PendingMessage.prepare}d messages (their
    data and envelope already durable), a group commit: the mess/N
    directories of the batch are fsynced, every C{intd/ID} is linked to
    C{todo/ID}, then the todo directory is fsynced once for the whole
    batch, and only then is any message acknowledged.  When the queue syncs
    its whole file system (L{QueueSync.whole_fs}), messages may come merely
    L{PendingMessage.stage}d: one syncfs makes their files and mess/N
    entries durable, a second one the todo/ links.
    Returns one receipt or L{QueueFailure} per message, in order.  A
    message that cannot be linked is removed again; a failing todo/ fsync
    fails every message (the todo/ links are left in place: a possible
    duplicate, never a loss).
    C{trigger=False} skips the trigger FIFO (the caller tells its
    scheduler directly).
    """
    if not messages:
        return []
    outcomes: list[QueueReceipt | QueueFailure | None] = [None] * len(messages)
    live: list[int] = []
    sync = messages[0].queue.sync
    whole_fs = sync.whole_fs
    for i, message in enumerate(messages):
        if (message._prepared or (whole_fs and message._intd_fd >= 0)) and not message._closed:
            live.append(i)
        else:
            outcomes[i] = QueueFailure(EXIT_BUG, "message not prepared or already committed")
    layout = messages[0].queue.layout

    def fail(indexes: list[int], failure: QueueFailure, remove: bool) -> list[int]:
        for i in indexes:
            outcomes[i] = failure
            if remove:
                messages[i].abort()
            else:
                messages[i]._closed = True
                messages[i]._unlock()
        return []

    # a write-back error reported since the oldest message of the batch began fails the batch
    since = min((messages[i]._sync_generation for i in live), default=0)
    # the mess/N entries of the batch, each directory once, before any todo/ link can be seen
    # (syncfs mode: one syncfs, covering the staged data and envelopes too)
    mess_dirs: dict[str, list[int]] = {}
    for i in live:
        mess_dirs.setdefault(os.path.dirname(messages[i].mess_path), []).append(i)
    synced: list[int] = []
    for (directory, indexes), error in zip(mess_dirs.items(), sync.directories(list(mess_dirs), since)):
        if error is None:
            synced += indexes
        else:
            what = "syncfs of the queue" if whole_fs else f"fsync {directory}"
            fail(indexes, _write_failure(error, what), remove=True)
    live = sorted(synced)
    for i in list(live):
        if not messages[i]._prepared:  # staged: the syncfs made it durable
            try:
                messages[i].make_durable(fsync=False)
            except QueueFailure as e:
                fail([i], e, remove=True)
                live.remove(i)
    _pause("link_todo")
    linked: list[int] = []
    for i in live:
        message = messages[i]
        todo = layout.todo(message.message_id)
        try:
            os.link(layout.intd(message.message_id), todo)
        except OSError as e:
            fail([i], QueueFailure(EXIT_TODO_FILE, f"link {todo}: {e.strerror}"), remove=True)
            continue
        message._closed = True
        message._prepared = False
        linked.append(i)
    if linked:
        _pause("fsync_todo")
        [error] = sync.directories([layout.dir("todo")], since)
        if error is not None:
            # Visible but not durable: the scheduler may deliver them, so they
            # are left in place; the callers are told to retry (a possible
            # duplicate, never a loss).
            linked = fail(linked, _write_failure(error, "fsync todo/"), remove=False)
        for i in linked:
            messages[i]._unlock()
        if linked:
            _pause("trigger")
            if trigger:
                pull_trigger(layout)
            _pause("done")
        for i in linked:
            outcomes[i] = QueueReceipt(messages[i].message_id, messages[i].qp)
    return outcomes  # type: ignore[return-value]


class RefusedWriter:
    """A writer for a message the queue already refused: discards data, finish() fails."""

    def __init__(self, failure: QueueRefused) -> None:
        self._failure = failure

    def write(self, data: bytes) -> None:
        pass

    def finish(self) -> "defer.Deferred[QueueReceipt]":
        return defer.fail(self._failure)

    def abort(self) -> None:
        pass


class _GroupCommitter:
    """
    Publishes the messages of a L{QueueSink} in batches: whatever was
    prepared while one batch was being committed goes into the next one,
    so under load many messages share each directory fsync.  One batch at a
    time runs in the thread pool; receipts fire in the reactor thread.
    """

    def __init__(self, sink: "QueueSink") -> None:
        self._sink = sink
        self._waiting: list[tuple[PendingMessage, defer.Deferred]] = []
        self._running = False
        #: batches and messages committed so far (messages / batches is the grouping achieved)
        self.batches = 0
        self.messages = 0

    def add(self, pending: PendingMessage) -> "defer.Deferred[QueueReceipt]":
        d: defer.Deferred = defer.Deferred()
        self._waiting.append((pending, d))
        self._next()
        return d

    def _next(self) -> None:
        if self._running or not self._waiting:
            return
        batch, self._waiting = self._waiting, []
        self._running = True
        self.batches += 1
        self.messages += len(batch)
        sink = self._sink
        trigger = sink.on_commit is None
        d = threads.deferToThreadPool(sink.reactor, sink.threadpool, commit_prepared, [p for p, _ in batch], trigger)
        d.addBoth(self._done, batch)

    def _done(self, outcomes, batch: list[tuple[PendingMessage, defer.Deferred]]) -> None:
        self._running = False
        if isinstance(outcomes, Failure):
            for pending, _ in batch:
                pending.abort()
            outcomes = [QueueFailure(EXIT_BUG, str(outcomes.value))] * len(batch)
        for (_, d), outcome in zip(batch, outcomes):
            if isinstance(outcome, QueueReceipt):
                d.callback(outcome)
            else:
                d.errback(outcome)
        self._next()


#: message bytes a L{QueueSink} writer keeps in memory before it creates the message's file
SPILL_BYTES = 65536


class _SinkWriter:
    """
    L{QueueSink}'s writer.  Up to L{SPILL_BYTES} are kept in memory, so a
    small message's file is created and written in one go at the end; a
    larger message gets its file at once and is streamed there (page
    cache, no fsync).  C{finish()} stages the message in the calling
    (reactor) thread - file creation and writes, cheap calls - and leaves
    only the fsyncs, which wait for the disk, to the pool.  (Creating the
    files in the pool as well cost more: every call there passes the GIL
    back and forth with the reactor thread; measured in the accept
    benchmark, staging here gave 3-4% more messages/s for 5% less CPU.)
    """

    def __init__(self, sink: "QueueSink", sender: str, recipients: Sequence[str], origin: str, uid: int, pid: int) -> None:
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

    def write(self, data: bytes) -> None:
        if self._state != "open" or self._refusal is not None:
            return
        if self._pending is not None:
            self._pending.write(data)
            return
        self._buffer += data
        if len(self._buffer) > SPILL_BYTES:
            try:
                self._begin()
            except QueueRefused as e:
                self._refusal = e
                self._buffer = bytearray()

    def _begin(self) -> PendingMessage:
        """Create the message's file and write what was kept so far (any thread; the reactor's waits meanwhile)."""
        if self._pending is None:
            pending = self._sink.queue.begin(self._origin, self._uid, self._pid)
            pending.write(bytes(self._buffer))
            self._buffer = bytearray()
            self._pending = pending
        return self._pending

    def finish(self) -> "defer.Deferred[QueueReceipt]":
        if self._state != "open":
            return defer.fail(QueueFailure(EXIT_BUG, f"finish() on a message that is {self._state}"))
        self._state = "finishing"
        sink = self._sink
        if self._refusal is not None:
            d = defer.fail(self._refusal)
        else:
            try:
                pending = self._begin()
                pending.stage(self._sender, self._recipients)
            except QueueRefused as e:
                d = defer.fail(e)
            except Exception as e:
                # never raised to the caller (an inject connection would drop without a reply)
                if self._pending is not None:
                    self._pending.abort()
                d = defer.fail(QueueFailure(EXIT_BUG, f"{type(e).__name__}: {e}"))
            else:
                if sink.queue.sync.whole_fs:
                    # the batch's syncfs makes it durable with the others
                    d = sink._committer.add(pending)
                else:
                    d = threads.deferToThreadPool(sink.reactor, sink.threadpool, pending.make_durable)
                    d.addCallback(lambda _: sink._committer.add(pending))
        d.addCallbacks(self._committed, self._failed)
        return d

    def _committed(self, receipt: QueueReceipt) -> QueueReceipt:
        self._state = "committed"
        if self._sink.on_commit is not None:
            envelope = Envelope(self._uid, receipt.qp, self._sender, tuple(self._recipients))
            size = self._pending.size if self._pending is not None else 0
            try:
                self._sink.on_commit(receipt.message_id, envelope, size)
            except Exception:
                log.failure("queue: on_commit hook failed for message {id}", id=receipt.message_id)
        return receipt

    def _failed(self, failure):
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
    with the others prepared meanwhile in one group commit (L{commit_prepared}: one fsync per directory per batch) and fires
    with the receipt once the message is durable.  C{on_commit(message_id, envelope, size)}
    is then called in the reactor thread, so an in-process scheduler can
    pick the message up at once - it is given the message's L{Envelope} and
    the size of its file too, so the scheduler need not read them back; with
    such a hook the trigger FIFO is not pulled (it would only make that
    scheduler rescan todo/).
    """

    def __init__(
        self, queue: Queue, reactor, threadpool=None, on_commit: Callable[[int, Envelope, int], None] | None = None
    ) -> None:
        self.queue = queue
        self.reactor = reactor
        self.threadpool = threadpool if threadpool is not None else reactor.getThreadPool()
        self.on_commit = on_commit
        self._committer = _GroupCommitter(self)

    def open_message(
        self,
        sender: str,
        recipients: Sequence[str],
        *,
        origin: str,
        uid: int | None = None,
        pid: int | None = None,
    ):
        """
        Start a message.  A bad envelope or a queue that cannot take a file
        gives a writer whose C{finish()} fails with the L{QueueRefused}.
        """
        try:
            check_envelope(sender, recipients)
        except QueueRefused as e:
            log.warn("queue: message refused: {error}", error=str(e))
            return RefusedWriter(e)
        uid = os.getuid() if uid is None else uid
        pid = os.getpid() if pid is None else pid
        return _SinkWriter(self, sender, recipients, origin, uid, pid)
