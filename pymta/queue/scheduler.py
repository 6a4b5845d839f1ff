# -*- test-case-name: tests.queue.test_scheduler -*-
"""
The queue manager (qmail-send's role): picks up committed messages, routes
their recipients, drives deliveries through the local and remote channels
under the concurrency limits, follows qmail's retry schedule, gathers
permanent failures into one bounce and removes finished messages.

Model (reference §1.6-§2.8): each message has up to two I{jobs}, one per
channel file (C{local/N/ID}, C{remote/N/ID}).  A job waits in a per-channel
priority queue keyed by its next attempt time.  When it is due and the
channel has a free slot, a I{pass} starts: the channel file is read, the
retry time C{birth + (isqrt(now - birth) + C)^2} is fixed, and the file's
C{T} records are handed to the channel in batches of up to
C{channel.max_recipients} recipients of one domain (one slot each).  Each result is checkpointed at
once - success and failure overwrite the record's C{T} with C{D}, failures
also go to C{bounce/ID} - so a restart never repeats a finished delivery.
When every batch of the pass is back, the job is closed: no C{T} left ->
the channel file is removed, else the job waits for its retry time.  A
message whose channel files are all gone is finished: its bounce (if any)
is injected, then the message's files are removed.

Only one pass per channel is open at a time, as in qmail; the work per
message is constant whatever the queue's length (heaps, no scans).

B{First attempt from memory.}  A message committed in this process
(L{notify} with its envelope) whose recipients all fit one delivery - one
local recipient, or the recipients of one remote domain - is tried once
straight from C{todo/ID}, without writing C{info}, C{local} or C{remote}
first: on success its files are removed (C{end msg}), which spares the
disk two file and two directory fsyncs per message.  The results are
logged as they come, as always.  When a delivery succeeded beside others
that did not (recipients of one remote domain), the message is
preprocessed at once, in this thread, and the results are written into
its channel file before anything else happens, just as a pass checkpoints
them; failures and deferrals go through the usual preprocessing in the
thread pool and are then recorded (failures into C{bounce/ID}, deferrals
on qmail's schedule), and a stop records whatever is left.  A crash
during the attempt leaves C{todo/ID}, so the next start redoes the
message: only the delivery that was in progress may happen twice, as in
qmail, and a crash between a failed first attempt and its preprocessing
repeats that attempt, which delivered nothing.  At most L{FIRST_ATTEMPT_BACKLOG} messages
wait in memory; more go the usual way, and so do waiting ones after a
reload (routing or limits may have changed).

Everything runs on the C{clock} given (a reactor or L{twisted.internet.task.Clock}),
file I/O is done synchronously in the reactor thread like qmail-send's own.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeAlias, cast

from twisted.application.service import Service
from twisted.internet import defer, task, threads
from twisted.internet.interfaces import IDelayedCall, IReactorFromThreads, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from pymta.address import safe_log
from pymta.control import ControlError, ControlReader
from pymta.interfaces import (
    DEFERRAL,
    FAILURE,
    SUCCESS,
    Channel,
    DeliveryJob,
    DeliveryResult,
    MessageSink,
)
from pymta.queue import bounce as bounces
from pymta.queue.layout import QueueLayout
from pymta.queue.disk import QueueDisk, queue_owner
from pymta.queue.preprocess import BatchResult, PreprocessLog, list_todo, preprocess_batch
from pymta.queue.retry import DYING_TEXT, SYSFAIL_DELAY, is_dying, next_retry
from pymta.queue.envelope import Envelope
from pymta.queue.routing import LOCAL, REMOTE, route_recipient, strip_virtual_prepend
from pymta.queue.spares import SparePool
from pymta.queue.syncing import QueueSync
from pymta.queue.sendfiles import (
    QueueFileError,
    TodoEnvelope,
    append_bounce,
    mark_done,
    quarantine_message,
    read_channel_file,
    read_info,
)

__all__ = ["Scheduler", "QmailLog", "CHANNELS", "REPORT_MAX", "JobView"]

CHANNELS = (LOCAL, REMOTE)

#: longest report text kept from a channel (qmail's REPORTMAX)
REPORT_MAX = 10000

#: how many todo entries are preprocessed (and fsynced together) per reactor turn
TODO_BATCH = 256

#: seconds between todo/ scans when no trigger arrives
TODO_SCAN_INTERVAL = 60

#: seconds between runs of the crash cleaner (qmail: 76431)
CLEANUP_INTERVAL = 76431

#: messages that may wait in memory for their first attempt (more are preprocessed as usual)
FIRST_ATTEMPT_BACKLOG = 1000


@dataclass(frozen=True)
class _Envelope:
    """An item for L{_unlink_all}: remove C{intd/ID} (into the spares) once C{todo/ID} is gone."""

    message_id: int


_Unlink: TypeAlias = "str | tuple[str, tuple[str, ...]] | _Envelope"


def _unlink_all(paths: list[_Unlink], mess_spares: "SparePool | None" = None,
                spares: "SparePool | None" = None, layout: QueueLayout | None = None) -> list[str]:
    """
    Unlink C{paths} (missing ones are fine); a C{(path, dirs)} item goes to
    C{mess_spares} instead when it has room (C{dirs}: where the message's
    other files were removed from); an L{_Envelope} removes a message's
    C{intd} file of C{layout} whose C{todo} name is already gone (into
    C{spares} when it has room).  Then both pools settle.  Returns the
    paths that could not be removed.
    """
    failed = []
    for item in paths:
        if isinstance(item, _Envelope):
            assert layout is not None
            intd = layout.intd(item.message_id)
            try:
                if spares is None or not spares.keep(intd, (layout.dir("todo"),)):
                    os.unlink(intd)
            except FileNotFoundError:
                pass
            except OSError:
                failed.append(intd)
            continue
        if isinstance(item, tuple):
            path, dirs = item
            try:
                if mess_spares is not None and mess_spares.keep(path, dirs):
                    continue
            except FileNotFoundError:
                continue
        else:
            path = item
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError:
            failed.append(path)
    for pool in (mess_spares, spares):
        if pool is not None:
            pool.settle()
    return failed


class _NotFirst(Exception):
    """This message gets no first attempt from memory: it is preprocessed as usual."""


class QmailLog:
    """
    qmail-send's log lines through twisted.logger: each line is one event whose
    formatted text is exactly the qmail line, with the line itself kept in the
    event's C{qmail_line} field.
    """

    def __init__(self, logger: Logger | None = None) -> None:
        self.logger = logger if logger is not None else Logger(namespace="pymta.send")

    def line(self, text: str) -> None:
        self.logger.info("{qmail_line}", qmail_line=text)

    def warning(self, text: str) -> None:
        self.logger.warn("{qmail_line}", qmail_line="warning: " + text)

    def alert(self, text: str) -> None:
        self.logger.error("{qmail_line}", qmail_line="alert: " + text)


@dataclass
class _Job:
    """One channel of one message: waiting for its attempt time, or in a pass."""

    message_id: int
    channel: str
    due: int
    heap_key: int = -1
    running: bool = False
    sender: str = ""
    retry: int = 0
    dying: bool = False
    #: undispatched T records of the open pass, grouped by recipient domain (one SMTP transaction each)
    pending: "OrderedDict[str, deque[tuple[int, str]]]" = field(default_factory=OrderedDict)
    in_flight: int = 0
    undone: int = 0
    hit_eof: bool = False


@dataclass
class _FirstAttempt:
    """A newly committed message tried once from memory (see the module's docstring)."""

    message_id: int
    channel: str
    sender: str
    #: routed recipients, all in one batch
    recipients: tuple[str, ...]
    since: int
    running: bool = False
    #: every recipient's delivery succeeded: the message is removed once the status line is out
    succeeded: bool = False
    #: (status, text) per recipient as logged (None: a mangled report), kept until they are recorded
    results: list[tuple[str | None, str]] = field(default_factory=list)


@dataclass(frozen=True)
class JobView:
    """A read-only description of one queued job (for C{pymta ctl queue})."""

    message_id: int
    channel: str
    due: int
    running: bool
    in_flight: int


class Scheduler(Service):
    """
    pymta-send's queue manager as a twisted.application service.

    @param layout: the queue.
    @param controls: the control reader (C{current} is read at each decision).
    @param channels: C{{"local": Channel, "remote": Channel}}.
    @param sink: where bounces are injected.
    @param clock: the reactor (anything providing C{IReactorTime}).
    @param cleaner: called with the layout at start and every
        L{CLEANUP_INTERVAL} s to remove crash leftovers, or None.
    @param stop_timeout: how long stopService waits for deliveries in flight.
    @param threadpool: where preprocessing (with its fsyncs) runs so the
        reactor stays free; None runs it in the reactor thread (tests with a
        Clock).  The scheduler starts and stops it.
    @param spares: a L{SparePool} shared with the queue writer: the
        envelope, info and channel files of finished messages go there for
        reuse instead of being deleted; None deletes them.
    @param mess_spares: a L{SparePool} shared with the queue writer for the
        message files of finished messages that never bounced (their ids
        come back, after L{SparePool.settle} made the removal of every
        other name of the old message durable); None deletes them.
    @param sync: how preprocessing makes a batch durable (control/queuesync,
        L{QueueSync}); None fsyncs every file and directory.
    """

    name = "pymta-send-scheduler"  # type: ignore[assignment]  # Twisted's Service leaves name unannotated, so None

    def __init__(
        self,
        layout: QueueLayout,
        controls: ControlReader,
        channels: Mapping[str, Channel],
        sink: MessageSink | None,
        clock: IReactorTime,
        *,
        cleaner: Callable[[QueueLayout], Any] | None = None,
        log: QmailLog | None = None,
        stop_timeout: float = 60.0,
        todo_scan_interval: float = TODO_SCAN_INTERVAL,
        threadpool: ThreadPool | None = None,
        spares: SparePool | None = None,
        mess_spares: SparePool | None = None,
        sync: QueueSync | None = None,
    ) -> None:
        missing = [c for c in CHANNELS if c not in channels]
        if missing:
            raise ValueError(f"no channel given for {', '.join(missing)}")
        self.layout = layout
        self.controls = controls
        self.channels = dict(channels)
        self.sink = sink
        self.clock = clock
        self.cleaner = cleaner
        self.log = log if log is not None else QmailLog()
        self.stop_timeout = stop_timeout
        self.todo_scan_interval = todo_scan_interval
        self.threadpool = threadpool
        self.spares = spares
        self.mess_spares = mess_spares
        self.sync = sync
        self._preprocessing = False
        self._owner: tuple[int, int] | None = None

        self.paused = False
        self.exiting = False
        self._jobs: dict[tuple[int, str], _Job] = {}
        self._waiting: dict[str, list[tuple[int, int, int]]] = {c: [] for c in CHANNELS}
        self._passes: dict[str, _Job | None] = {c: None for c in CHANNELS}
        self._used: dict[str, int] = {c: 0 for c in CHANNELS}
        self._todo: set[int] = set()
        #: messages committed in this process and not preprocessed yet: their envelope and
        #: size, so preprocessing need not read them back (L{preprocess_batch}'s C{known})
        self._fresh: dict[int, tuple[Envelope, int]] = {}
        #: ids waiting for a retry after a failure of the moment (preprocessing, removal)
        self._retrying: set[int] = set()
        #: the batch being preprocessed in the thread pool
        self._preprocessing_ids: set[int] = set()
        #: first attempts: waiting per channel, and every one by message id until it is settled
        self._first_waiting: dict[str, deque[_FirstAttempt]] = {c: deque() for c in CHANNELS}
        self._first: dict[int, _FirstAttempt] = {}
        #: first attempts that did not simply succeed, waiting for their preprocessing
        self._first_outcomes: dict[int, _FirstAttempt] = {}
        #: messages whose new/info lines a first attempt logged, not yet preprocessed
        self._first_logged: set[int] = set()
        self._done_queue: deque[int] = deque()
        self._finishing: set[int] = set()
        self._in_flight: set[defer.Deferred] = set()
        self._unlinks: list[_Unlink] = []
        self._unlinking = False
        self._delivery_ids = itertools.count(1)
        self._heap_keys = itertools.count()
        self._wake: IDelayedCall | None = None
        self._wake_at: float | None = None
        self._soon: IDelayedCall | None = None
        self._running = False
        self._rerun = False
        self._scan_requested = False
        self._loops: list[task.LoopingCall] = []
        self._later: set[IDelayedCall] = set()
        self._channels_started = False
        self.last_reload_error: str | None = None
        self.stats = {"delivered": 0, "failed": 0, "deferred": 0, "messages_done": 0, "bounces": 0, "first_attempts": 0}

    # ------------------------------------------------------------------ time

    def now(self) -> int:
        return int(self.clock.seconds())

    def _call_later(self, delay: float, f: Callable[..., Any], *args: Any) -> None:
        call: IDelayedCall

        def run() -> None:
            self._later.discard(call)
            f(*args)

        call = self.clock.callLater(delay, run)
        self._later.add(call)

    # --------------------------------------------------------------- service

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._start_channels()

    def _start_channels(self) -> None:
        """Call C{start()} on channels that have one (the local spawner wants root: twistd calls us first)."""
        if self._channels_started:
            return
        self._channels_started = True
        for name, channel in self.channels.items():
            start = getattr(channel, "start", None)
            if callable(start):
                try:
                    start()
                except Exception as e:
                    self.log.alert(f"cannot start the {name} channel: {e}")

    def startService(self) -> None:
        super().startService()
        if self.threadpool is not None and not self.threadpool.started:
            self.threadpool.start()
        self._start_channels()
        self.exiting = False
        self._jobs.clear()
        self._waiting = {c: [] for c in CHANNELS}
        self._passes = {c: None for c in CHANNELS}
        self._done_queue.clear()
        self._todo.clear()
        self._fresh.clear()
        self._retrying.clear()
        self._preprocessing = False
        self._owner = queue_owner(self.layout)
        if self.cleaner is not None:
            self._run_cleaner()
        self._resume_queue()
        self.status()
        for interval, f in ((self.todo_scan_interval, self.scan_todo), (CLEANUP_INTERVAL, self._run_cleaner)):
            if f is self._run_cleaner and self.cleaner is None:
                continue
            loop = task.LoopingCall(f)
            loop.clock = self.clock
            loop.start(interval, now=False)
            self._loops.append(loop)
        self.scan_todo()

    def stopService(self) -> "defer.Deferred[None]":
        super().stopService()
        self.exiting = True
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        self._channels_started = False
        for call in list(self._later):
            if call.active():
                call.cancel()
        self._later.clear()
        for attr in ("_wake", "_soon"):
            call = getattr(self, attr)
            if call is not None and call.active():
                call.cancel()
            setattr(self, attr, None)
        self._wake_at = None
        self.status()
        return self._drain().addCallback(self._finish_stop)

    def _drain(self) -> "defer.Deferred[None]":
        if not self._in_flight:
            return defer.succeed(None)
        waiting = defer.DeferredList(list(self._in_flight), consumeErrors=True)
        done: defer.Deferred[None] = defer.Deferred()

        def give_up() -> None:
            if not done.called:
                done.callback(None)

        timer = self.clock.callLater(self.stop_timeout, give_up)

        def finished(_: object) -> None:
            if timer.active():
                timer.cancel()
            if not done.called:
                done.callback(None)

        waiting.addBoth(finished)
        return done

    def _finish_stop(self, _: object) -> "defer.Deferred[None]":
        unrecorded = sorted(set(self._first_outcomes) - self._preprocessing_ids)
        if unrecorded:
            # first attempts whose failures or deferrals still wait for preprocessing
            self._guard("recording first attempts at exit", self._preprocess_here, unrecorded)
        if self._in_flight:
            self.log.warning(f"{len(self._in_flight)} deliveries still running at exit; they will be retried")
        now = self.now()
        for job in list(self._jobs.values()):
            if job.running:
                # results never came back (or the pass was open): retry at once next time
                due = now if (job.in_flight or job.pending) else job.retry
            else:
                due = job.due
            path = self.layout.channel(job.channel, job.message_id)
            try:
                os.utime(path, (due, due))
            except FileNotFoundError:
                pass
            except OSError:
                self.log.warning(f"unable to utime {self._rel(path)}; message will be retried too soon")
        stops = []
        for channel in self.channels.values():
            try:
                stops.append(defer.maybeDeferred(channel.stop))
            except Exception:
                pass
        if self.threadpool is not None and self.threadpool.started:
            self.threadpool.stop()
        for pool in (self.spares, self.mess_spares):
            if pool is not None:
                pool.clear()
        self.log.line("status: exiting")
        return defer.DeferredList(stops, consumeErrors=True).addCallback(lambda _: None)

    def _run_cleaner(self) -> None:
        assert self.cleaner is not None
        for pool in (self.spares, self.mess_spares):
            if pool is not None:
                # spares live in pid/: deleted here rather than reported as crash leftovers
                pool.clear()
        try:
            removed = self.cleaner(self.layout)
        except Exception as e:
            self.log.warning(f"queue cleanup failed: {e}")
            return
        for path in removed or ():
            self.log.logger.info("cleanup: removed crash leftover {path}", path=self._rel(path))

    # ---------------------------------------------------------------- control

    def status(self) -> str:
        """Log and return qmail's C{status:} line."""
        line = self.status_text()
        self.log.line(line)
        return line

    def status_text(self) -> str:
        c = self.controls.current
        line = (
            f"status: local {self._used[LOCAL]}/{c.concurrencylocal}"
            f" remote {self._used[REMOTE]}/{c.concurrencyremote}"
        )
        if self.exiting:
            line += " exitasap"
        return line

    def reload(self) -> bool:
        """Re-read the control files (SIGHUP); malformed files keep the old values."""
        try:
            self.controls.reload()
        except (ControlError, OSError) as e:
            self.last_reload_error = str(e)
            self.log.alert(f"unable to reread controls: {e}")
            return False
        self.last_reload_error = None
        self._requeue_waiting_first()
        self._kick()
        return True

    def run_all_now(self) -> None:
        """Every waiting job is due now (SIGALRM / C{pymta ctl doqueue})."""
        now = self.now()
        for channel in CHANNELS:
            heap = []
            for job in self._jobs.values():
                if job.channel == channel and not job.running:
                    job.due = min(job.due, now)
                    job.heap_key = next(self._heap_keys)
                    heap.append((job.due, job.heap_key, job.message_id))
            heapq.heapify(heap)
            self._waiting[channel] = heap
        self.scan_todo()
        self._kick()

    def pause(self) -> None:
        """Start no new deliveries until L{cont}."""
        self.paused = True

    def cont(self) -> None:
        self.paused = False
        self._kick()

    def jobs(self) -> list[JobView]:
        """Every job the scheduler holds (first attempts included), by message id."""
        views = [JobView(j.message_id, j.channel, j.due, j.running, j.in_flight) for j in self._jobs.values()]
        views += [JobView(f.message_id, f.channel, f.since, f.running, int(f.running)) for f in self._first.values()]
        return sorted(views, key=lambda v: (v.message_id, v.channel))

    def counts(self) -> dict[str, int]:
        c = self.controls.current
        waiting = sum(1 for j in self._jobs.values() if not j.running)
        first_waiting = sum(1 for f in self._first.values() if not f.running)
        messages = {j.message_id for j in self._jobs.values()} | self._finishing | set(self._done_queue) | set(self._first)
        return {
            "messages": len(messages),
            "jobs_waiting": waiting + first_waiting,
            "jobs_running": len(self._jobs) - waiting + len(self._first) - first_waiting,
            "local_used": self._used[LOCAL],
            "local_limit": c.concurrencylocal,
            "remote_used": self._used[REMOTE],
            "remote_limit": c.concurrencyremote,
            "todo": len(self._todo),
            "paused": int(self.paused),
            **self.stats,
        }

    # ----------------------------------------------------------------- pickup

    def notify(self, message_id: int, envelope: Envelope | None = None, size: int = 0) -> None:
        """
        A message was committed to todo/ in this process: pick it up now.
        With its C{envelope} (and the size of its file, for the log) it may
        be tried at once from memory (see the module's docstring).
        """
        if self.exiting:
            return
        if envelope is None or self._known_elsewhere(message_id):
            # a message id can come back (recycled inodes): never two lives of one id at once; and a
            # todo/ scan may have raced the commit's notification and handle this message already
            self._todo.add(message_id)
        else:
            # committed just now and nowhere else in the scheduler
            self._fresh[message_id] = (envelope, size)
            if not self._guard(f"first attempt of msg {message_id}", self._plan_first, message_id, envelope, size):
                self._todo.add(message_id)
        self._kick()

    def _known_elsewhere(self, message_id: int) -> bool:
        """Whether the scheduler handles C{message_id} already (waiting, preprocessing, delivering, finishing)."""
        return (
            message_id in self._first
            or message_id in self._first_outcomes
            or message_id in self._todo
            or message_id in self._preprocessing_ids
            or message_id in self._finishing
            or message_id in self._done_queue
            or message_id in self._retrying
            or any((message_id, c) in self._jobs for c in CHANNELS)
        )

    def _plan_first(self, message_id: int, envelope: Envelope, size: int) -> None:
        """
        Queue a first attempt from memory for a message the scheduler knows
        nowhere else (L{notify} checks), or raise L{_NotFirst} when it must
        go the usual way.
        """
        if len(self._first) >= FIRST_ATTEMPT_BACKLOG or not envelope.recipients:
            raise _NotFirst()
        controls = self.controls.current
        routes = [route_recipient(r, controls) for r in envelope.recipients]
        channel = routes[0].channel
        domains = {r.address[r.address.rfind("@") + 1 :].lower() for r in routes}
        if any(r.channel != channel for r in routes) or len(domains) != 1 or len(routes) > self._batch_size(
            channel, envelope.sender
        ):
            raise _NotFirst()
        if self._capacity(channel) <= 0:
            # deliveries on this channel are switched off: no slot will come, keep nothing in memory
            raise _NotFirst()
        self._log_new(message_id)
        self._log_info(message_id, envelope, size)
        self._first_logged.add(message_id)
        first = _FirstAttempt(message_id, channel, envelope.sender, tuple(r.address for r in routes), self.now())
        self._first[message_id] = first
        self._first_waiting[channel].append(first)

    def _batch_size(self, channel: str, sender: str) -> int:
        """Recipients per delivery on C{channel} (one for a VERP sender: each gets its own sender)."""
        if sender.endswith(bounces.VERP_SUFFIX):
            return 1
        return max(1, int(getattr(self.channels[channel], "max_recipients", 1) or 1))

    def scan_todo(self) -> None:
        """Look for work in todo/ soon (trigger pulled, periodic scan); many requests make one scan."""
        if self.exiting:
            return
        self._scan_requested = True
        self._kick()

    def _scan_todo_now(self) -> None:
        try:
            self._todo.update(i for i in list_todo(self.layout) if i not in self._first)
        except OSError as e:
            self.log.warning(f"unable to read todo/: {e.strerror}")

    def _preprocess(self) -> None:
        """Preprocess one batch of todo/ - here, or in the thread pool when there is one."""
        if self._preprocessing:
            return
        batch: list[int] = []
        while self._todo and len(batch) < TODO_BATCH:
            message_id = self._todo.pop()
            if message_id not in self._first:
                batch.append(message_id)
        if not batch:
            return
        batch.sort()
        controls = self.controls.current
        now = self.now()
        if self.threadpool is None:
            self._preprocess_here(batch)
            return
        self._preprocessing = True
        self._preprocessing_ids = set(batch)
        reactor = cast(IReactorFromThreads, self.clock)  # a thread pool comes with a real reactor
        d = threads.deferToThreadPool(
            reactor, self.threadpool, preprocess_batch, self._disk(), batch, controls, now=now,
            known=self._take_fresh(batch),
        )
        self._in_flight.add(d)

        def done(result: object) -> None:
            self._in_flight.discard(d)
            self._preprocessing = False
            self._preprocessing_ids = set()
            if isinstance(result, Failure):
                self.log.alert(f"preprocessing failed: {result.getErrorMessage()}; will try again later")
                for message_id in batch:
                    self._retry_notify(message_id)
            else:
                self._guard("preprocessing results", self._apply_batch, result, False, batch)
            self._kick()

        d.addBoth(done)

    def _preprocess_here(self, batch: list[int]) -> None:
        """Preprocess C{batch} in this (the reactor's) thread and apply the result."""
        result = preprocess_batch(
            self._disk(), batch, self.controls.current, log=PreprocessLog(self._log_new_once, self._log_info_once),
            now=self.now(), known=self._take_fresh(batch),
        )
        self._apply_batch(result, True, batch)

    def _disk(self) -> QueueDisk:
        """The queue disk preprocessing writes through (no sync policy given: an fsync per file and directory)."""
        sync = self.sync if self.sync is not None else QueueSync(self.layout.queuedir)
        return QueueDisk(self.layout, sync, self._owner, self.spares, self.mess_spares)

    def _take_fresh(self, batch: list[int]) -> dict[int, tuple[Envelope, int]]:
        """The known envelopes of C{batch}'s fresh messages, forgotten here: a retry reads them from disk."""
        fresh = self._fresh
        return {i: fresh.pop(i) for i in batch if i in fresh}

    def _apply_batch(self, result: BatchResult, logged: bool, batch: list[int]) -> None:
        """Quarantine, retry or schedule what a preprocessing batch produced."""
        handled = {i for i, _ in result.corrupt} | {i for i, _ in result.trouble} | {p.message_id for p in result.done}
        for message_id in batch:
            if message_id not in handled:
                # todo/ID was gone: nothing of a first attempt may outlive it (its id can come back)
                self._first_outcomes.pop(message_id, None)
                self._first_logged.discard(message_id)
        for message_id, reason in result.corrupt:
            self._quarantine(message_id, reason)
        for message_id, reason in result.trouble:
            self.log.warning(f"trouble with todo/{message_id}: {reason}; will try again later")
            self._retry_notify(message_id)
        now = self.now()
        for item in result.done:
            if not logged:
                self._log_new_once(item.message_id)
                self._log_info_once(item.message_id, item.envelope, item.size)
            self._forget(item.message_id)
            self._first_logged.discard(item.message_id)
            first = self._first_outcomes.pop(item.message_id, None)
            if not item.channels:
                self._done_queue.append(item.message_id)
            for channel in item.channels:
                if first is not None and first.channel == channel:
                    recorded = self._guard(f"recording the first attempt of msg {item.message_id}",
                                           self._record_first, first, now)
                    if recorded or (item.message_id, channel) in self._jobs:
                        continue
                self._add_job(item.message_id, channel, now)

    def _log_new_once(self, message_id: int) -> None:
        if message_id not in self._first_logged:  # a first attempt already logged it
            self._log_new(message_id)

    def _log_info_once(self, message_id: int, envelope: TodoEnvelope, size: int) -> None:
        if message_id not in self._first_logged:
            self._log_info(message_id, envelope, size)

    def _log_new(self, message_id: int) -> None:
        self.log.line(f"new msg {message_id}")

    def _log_info(self, message_id: int, envelope: TodoEnvelope, size: int) -> None:
        self.log.line(
            f"info msg {message_id}: bytes {size} from <{safe_log(envelope.sender)}>"
            f" qp {envelope.pid} uid {envelope.uid}"
        )

    def _resume_queue(self) -> None:
        """At start: every preprocessed message goes back on its schedule (mtime of its channel files)."""
        try:
            todo = set(list_todo(self.layout))
        except OSError:
            todo = set()
        self._todo.update(todo)
        info_top = self.layout.dir("info")
        for n in range(self.layout.split):
            try:
                names = os.listdir(os.path.join(info_top, str(n)))
            except OSError as e:
                self.log.warning(f"unable to read info/{n}: {e.strerror}")
                continue
            for name in names:
                if name.isdigit() and int(name) not in todo:
                    self._resume_message(int(name))

    def _resume_message(self, message_id: int) -> None:
        found = False
        for channel in CHANNELS:
            try:
                mtime = int(os.stat(self.layout.channel(channel, message_id)).st_mtime)
            except FileNotFoundError:
                continue
            except OSError as e:
                self.log.warning(f"unable to stat {channel}/{message_id}: {e.strerror}; will try again later")
                self._call_later(SYSFAIL_DELAY, self._resume_message, message_id)
                return
            found = True
            self._add_job(message_id, channel, mtime)
        if not found:
            self._done_queue.append(message_id)

    # --------------------------------------------------------------- the loop

    def _kick(self) -> None:
        """Run the main loop soon (coalesced; never re-entered)."""
        if self.exiting:
            return
        if self._running:
            self._rerun = True
            return
        if self._soon is None or not self._soon.active():
            self._soon = self.clock.callLater(0, self._run)

    def _run(self) -> None:
        self._soon = None
        if self._running:
            self._rerun = True
            return
        self._running = True
        preprocessed = False
        try:
            self._rerun = True
            while self._rerun and not self.exiting:
                self._rerun = False
                if self._scan_requested:
                    self._scan_requested = False
                    self._guard("todo scan", self._scan_todo_now)
                if self._todo and not preprocessed and not self._preprocessing:
                    # one batch per reactor turn: a large backlog must not starve other protocols
                    preprocessed = True
                    self._guard("preprocessing", self._preprocess)
                while self._done_queue:
                    message_id = self._done_queue.popleft()
                    if not self._guard(f"finishing msg {message_id}", self._message_done, message_id):
                        self._retry_done(message_id)
                if not self.paused:
                    for channel in CHANNELS:
                        self._guard(f"{channel} dispatch", self._dispatch, channel)
        finally:
            self._running = False
        if self._todo and not self._preprocessing:
            self._kick()
        self._set_wake()

    def _guard(self, what: str, f: Callable[..., Any], *args: Any) -> bool:
        """Run one step of the loop; an unexpected error is logged, never kills the service."""
        try:
            f(*args)
        except _NotFirst:
            return False
        except Exception as e:
            self.log.alert(f"internal error in {what}: {e!r}; continuing")
            self.log.logger.failure("pymta-send: internal error in {what}", what=what)
            return False
        return True

    def _capacity(self, channel: str) -> int:
        c = self.controls.current
        return c.concurrencylocal if channel == LOCAL else c.concurrencyremote

    def _dispatch(self, channel: str) -> None:
        heap = self._waiting[channel]
        now = self.now()
        while self._used[channel] < self._capacity(channel) and not self.exiting and not self.paused:
            job = self._passes[channel]
            if job is not None:
                if job.pending:
                    self._start_batch(job)
                    continue
                self._passes[channel] = None
                job.hit_eof = True
                if job.in_flight == 0:
                    self._close_job(job)
                continue
            top = self._next_waiting(channel)
            if top is not None and top[0] <= now:
                heapq.heappop(heap)
                self._open_pass(top[1], now)
                continue
            if not self._first_waiting[channel]:
                return
            self._start_first(self._first_waiting[channel].popleft())

    def _next_waiting(self, channel: str) -> tuple[int, _Job] | None:
        """The waiting job of C{channel} due first, as C{(due, job)}; stale heap entries are dropped."""
        heap = self._waiting[channel]
        while heap:
            due, key, message_id = heap[0]
            job = self._jobs.get((message_id, channel))
            if job is None or job.running or job.heap_key != key:
                heapq.heappop(heap)
                continue
            return due, job
        return None

    def _set_wake(self) -> None:
        if self.exiting:
            return
        soonest: int | None = None
        for channel in CHANNELS:
            if self._used[channel] >= self._capacity(channel) or self.paused:
                continue
            top = self._next_waiting(channel)
            if top is not None and (soonest is None or top[0] < soonest):
                soonest = top[0]
        if soonest is None:
            if self._wake is not None and self._wake.active():
                self._wake.cancel()
            self._wake = None
            self._wake_at = None
            return
        if self._wake is not None and self._wake.active() and self._wake_at == soonest:
            return
        if self._wake is not None and self._wake.active():
            self._wake.cancel()
        self._wake_at = soonest
        self._wake = self.clock.callLater(max(0.0, soonest - self.clock.seconds()), self._woken)

    def _woken(self) -> None:
        self._wake = None
        self._wake_at = None
        self._run()

    # ------------------------------------------------------------------- jobs

    def _add_job(self, message_id: int, channel: str, due: int) -> None:
        job = _Job(message_id, channel, due)
        self._jobs[(message_id, channel)] = job
        self._schedule(job, due)

    def _schedule(self, job: _Job, due: int) -> None:
        job.running = False
        job.due = due
        job.heap_key = next(self._heap_keys)
        heapq.heappush(self._waiting[job.channel], (due, job.heap_key, job.message_id))

    def _forget(self, message_id: int) -> None:
        for channel in CHANNELS:
            job = self._jobs.pop((message_id, channel), None)
            if job is not None and self._passes[channel] is job:
                self._passes[channel] = None

    def _rel(self, path: str) -> str:
        return os.path.relpath(path, self.layout.queuedir)

    def _open_pass(self, job: _Job, now: int) -> None:
        path = self.layout.channel(job.channel, job.message_id)
        try:
            records = read_channel_file(path)
            sender, birth = read_info(self.layout, job.message_id)
            with open(self.layout.mess(job.message_id), "rb"):
                pass
        except FileNotFoundError as e:
            if e.filename == path:
                # the file went away under us (message removed or quarantined)
                self._jobs.pop((job.message_id, job.channel), None)
                return
            if e.filename == self.layout.mess(job.message_id):
                # nothing can ever deliver it; keep what is left for the administrator
                self._quarantine(job.message_id, "the message file is missing")
                return
            self._trouble_opening(job, e, now)
            return
        except QueueFileError as e:
            self._quarantine(job.message_id, f"{self._rel(path)}: {e}")
            return
        except OSError as e:
            self._trouble_opening(job, e, now)
            return
        controls = self.controls.current
        job.running = True
        job.sender = sender
        job.retry = next_retry(birth, now, job.channel)
        job.dying = is_dying(birth, now, controls.queuelifetime)
        job.pending = OrderedDict()
        job.undone = 0
        for record in records:
            if not record.done:
                domain = record.address[record.address.rfind("@") + 1 :].lower()
                job.pending.setdefault(domain, deque()).append((record.offset, record.address))
                job.undone += 1
        job.in_flight = 0
        job.hit_eof = False
        self._passes[job.channel] = job

    def _trouble_opening(self, job: _Job, error: OSError, now: int) -> None:
        name = self._rel(error.filename) if isinstance(error.filename, str) else "a queue file"
        self.log.warning(f"trouble opening {name}; will try again later")
        self._schedule(job, now + SYSFAIL_DELAY)

    def _start_batch(self, job: _Job) -> None:
        size = self._batch_size(job.channel, job.sender)
        domain, group = next(iter(job.pending.items()))
        batch = [group.popleft() for _ in range(min(size, len(group)))]
        if not group:
            del job.pending[domain]
        job.in_flight += 1

        def finished(numbers: list[int], results: list[Any]) -> None:
            self._delivered(job, batch, numbers, results)

        self._launch(job.channel, job.message_id, job.sender, [a for _, a in batch], finished)

    def _launch(self, channel_name: str, message_id: int, sender: str, recipients: list[str],
                finished: Callable[[list[int], list[Any]], None]) -> None:
        """
        Start one delivery of C{message_id} to C{recipients} (one batch) on a
        slot of C{channel_name}; C{finished(numbers, results)} gets the
        delivery numbers and one result per recipient (a failing channel
        counts as a deferral; a malformed answer gives C{None}s).
        """
        channel = self.channels[channel_name]
        if len(recipients) == 1:
            sender = bounces.verp_sender(sender, recipients[0])
        numbers = []
        for address in recipients:
            number = next(self._delivery_ids)
            numbers.append(number)
            self.log.line(f"starting delivery {number}: msg {message_id} to {channel_name} {safe_log(address)}")
        self._used[channel_name] += 1
        self.status()
        delivery = DeliveryJob(
            message_id=message_id,
            message_path=self.layout.mess(message_id),
            sender=sender,
            recipients=tuple(recipients),
        )
        d = defer.maybeDeferred(channel.deliver, delivery)
        self._in_flight.add(d)

        def done(result: object) -> None:
            self._in_flight.discard(d)
            if isinstance(result, Failure):
                text = f"delivery channel failed: {result.getErrorMessage()}"
                results: list[Any] = [DeliveryResult(DEFERRAL, text)] * len(recipients)
            elif isinstance(result, (list, tuple)) and len(result) == len(recipients):
                results = list(result)
            else:
                results = [None] * len(recipients)
            finished(numbers, results)

        d.addBoth(done)

    def _delivered(self, job: _Job, batch: list[tuple[int, str]], numbers: list[int], results: list[Any]) -> None:
        path = self.layout.channel(job.channel, job.message_id)
        try:
            for (offset, address), number, res in zip(batch, numbers, results):
                # a recipient whose result cannot be recorded stays T: it is tried again later
                self._guard(f"recording delivery {number}", self._record, job, path, offset, address, number, res)
        finally:
            job.in_flight -= 1
            self._used[job.channel] -= 1
            self.status()
            if job.hit_eof and job.in_flight == 0 and self._passes[job.channel] is not job:
                self._guard(f"closing msg {job.message_id} {job.channel}", self._close_job, job)
            self._kick()

    def _record(self, job: _Job, path: str, offset: int, address: str, number: int, res: Any) -> None:
        status, text = self._judge(number, res, job.dying)
        self._persist(job, path, offset, address, status, text)

    def _judge(self, number: int, res: Any, dying: bool) -> tuple[str | None, str]:
        """Log delivery C{number}'s result and count it; C{(status, text)}, status None for a mangled report."""
        status = getattr(res, "status", None)
        text = getattr(res, "text", None)
        if status not in (SUCCESS, DEFERRAL, FAILURE) or not isinstance(text, str):
            self.log.line(f"delivery {number}: report mangled, will defer")
            self.stats["deferred"] += 1
            return None, ""
        text = text[:REPORT_MAX]
        if status == DEFERRAL and dying:
            status = FAILURE
            if text and not text.endswith("\n"):
                text += "\n"
            text += DYING_TEXT
        if status == SUCCESS:
            self.log.line(f"delivery {number}: success: {safe_log(text)}")
            self.stats["delivered"] += 1
        elif status == DEFERRAL:
            self.log.line(f"delivery {number}: deferral: {safe_log(text)}")
            self.stats["deferred"] += 1
        else:
            self.log.line(f"delivery {number}: failure: {safe_log(text)}")
            self.stats["failed"] += 1
        return status, text

    def _persist(self, job: _Job, path: str, offset: int, address: str, status: str | None, text: str) -> None:
        """Checkpoint one judged result in the channel file (and the bounce file for a failure)."""
        if status == SUCCESS:
            self._mark_done(job, path, offset)
        elif status == FAILURE:
            recipient = strip_virtual_prepend(address, self.controls.current)
            try:
                append_bounce(self.layout, job.message_id, bounces.bounce_entry(recipient, text), self._owner)
            except OSError as e:
                # not marking it done keeps the failure: it is tried (and fails) again later
                self.log.alert(f"unable to append to bounce message: {e.strerror}; will try again later")
                return
            self._mark_done(job, path, offset)

    def _mark_done(self, job: _Job, path: str, offset: int) -> None:
        try:
            mark_done(path, offset)
        except OSError:
            self.log.warning(f"trouble marking {self._rel(path)}; message will be delivered twice!")
            return
        job.undone -= 1

    def _close_job(self, job: _Job) -> None:
        key = (job.message_id, job.channel)
        if self._jobs.get(key) is not job:
            return
        now = self.now()
        if job.undone > 0:
            self._schedule(job, job.retry)
            return
        path = self.layout.channel(job.channel, job.message_id)
        try:
            self._delete(path)
        except FileNotFoundError:
            pass
        except OSError:
            self.log.warning(f"unable to unlink {self._rel(path)}; will try again later")
            self._schedule(job, now + SYSFAIL_DELAY)
            return
        del self._jobs[key]
        other = REMOTE if job.channel == LOCAL else LOCAL
        if (job.message_id, other) in self._jobs:
            return
        if os.path.exists(self.layout.channel(other, job.message_id)):
            return
        self._done_queue.append(job.message_id)
        self._kick()

    # ------------------------------------------------ first attempts (memory)

    def _start_first(self, first: _FirstAttempt) -> None:
        if self._first.get(first.message_id) is not first:
            return
        first.running = True

        def finished(numbers: list[int], results: list[Any]) -> None:
            try:
                self._guard(f"first attempt of msg {first.message_id}", self._first_done, first, numbers, results)
            finally:
                self._used[first.channel] -= 1
                self.status()
                if first.succeeded:
                    self._guard(f"finishing msg {first.message_id}", self._remove_first, first.message_id)
                self._kick()

        self._launch(first.channel, first.message_id, first.sender, list(first.recipients), finished)

    def _first_done(self, first: _FirstAttempt, numbers: list[int], results: list[Any]) -> None:
        del self._first[first.message_id]
        self.stats["first_attempts"] += 1
        dying = is_dying(first.since, self.now(), self.controls.current.queuelifetime)
        first.results = [self._judge(number, res, dying) for number, res in zip(numbers, results)]
        statuses = {status for status, _ in first.results}
        if statuses == {SUCCESS}:
            first.succeeded = True
            return
        self._first_outcomes[first.message_id] = first
        if SUCCESS in statuses or self.exiting:
            # a delivery succeeded and others did not: a crash must not repeat it, so it goes on disk
            # now, as a pass's checkpoint would (and at a stop nothing is left for later)
            self._preprocess_here([first.message_id])
        else:
            # failures and deferrals wait for the usual preprocessing (off this thread: a flood of
            # mail to unknown users must not stall the reactor on fsyncs); a crash meanwhile
            # repeats an attempt that delivered nothing
            self._todo.add(first.message_id)

    def _requeue_waiting_first(self) -> None:
        """First attempts not started yet go the usual way (after a reload: routing or limits may differ)."""
        for channel in CHANNELS:
            waiting, self._first_waiting[channel] = self._first_waiting[channel], deque()
            for first in waiting:
                if first.running:
                    self._first_waiting[channel].append(first)
                    continue
                if self._first.get(first.message_id) is first:
                    del self._first[first.message_id]
                    self._todo.add(first.message_id)

    def _remove_first(self, message_id: int) -> None:
        """
        Finish a message that never left todo/: C{todo/ID} is removed at once
        (what marking the recipient done is for a preprocessed message), the
        envelope and the message file later with the other unlinks.
        """
        layout = self.layout
        self._first_logged.discard(message_id)
        self._fresh.pop(message_id, None)
        try:
            os.unlink(layout.todo(message_id))
        except FileNotFoundError:
            # someone else finished it: its id may already name another message's files
            self.log.warning(f"todo/{message_id} vanished during its first delivery; leaving its files alone")
            return
        except OSError as e:
            # left alone: the next todo/ scan delivers it again, as qmail does when it cannot mark a delivery
            self.log.warning(f"unable to unlink todo/{message_id}: {e.strerror}; message will be delivered twice!")
            return
        self.log.line(f"end msg {message_id}")
        self.stats["messages_done"] += 1
        mess_file = layout.mess(message_id)
        mess: str | tuple[str, tuple[str, ...]] = mess_file
        if self.mess_spares is not None:
            mess = (mess_file, (os.path.dirname(layout.intd(message_id)), layout.dir("todo")))
        self._unlink_later(_Envelope(message_id), mess)

    def _record_first(self, first: _FirstAttempt, now: int) -> None:
        """
        A preprocessed message's first attempt did not simply succeed: record
        its results in the channel file as a pass would have, then schedule
        or close the job.
        """
        message_id, channel = first.message_id, first.channel
        job = _Job(message_id, channel, now)
        self._jobs[(message_id, channel)] = job
        self._schedule(job, now)  # should anything below fail, the message is tried again
        path = self.layout.channel(channel, message_id)
        try:
            records = read_channel_file(path)
            sender, birth = read_info(self.layout, message_id)
        except (OSError, QueueFileError):
            return  # the pass will find out and tell
        job.sender = sender
        job.retry = next_retry(birth, now, channel)
        job.dying = is_dying(birth, now, self.controls.current.queuelifetime)
        job.undone = sum(1 for r in records if not r.done)
        outcomes: dict[str, deque[tuple[str | None, str]]] = {}
        for address, outcome in zip(first.recipients, first.results):
            outcomes.setdefault(address, deque()).append(outcome)
        for record in records:
            waiting = outcomes.get(record.address)
            if record.done or not waiting:
                continue
            status, text = waiting.popleft()
            self._guard(f"recording the first attempt of msg {message_id}", self._persist, job, path, record.offset,
                        record.address, status, text)
        if job.undone == 0:
            self._close_job(job)
        else:
            self._schedule(job, job.retry)

    # -------------------------------------------------------- finishing off

    def _message_done(self, message_id: int) -> None:
        """No recipient left: inject the bounce if any, then remove the message."""
        if message_id in self._finishing:
            return
        if any((message_id, c) in self._jobs for c in CHANNELS):
            return
        layout = self.layout
        for path in (layout.local(message_id), layout.remote(message_id), layout.todo(message_id)):
            if os.path.exists(path):
                return
        try:
            sender, _ = read_info(layout, message_id)
        except FileNotFoundError:
            return
        except QueueFileError as e:
            self._quarantine(message_id, f"info/{layout.subdir(message_id)}/{message_id}: {e}")
            return
        except OSError as e:
            self.log.warning(f"unable to read info/{message_id}: {e.strerror}; will try again later")
            self._retry_done(message_id)
            return
        if not os.path.exists(layout.bounce(message_id)):
            self._remove_message(message_id, recyclable=True)
            return
        envelope = bounces.bounce_envelope(sender, self.controls.current)
        if envelope is not None and not os.path.exists(layout.mess(message_id)):
            self._quarantine(message_id, "the message file is missing; the bounce cannot quote it")
            return
        if envelope is None:
            self.log.line(f"triple bounce: discarding bounce/{message_id}")
            self._bounce_sent(message_id)
            return
        self._finishing.add(message_id)
        d = self._inject_bounce(message_id, envelope)
        self._in_flight.add(d)

        def injected(qp: int) -> None:
            self.log.line(f"bounce msg {message_id} qp {qp}")
            self.stats["bounces"] += 1
            self._finishing.discard(message_id)
            self._bounce_sent(message_id)

        def failed(reason: Failure) -> None:
            self._finishing.discard(message_id)
            self.log.warning("trouble injecting bounce message, will try later")
            self._retry_done(message_id)

        def settled(result: object) -> object:
            self._in_flight.discard(d)
            return result

        d.addBoth(settled)
        d.addCallbacks(injected, failed)

    def _inject_bounce(self, message_id: int, envelope: bounces.BounceEnvelope) -> "defer.Deferred[int]":
        if self.sink is None:
            return defer.fail(RuntimeError("no message sink for bounces"))
        writer = None
        try:
            writer = self.sink.open_message(
                envelope.sender, [envelope.recipient], origin="for bounce", uid=os.getuid(), pid=os.getpid()
            )
            with open(self.layout.bounce(message_id), "rb") as failures, open(self.layout.mess(message_id), "rb") as mess:
                bounces.compose_bounce(writer.write, envelope, self.controls.current, failures, mess, self.clock.seconds())
            d = writer.finish()
        except Exception:
            if writer is not None:
                try:
                    writer.abort()
                except Exception:
                    pass
            return defer.fail()
        return d.addCallback(lambda receipt: receipt.qp)

    def _bounce_sent(self, message_id: int) -> None:
        try:
            os.unlink(self.layout.bounce(message_id))
        except FileNotFoundError:
            pass
        except OSError as e:
            self.log.warning(f"unable to unlink bounce/{message_id}: {e.strerror}")
            self._retry_done(message_id)
            return
        self._remove_message(message_id)

    def _retry_done(self, message_id: int) -> None:
        if not self.exiting:
            self._retrying.add(message_id)
            self._call_later(SYSFAIL_DELAY, self._queue_done, message_id)

    def _queue_done(self, message_id: int) -> None:
        self._retrying.discard(message_id)
        self._done_queue.append(message_id)
        self._kick()

    def _retry_notify(self, message_id: int) -> None:
        """Pick C{message_id} up again after L{SYSFAIL_DELAY} (a preprocessing that failed for now)."""
        self._retrying.add(message_id)
        self._call_later(SYSFAIL_DELAY, self._notify_again, message_id)

    def _notify_again(self, message_id: int) -> None:
        self._retrying.discard(message_id)
        self.notify(message_id)

    def _remove_message(self, message_id: int, recyclable: bool = False) -> None:
        layout = self.layout
        self.log.line(f"end msg {message_id}")
        try:
            self._delete(layout.info(message_id))
        except FileNotFoundError:
            pass
        except OSError as e:
            self.log.warning(f"unable to unlink info/{message_id}: {e.strerror}; will try again later")
            self._retry_done(message_id)
            return
        mess_file = layout.mess(message_id)
        mess: str | tuple[str, tuple[str, ...]] = mess_file
        if recyclable and self.mess_spares is not None:
            # its id may come back once every other name of this message is durably gone
            # (a removed bounce/ file is not, hence only messages that never had one)
            dirs = tuple(os.path.dirname(p) for p in (layout.info(message_id), layout.local(message_id),
                                                       layout.remote(message_id), layout.intd(message_id),
                                                       layout.todo(message_id)))
            mess = (mess_file, dirs)
        self._unlink_later(layout.intd(message_id), mess)
        self.stats["messages_done"] += 1

    def _unlink_later(self, *paths: _Unlink) -> None:
        """
        Unlink the last files of finished messages - in the thread pool when
        there is one, many at a time: freeing a message file's inode and
        blocks is the most expensive call the loop would otherwise make.
        Nothing refers to them any more (a crash first leaves them to the
        cleaner); their inode numbers cannot be reused until they are gone.
        """
        self._unlinks.extend(paths)
        if self.threadpool is None:
            self._report_unlinks(_unlink_all(self._take_unlinks(), self.mess_spares, self.spares, self.layout))
        elif not self._unlinking:
            self._unlinking = True
            batch = self._take_unlinks()
            reactor = cast(IReactorFromThreads, self.clock)  # a thread pool comes with a real reactor
            d = threads.deferToThreadPool(reactor, self.threadpool, _unlink_all, batch, self.mess_spares, self.spares,
                                          self.layout)
            self._in_flight.add(d)

            def done(result: list[str] | Failure) -> None:
                self._in_flight.discard(d)
                self._unlinking = False
                if isinstance(result, Failure):
                    self.log.warning(f"unable to clean up finished messages: {result.getErrorMessage()}")
                else:
                    self._report_unlinks(result)
                if self._unlinks and not self.exiting:
                    self._unlink_later()
                elif self._unlinks:
                    self._report_unlinks(_unlink_all(self._take_unlinks(), self.mess_spares, self.spares, self.layout))

            d.addBoth(done)

    def _take_unlinks(self) -> list[_Unlink]:
        batch, self._unlinks = self._unlinks, []
        return batch

    def _report_unlinks(self, failed: list[str]) -> None:
        for path in failed:
            self.log.warning(f"unable to clean up {self._rel(path)}")

    def _delete(self, path: str) -> None:
        """Unlink a small queue file (not a message file): into the spares when there are some."""
        if self.spares is None:
            os.unlink(path)
        else:
            self.spares.remove(path)

    def _quarantine(self, message_id: int, reason: str) -> None:
        self._forget(message_id)
        self._first_outcomes.pop(message_id, None)
        self._first_logged.discard(message_id)
        try:
            where = quarantine_message(self.layout, message_id)
        except OSError as e:
            self.log.alert(f"unable to quarantine msg {message_id} ({reason}): {e.strerror}")
            return
        self.log.warning(f"msg {message_id} quarantined in {self._rel(where)}: {reason}")
