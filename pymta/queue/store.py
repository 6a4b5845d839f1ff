# -*- test-case-name: tests.queue.test_store,tests.queue.test_sink_early -*-
"""
The crash-safe queue writer: qmail-queue's write order, plus directory fsyncs.

One message goes in like this (docs/internals.md, "The queue on disk");
after a crash at any instant the queue holds the whole message (C{todo/ID}
present) or nothing the scheduler will look at (no C{todo/ID}; the
leftovers are removed by L{pymta.queue.cleaner.clean_queue}):

 1. C{pid/<pid>.<time>.<seq>} created with C{O_EXCL}; its inode number is
    the message id ID.
 2. linked to C{mess/<ID % split>/ID}; the pid file is unlinked.
 3. C{Received: (pymta <qp> invoked <origin>); <date>} and the message are
    written to the mess file.
 4. C{intd/ID} created with C{O_EXCL} and the envelope
    C{u<uid>\\0p<qp>\\0F<sender>\\0T<rcpt>\\0...} written; then the mess
    file and the envelope are fsynced.
 5. the mess file's directory C{mess/N} is fsynced (qmail trusts
    synchronous metadata, ext4 and friends do not promise it, so pymta
    fsyncs directories), C{intd/ID} linked to C{todo/ID} - the commit
    point - and the todo directory fsynced.  Only now is the message
    acknowledged.
 6. the trigger FIFO C{lock/trigger} gets one byte (non-blocking, errors
    ignored), waking a queue manager in another process.

L{PendingMessage.commit} is this order for one message, qmail's plain
path.  The optimisations are seams over it, each off in
L{QueueDisk.plain}: the disk's spare files give steps 1 and 4 a recycled
inode instead of a new one (L{pymta.queue.spares}), its sync policy may
replace the fsyncs by a syncfs of the file system
(L{pymta.queue.syncing}), L{pymta.queue.groupcommit} runs steps 5-6
for many messages at once (one message alone: its data, envelope and
C{mess/N} fsynced at once, L{PendingMessage.make_durable}); and the early
path (L{PendingMessage.start_entry}, a L{pymta.queue.sink.QueueSink}
option) starts step 4's envelope fsync and step 5's C{mess/N} one while
the data arrives, waited for after the data's fsync, before the link.

Where a message stands is its L{WriteState}; each step moves it on and
refuses to run from any other state::

    WRITING --start_entry--> ENTRY_WRITTEN (its fsyncs under way)
       |                          |
     stage                      stage
       v                          |
    STAGED <----------------------+
       |
    make_durable (waits for them too) --> DURABLE --link_todo--> LINKED --committed--> COMMITTED
                                              |
                                              +--fail_visible--> FAILED (left visible)

    before LINKED: abort -> ABORTED, an error in a step -> FAILED; the files are removed either way

Any error before the commit removes the mess and intd files again and
raises L{QueueFailure} with qmail-queue's exit code and text: a full
disk is C{qq write error or disk full (#4.3.0)}, failing to create a queue
file is C{qq trouble creating files in queue (#4.3.0)}, both temporary.

B{qp}: qmail shows the qmail-queue process id as "qp".  pymta's writers live
in long-running processes, so pymta uses the message id as qp: smtpd's
C{250 ok <time> qp <qp>}, the C{Received:} line, the C{p} record and the
queue manager's C{info msg ID: ... qp <qp>} line then all name the same
message.  The C{pid} handed to L{Queue.begin} is the injecting process
(kept on L{PendingMessage.pid} for log lines).

B{Test hook}: L{pymta.queue.crashpause} (C{PYMTA_QUEUE_TEST_PAUSE}) stops
a writer before any of its L{STEPS}, so a crash test can SIGKILL it there.

This module is the blocking writer (command-line tools and threads); the
in-process L{pymta.interfaces.MessageSink} built on it is
L{pymta.queue.sink.QueueSink}.
"""

from __future__ import annotations

import enum
import errno
import fcntl
import itertools
import os
import threading
import time
from typing import Callable, Sequence

from twisted.logger import Logger

from pymta.address import qmail_date
from pymta.interfaces import QueueReceipt
from pymta.queue.crashpause import EARLY_STEPS, PAUSE_ENV, STEPS, pause_for_crash_test
from pymta.queue.ctldisk import write_holds
from pymta.queue.disk import QueueDisk
from pymta.dsn.params import MessageDsn
from pymta.queue.entrysync import EntrySync
from pymta.queue.envelope import encode_todo
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
from pymta.queue.spares import create_file, fill_file
from pymta.queue.syncing import fsync_all, fsync_each

__all__ = [
    "STEPS", "EARLY_STEPS", "PAUSE_ENV", "WriteState", "Queue", "PendingMessage", "pause_for_crash_test",
    "pull_trigger", "received_line", "write_failure",
]

log = Logger(namespace="pymta.queue")

_BUFFER = 65536


def write_failure(err: OSError, what: str) -> QueueFailure:
    """qmail-queue's C{qq write error or disk full} for C{err}, which happened doing C{what}."""
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
    The queue writer for one queue directory, C{disk} (L{QueueDisk.plain}
    for qmail's plain path).  Thread-safe: any number of
    L{PendingMessage}s may be open at once, from any threads.

    When running as root, new files are given to the disk's owner (the
    owner of the queue directory), so the queue manager, running as that
    owner, can use them.
    """

    def __init__(self, disk: QueueDisk, clock: Callable[[], float] = time.time) -> None:
        self.disk = disk
        self.clock = clock
        self._seq = itertools.count(1)
        self._seq_lock = threading.Lock()

    def begin(self, origin: str, uid: int, pid: int) -> "PendingMessage":
        """
        Start a message (steps 1-2 and the C{Received:} line): the mess file
        exists from now on, invisible to the scheduler.  Raises
        L{QueueFailure} when the queue cannot take a new file.
        """
        return PendingMessage(self, origin, uid, pid)

    def pid_file_name(self) -> str:
        """A new name in C{pid/}, unique in this process: C{<pid>.<time>.<seq>}."""
        with self._seq_lock:
            seq = next(self._seq)
        return os.path.join(self.disk.layout.dir("pid"), f"{os.getpid()}.{time.time_ns()}.{seq}")


class WriteState(enum.Enum):
    """Where a L{PendingMessage} stands (the diagram is in L{pymta.queue.store}'s docstring)."""

    #: the mess file exists and takes data; nothing else is written
    WRITING = "writing"
    #: the early path: C{intd/ID} written, its fsync and C{mess/N}'s under way; the file still takes data
    ENTRY_WRITTEN = "entry written"
    #: the data is flushed to the file and C{intd/ID} written, neither fsynced yet
    STAGED = "staged"
    #: the data and the envelope are durable; nothing is visible
    DURABLE = "durable"
    #: C{todo/ID} is linked (the commit point): visible, not yet durable, not acknowledged
    LINKED = "linked"
    #: C{todo/ID} is durable: the message is acknowledged
    COMMITTED = "committed"
    #: dropped by its writer: its files are removed
    ABORTED = "aborted"
    #: a step failed: its files are removed, except after the link (left visible, never lost)
    FAILED = "failed"


#: the states in which the message's files are the writer's alone (an abort or a failure removes them)
_PRIVATE = (WriteState.WRITING, WriteState.ENTRY_WRITTEN, WriteState.STAGED, WriteState.DURABLE)


class PendingMessage:
    """
    A message being written.  C{write()} appends data; C{commit()} makes it
    durable and visible and returns the receipt; C{abort()} removes it.
    C{write()} never raises: a write error is remembered and reported by
    C{commit()}.

    C{commit()} is L{prepare} (L{stage} then L{make_durable}) followed by
    steps 5-6; a group commit instead calls L{link_todo} and then
    L{committed} (or L{fail_visible}) for each message of a batch, around
    its shared directory syncs.  Each of these moves L{state} on and raises
    L{QueueFailure} (C{EXIT_BUG}, nothing changed) when called in a state
    it cannot move from.
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
        self._state = WriteState.WRITING
        self._lock_fd = -1
        #: a write error, reported when the message is staged
        self._error: QueueFailure | None = None
        #: the mess file is a spare (a finished message's): what is left of the old content is cut off
        self._recycled_file = False
        #: the open C{intd/ID} while STAGED, unless it was written early (its L{EntrySync} has it)
        self._intd_fd = -1
        #: the early path: the envelope L{start_entry} wrote, and its fsyncs (None: the plain path)
        self._entry_envelope: bytes | None = None
        self._entry_sync: EntrySync | None = None
        #: the C{mess/N} entry was made durable with the data or the envelope (L{make_durable})
        self._dir_durable = False
        #: the message's DSN data (RFC 3461), written into its envelope by L{stage}
        self.dsn: MessageDsn | None = None
        #: queue it held (a filter's quarantine): its C{hold/ID} is made durable before the commit point
        self.held = False
        #: the disk's sync error count before anything was written (L{QueueSync.directories}'s C{since})
        self.sync_generation = queue.disk.sync.generation
        layout = queue.disk.layout
        pause_for_crash_test("pid")
        fd = self._create_pid_file()
        try:
            st = os.fstat(fd)
            self.message_id = st.st_ino
            self.mess_path = layout.mess(self.message_id)
            pause_for_crash_test("link_mess")
            try:
                os.link(self._pid_path, self.mess_path)
            except OSError as e:
                raise QueueFailure(EXIT_MESS_FILE, f"link {self.mess_path}: {e.strerror}") from e
            pause_for_crash_test("unlink_pid")
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
        pause_for_crash_test("write_mess")
        self.write(received_line(self.message_id, origin, queue.clock()))

    def _create_pid_file(self) -> int:
        disk = self.queue.disk
        if disk.mess_spares is not None:
            taken = disk.mess_spares.take_open()
            if taken is not None:
                # a finished message's file, its old names durably gone (SparePool.settle):
                # already locked and ours; the old content is cut off when the data is flushed
                fd, self._pid_path = taken
                self._recycled_file = True
                return fd
        for _ in range(9):
            self._pid_path = self.queue.pid_file_name()
            try:
                fd = os.open(self._pid_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                continue
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise write_failure(e, f"create {self._pid_path}") from e
                raise QueueFailure(EXIT_PID_FILE, f"create {self._pid_path}: {e.strerror}") from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if disk.new_file_owner is not None:
                    os.fchown(fd, *disk.new_file_owner)
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

    @property
    def state(self) -> WriteState:
        """Where the message stands; only this class's methods move it."""
        return self._state

    @property
    def mess_dir(self) -> str:
        """The directory of the message file, C{mess/N}: its entry is made durable in step 5."""
        return os.path.dirname(self.mess_path)

    def _require(self, action: str, *allowed: WriteState) -> None:
        if self._state not in allowed:
            raise QueueFailure(EXIT_BUG, f"cannot {action} message {self.message_id}: it is {self._state.value}")

    @property
    def mess_entry_durable(self) -> bool:
        """L{make_durable} made the C{mess/N} entry durable too (early path, or alone): no directory fsync is due."""
        return self._dir_durable

    def write(self, data: bytes) -> None:
        """Append message bytes; errors are kept for L{commit}.  Ignored once the message is staged or dropped."""
        if self._error is not None or self._state not in (WriteState.WRITING, WriteState.ENTRY_WRITTEN):
            return
        try:
            self._file.write(data)
        except OSError as e:
            self._error = write_failure(e, f"write {self.mess_path}")
            return
        self.size += len(data)

    def commit(self, sender: str, recipients: Sequence[str]) -> QueueReceipt:
        """
        Steps 3-6 for this message alone: fsync the data, write the
        envelope, fsync the C{mess/N} directory, link the envelope into
        todo/, make that durable, pull the trigger.  Raises L{QueueFailure}
        (with everything removed again, unless only the last fsync failed:
        then the message stays, visible, and the caller is told to retry -
        a possible duplicate, never a loss) or returns the receipt.
        """
        self.prepare(sender, recipients)
        disk = self.queue.disk
        [error] = disk.sync.directories([self.mess_dir], self.sync_generation)
        if error is not None:
            self.fail()
            raise write_failure(error, "syncfs of the queue" if disk.sync.whole_fs else f"fsync {self.mess_dir}")
        pause_for_crash_test("link_todo")
        self.link_todo()
        pause_for_crash_test("fsync_todo")
        [error] = disk.sync.directories([disk.layout.dir("todo")], self.sync_generation)
        if error is not None:
            self.fail_visible()
            raise write_failure(error, "fsync todo/")
        receipt = self.committed()
        pause_for_crash_test("trigger")
        pull_trigger(disk.layout)
        pause_for_crash_test("done")
        return receipt

    def prepare(self, sender: str, recipients: Sequence[str]) -> None:
        """
        Steps 3-4 for this message alone: the data and the envelope
        (C{intd/ID}) written and fsynced (WRITING -> DURABLE).  Nothing is
        visible yet; the message is published by L{commit}, or by a group
        commit that shares its directory fsyncs with other prepared
        messages.  Raises L{QueueFailure} with everything removed again.
        """
        self.stage(sender, recipients)
        self.make_durable()

    def start_entry(self, sender: str, recipients: Sequence[str]) -> None:
        """
        The early path (WRITING -> ENTRY_WRITTEN), while the data still
        arrives: the envelope written to C{intd/ID}, and its fsync and the
        C{mess/N} directory's started in the sync pool (L{EntrySync}, which
        takes the descriptor); L{make_durable} waits for them after the
        data's own fsync, before the message can be linked.  Nothing is
        visible; L{stage} follows as on the plain path (and rewrites the
        envelope, should it have changed).  Raises L{QueueFailure} with
        everything removed again.
        """
        self._require("write the entry", WriteState.WRITING)
        try:
            envelope = encode_todo(self.uid, self.qp, sender, recipients, self.dsn)
            fd = self._write_envelope(envelope)
            self._entry_sync = EntrySync(fd, self.mess_dir)  # it owns fd from here, also when it raises
        except BaseException:
            self._remove(WriteState.FAILED)
            raise
        self._entry_envelope = envelope
        self._state = WriteState.ENTRY_WRITTEN

    def stage(self, sender: str, recipients: Sequence[str]) -> None:
        """
        The first half of L{prepare} (WRITING or ENTRY_WRITTEN -> STAGED):
        the data flushed to the file and the envelope written to
        C{intd/ID} (unless the same envelope was written early),
        neither fsynced yet (cheap calls, no waiting for the disk).
        Raises L{QueueFailure} with everything removed again.
        """
        self._require("stage", WriteState.WRITING, WriteState.ENTRY_WRITTEN)
        try:
            envelope = encode_todo(self.uid, self.qp, sender, recipients, self.dsn)
            self._flush_data()
            if self._entry_envelope is None:
                self._intd_fd = self._write_envelope(envelope)
            elif envelope != self._entry_envelope:
                self._intd_fd = self._rewrite_envelope(envelope)  # fsynced by make_durable, as on the plain path
        except BaseException:
            self._remove(WriteState.FAILED)
            raise
        self._state = WriteState.STAGED

    def make_durable(self, fsync: bool = True, alone: bool = False) -> None:
        """
        The second half of L{prepare} (STAGED -> DURABLE): fsync the data
        and the envelope (waits for the disk; any thread) - or, with
        C{fsync=False}, only close them, when a syncfs of the queue's file
        system made them durable already.  On the early path, then wait
        for the entry's fsyncs.  C{alone} (a message committed by itself):
        the C{mess/N} directory too, all at once (L{mess_entry_durable}).
        Raises L{QueueFailure} with everything removed again.
        """
        self._require("make durable", WriteState.STAGED)
        fd, self._intd_fd = self._intd_fd, -1
        intd = self.queue.disk.layout.intd(self.message_id)
        try:
            try:
                # the data and the envelope (unless written early); the mess/N directory entry is
                # made durable by the commit, once per directory per batch (here when alone, or early)
                pause_for_crash_test("fsync_intd")
                todo: list[tuple[int | str, str]] = [(self._file.fileno(), f"write {self.mess_path}")]
                todo += [(fd, f"write {intd}")] if fd >= 0 else []
                todo += [(self.mess_dir, f"fsync {self.mess_dir}")] if alone and self._entry_sync is None else []
                sync = fsync_all if alone else fsync_each
                errors: list[OSError | None] = sync([t for t, _ in todo]) if fsync else [None] * len(todo)
            finally:
                if fd >= 0:
                    os.close(fd)
                self._close_data()
            if self._entry_sync is not None:  # started while the data arrived: both done by now, or soon
                errors += self._entry_sync.wait()
                todo += [(-1, f"write {intd}"), (-1, f"fsync {self.mess_dir}")]
            for error, (_, what) in zip(errors, todo):
                if error is not None:
                    raise write_failure(error, what) from error
            if self.held:  # before the commit point: the scheduler never sees it unheld
                for error in write_holds(self.queue.disk, [self.message_id]).values():
                    raise write_failure(error, f"create {self.queue.disk.layout.hold(self.message_id)}") from error
        except BaseException:
            self._remove(WriteState.FAILED)
            raise
        self._dir_durable = self._entry_sync is not None or (alone and fsync)
        self._state = WriteState.DURABLE

    def link_todo(self) -> None:
        """
        Step 5's commit point (DURABLE -> LINKED): C{intd/ID} linked to
        C{todo/ID}.  The caller has made the C{mess/N} entry durable before;
        the message is visible to the scheduler from now on, but neither
        durable nor acknowledged until the todo directory is synced and
        L{committed} called.  A failing link removes the message (FAILED)
        and raises L{QueueFailure}.
        """
        self._require("link into todo/", WriteState.DURABLE)
        layout = self.queue.disk.layout
        todo = layout.todo(self.message_id)
        try:
            os.link(layout.intd(self.message_id), todo)
        except OSError as e:
            self._remove(WriteState.FAILED)
            raise QueueFailure(EXIT_TODO_FILE, f"link {todo}: {e.strerror}") from e
        self._state = WriteState.LINKED

    def committed(self) -> QueueReceipt:
        """The todo directory is durable (LINKED -> COMMITTED): the file lock goes, the receipt is returned."""
        self._require("acknowledge", WriteState.LINKED)
        self._state = WriteState.COMMITTED
        self._unlock()
        return QueueReceipt(self.message_id, self.qp)

    def fail_visible(self) -> None:
        """
        The todo directory could not be made durable (LINKED -> FAILED):
        the scheduler may already deliver the message, so its files stay
        (a possible duplicate, never a loss); the file lock goes.
        """
        self._require("fail", WriteState.LINKED)
        self._state = WriteState.FAILED
        self._unlock()

    def fail(self) -> None:
        """A shared step of its commit failed (WRITING, STAGED or DURABLE -> FAILED): the message is removed."""
        self._require("fail", *_PRIVATE)
        self._remove(WriteState.FAILED)

    def abort(self) -> None:
        """Remove whatever this message has on disk (-> ABORTED); it never becomes visible.  A no-op once linked or dropped."""
        if self._state in _PRIVATE:
            self._remove(WriteState.ABORTED)

    def _flush_data(self) -> None:
        if self._error is not None:
            raise self._error
        pause_for_crash_test("fsync_mess")
        try:
            self._file.flush()
            if self._recycled_file and os.fstat(self._file.fileno()).st_size > self.size:
                # a recycled file: cut off the rest of the old message
                self._file.truncate()
        except OSError as e:
            raise write_failure(e, f"write {self.mess_path}") from e

    def _close_data(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass

    def _write_envelope(self, envelope: bytes) -> int:
        """Create C{intd/ID} with the envelope; returns its descriptor, not yet fsynced."""
        disk = self.queue.disk
        intd = disk.layout.intd(self.message_id)
        pause_for_crash_test("intd")
        try:
            fd = create_file(intd, 0o644, disk.spares, disk.new_file_owner)
        except FileExistsError:
            # intd/ID belongs to our id, hence to a dead message: stale.
            _unlink_quietly(intd)
            try:
                fd = create_file(intd, 0o644, disk.spares, disk.new_file_owner)
            except OSError as e:
                raise QueueFailure(EXIT_INTD_FILE, f"create {intd}: {e.strerror}") from e
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise write_failure(e, f"create {intd}") from e
            raise QueueFailure(EXIT_INTD_FILE, f"create {intd}: {e.strerror}") from e
        try:
            fill_file(fd, envelope)
        except OSError as e:
            os.close(fd)
            raise write_failure(e, f"write {intd}") from e
        return fd

    def _rewrite_envelope(self, envelope: bytes) -> int:
        """Write a changed envelope over the early one in C{intd/ID}; returns its descriptor, not yet fsynced."""
        intd = self.queue.disk.layout.intd(self.message_id)
        try:
            fd = os.open(intd, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as e:
            raise QueueFailure(EXIT_INTD_FILE, f"open {intd}: {e.strerror}") from e
        try:
            fill_file(fd, envelope)
        except OSError as e:
            os.close(fd)
            raise write_failure(e, f"write {intd}") from e
        return fd

    def _remove(self, final: WriteState) -> None:
        """Close and remove the message's files and release its lock; it is C{final} from now on."""
        self._state = final
        fd, self._intd_fd = self._intd_fd, -1
        if fd >= 0:
            os.close(fd)
        self._close_data()
        if self.message_id >= 0:
            if self.held:
                _unlink_quietly(self.queue.disk.layout.hold(self.message_id))
            _unlink_quietly(self.queue.disk.layout.intd(self.message_id))
            _unlink_quietly(self.mess_path)
        self._unlock()

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        for name in ("_intd_fd", "_lock_fd"):
            fd = getattr(self, name, -1)
            if fd >= 0:
                os.close(fd)
