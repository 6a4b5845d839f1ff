# -*- test-case-name: tests.queue.test_scheduler -*-
"""
The queue manager (qmail-send's role): picks up committed messages, routes their recipients,
drives deliveries through the local and remote channels under the concurrency limits, follows
qmail's retry schedule, gathers permanent failures into one bounce and removes finished messages.

Where each message stands is one L{MessageState} in L{Scheduler.messages}; the L{Scheduler} moves
it from stage to stage and its collaborators do one step each and say how it went:
L{plan_first_attempt}, L{judge}, L{Checkpoint}, L{Finisher}, L{BatchedUnlinker}, L{QueueLoader};
L{TodoIntake} (pymta/queue/todointake.py) runs the preprocessing batches of todo/ and applies what
they produced; L{FirstAttemptRunner} (pymta/queue/firstrunner.py) plans, starts and records the
first attempts from memory.  Here: the service's start and stop, the control commands, the pickup
of new mail, the main loop with its dispatch, retries of the moment and finishing off.
docs/internals.md ("pymta-send: where a message stands") has the model: the stages, the moves,
what is on disk at each stage and what a crash leaves for the next start.

Everything runs on the C{clock} given (a reactor or a Clock); queue file I/O runs in the
reactor thread like qmail-send's, but for preprocessing and unlinking (in the thread pool).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from pymta.control import ControlError, ControlReader
from pymta.interfaces import Channel, MessageSink
from pymta.queue.disk import QueueDisk
from pymta.queue.envelope import Envelope
from pymta.queue.finishing import Finished, Finisher, Outcome
from pymta.queue.firstattempt import FIRST_ATTEMPT_BACKLOG
from pymta.queue.firstrunner import FirstAttemptRunner
from pymta.queue.gathering import PreprocessGathering
from pymta.queue.layout import QueueLayout
from pymta.queue.loading import QueueLoader
from pymta.queue.looptimers import LoopTimers
from pymta.queue.messagestate import Later, MessageState, MessageStates, Stage
from pymta.queue.passes import ChannelPasses, JobView
from pymta.queue.preprocess import list_todo
from pymta.queue.queuecontrol import QueueControl
from pymta.queue.qmaillog import QmailLog, guard
from pymta.queue.resume import channel_times, info_birth, scan_todo
from pymta.queue.retry import SYSFAIL_DELAY
from pymta.queue.routing import LOCAL, REMOTE
from pymta.queue.sendcontext import SendContext
from pymta.queue.todointake import TodoIntake
from pymta.queue.unlinking import BatchedUnlinker
from pymta.queue.verdict import REPORT_MAX

__all__ = ["Scheduler", "CHANNELS", "REPORT_MAX", "JobView", "FIRST_ATTEMPT_BACKLOG", "SYSFAIL_DELAY"]

CHANNELS = (LOCAL, REMOTE)

#: how many todo entries are preprocessed (and fsynced together) per reactor turn
TODO_BATCH = 256

#: seconds between todo/ scans when no trigger arrives
TODO_SCAN_INTERVAL = 60

#: seconds between runs of the crash cleaner (qmail: 76431)
CLEANUP_INTERVAL = 76431


class Scheduler(Service):
    """
    pymta-send's queue manager as a twisted.application service.

    @param disk: the queue (layout, sync policy, owner, spare pools).
    @param controls: the control reader (C{current} is read at each decision).
    @param channels: C{{"local": Channel, "remote": Channel}}.
    @param sink: where bounces are injected.
    @param clock: the reactor (anything providing C{IReactorTime}).
    @param cleaner: called with the layout at start and every
        L{CLEANUP_INTERVAL} s to remove crash leftovers, or None.
    @param stop_timeout: how long stopService waits for deliveries in flight.
    @param threadpool: where preprocessing (with its fsyncs) and the unlinking
        of finished messages run so the reactor stays free; None runs them in
        the reactor thread (tests with a Clock).  The scheduler starts and stops it.
    """

    name = "pymta-send-scheduler"  # type: ignore[assignment]  # Twisted's Service leaves name unannotated, so None

    def __init__(
        self,
        disk: QueueDisk,
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
    ) -> None:
        missing = [c for c in CHANNELS if c not in channels]
        if missing:
            raise ValueError(f"no channel given for {', '.join(missing)}")
        self.disk = disk
        self.layout = disk.layout
        self.controls = controls
        self.clock = clock
        self.cleaner = cleaner
        self.log = log if log is not None else QmailLog()
        self.stop_timeout = stop_timeout
        self.todo_scan_interval = todo_scan_interval
        self.threadpool = threadpool
        self.paused = False
        self.exiting = False
        self.last_reload_error: str | None = None
        self.stats = {"delivered": 0, "failed": 0, "deferred": 0, "messages_done": 0, "bounces": 0, "first_attempts": 0}
        #: where every message stands: the one truth
        self.messages = MessageStates(CHANNELS)
        ctx = SendContext(disk, controls, clock, self.log, threadpool)
        self._dsn = ctx.dsn  # which messages have DSN data (loaded at start, kept by preprocessing)
        self._passes = ChannelPasses(ctx, self.messages, dict(channels), self.stats, self._kick,
                                     on_idle=lambda state: self.queue_control.settle(state))
        #: preprocessing and bounce injections under way
        self._in_flight: set[defer.Deferred] = set()
        self._unlinker = BatchedUnlinker(ctx)
        self._finisher = Finisher(ctx, sink, self._unlinker)
        #: C{pymta ctl delete|hold|release|retry|bounce}
        self.queue_control = QueueControl(ctx, self.messages, self._passes, self._kick, self._resume_message)
        self._intake = TodoIntake(ctx, self.messages, self._passes, self.queue_control, TODO_BATCH, self._in_flight,
                                  self._retry_later, self._kick)
        # the main loop's timers and flags
        self._timers = LoopTimers(clock)
        self._running = False
        self._rerun = False
        self._scan_requested = False
        self._channels_started = False
        self._new_turn: dict[str, bool] = {}  # per channel: a first attempt goes before the next due job
        self._gathering = PreprocessGathering(self.now, self._timers.later, self._kick, TODO_BATCH)
        self._first = FirstAttemptRunner(ctx, self.messages, self._passes, self.stats, self._intake, self._gathering,
                                         self._finisher, lambda: self.exiting)
        self.loader = QueueLoader(self.layout, self.log, self._timers, resume=self._resume_message,
                                   known=self.messages.__contains__, after_slice=self._kick)

    @property
    def channels(self) -> dict[str, Channel]:
        """The delivery channels by name."""
        return self._passes.channels

    def now(self) -> int:
        return int(self.clock.seconds())

    # --------------------------------------------------------------- service

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._start_channels()

    def _start_channels(self) -> None:
        """Start the channels (the local spawner wants root: twistd calls us first)."""
        if self._channels_started:
            return
        self._channels_started = True
        for name, channel in self.channels.items():
            try:
                channel.start()
            except Exception as e:
                self.log.alert(f"cannot start the {name} channel: {e}")

    def startService(self) -> None:
        super().startService()
        if self.threadpool is not None and not self.threadpool.started:
            self.threadpool.start()
        self._start_channels()
        self.exiting = self._passes.exiting = self._unlinker.stopping = False
        self.messages.clear()
        self._passes.reset()
        self._intake.running = False
        if self.cleaner is not None:
            self._run_cleaner()
        self._resume_queue()
        self.status()
        self._timers.every(self.todo_scan_interval, self.scan_todo)
        if self.cleaner is not None:
            self._timers.every(CLEANUP_INTERVAL, self._run_cleaner)
        self.scan_todo()

    def stopService(self) -> "defer.Deferred[None]":
        super().stopService()
        self.exiting = self._passes.exiting = self._unlinker.stopping = True
        self._timers.cancel_all()
        self._gathering.disarm()
        self.loader.stop()
        self._channels_started = False
        self.status()
        return self._timers.drain(self._pending(), self.stop_timeout).addCallback(self._finish_stop)

    def _pending(self) -> list[defer.Deferred]:
        """Deliveries, preprocessing, bounce injections and unlinking still running."""
        busy = self._unlinker.busy()
        return list(self._passes.in_flight | self._in_flight) + ([busy] if busy is not None else [])

    def _finish_stop(self, _: object) -> "defer.Deferred[None]":
        # first attempts whose failures or deferrals still wait for preprocessing
        unrecorded = sorted(s.message_id for s in self.messages.in_stage(Stage.WAITING, Stage.LATER) if s.first)
        for message_id in unrecorded:
            if self.messages.stage(message_id) is Stage.LATER:
                self.messages.move(message_id, Stage.WAITING)
        if unrecorded:
            self._guard("recording first attempts at exit", self._intake.here, unrecorded)
        if self._pending():
            self.log.warning(f"{len(self._pending())} deliveries still running at exit; they will be retried")
        self._passes.remember_due(self.now())
        stops = [defer.maybeDeferred(channel.stop) for channel in self.channels.values()]
        if self.threadpool is not None and self.threadpool.started:
            self.threadpool.stop()
        self.disk.clear_spares()
        self.log.line("status: exiting")
        return defer.DeferredList(stops, consumeErrors=True).addCallback(lambda _: None)

    def _run_cleaner(self) -> None:
        assert self.cleaner is not None
        self.disk.clear_spares()  # spares live in pid/: deleted here rather than reported as crash leftovers
        try:
            removed = self.cleaner(self.layout)
        except Exception as e:
            self.log.warning(f"queue cleanup failed: {e}")
            return
        for path in removed or ():
            rel = os.path.relpath(path, self.layout.queuedir)
            self.log.logger.info("cleanup: removed crash leftover {path}", path=rel)

    # ---------------------------------------------------------------- control

    def status(self) -> str:
        """Log and return qmail's C{status:} line."""
        return self._passes.status()

    def status_text(self) -> str:
        return self._passes.status_text()

    def reload(self) -> bool:
        """Re-read the control files (SIGHUP); malformed files keep the old values."""
        try:
            self.controls.reload()
        except (ControlError, OSError) as e:
            self.last_reload_error = str(e)
            self.log.alert(f"unable to reread controls: {e}")
            return False
        self.last_reload_error = None
        # first attempts not started yet go the usual way: routing or limits may differ now
        for state in self.messages.in_stage(Stage.FIRST_WAITING):
            self.messages.move(state.message_id, Stage.WAITING).first = None
        self._kick()
        return True

    def run_all_now(self) -> None:
        """Every waiting job is due now (SIGALRM / C{pymta ctl doqueue}), those not preprocessed yet included."""
        self._passes.all_due_now(self.now())
        self._intake.alarm()
        self._gathering.release()
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
        return self._passes.views()

    def slots(self) -> dict[str, int]:
        """Deliveries running and the concurrency limit per channel, from memory (no queue file is read)."""
        used = {f"{c}_used": self._passes.used[c] for c in CHANNELS}
        return used | {f"{c}_limit": self._passes.capacity(c) for c in CHANNELS}

    def counts(self) -> dict[str, int]:
        return {**self._passes.counts(), "todo": self.messages.count(Stage.WAITING), "paused": int(self.paused),
                **self.stats}

    # ----------------------------------------------------------------- pickup

    def notify(self, message_id: int, envelope: Envelope | None = None, size: int = 0) -> None:
        """
        A message was committed to todo/ in this process: pick it up now.
        With its C{envelope} (and the size of its file, for the log) it may
        be tried at once from memory (docs/internals.md).
        """
        if self.exiting:
            return
        if envelope is None or message_id in self.messages:
            # a message id can come back (recycled inodes): never two lives of one id at once; and a
            # todo/ scan may have raced the commit's notification and handle this message already
            self._pick_up(message_id)
        else:
            first = self._first.plan(message_id, envelope, FIRST_ATTEMPT_BACKLOG)
            if first is None:
                state = self.messages.add(message_id, Stage.WAITING)
            else:
                self.log.new_msg(message_id)
                self.log.info_msg(message_id, envelope, size)
                state = self.messages.add(message_id, Stage.FIRST_WAITING, first)
                state.logged = True
            # preprocessing need not read the envelope back
            state.fresh = (envelope, size)
        self._kick()

    def _pick_up(self, message_id: int) -> None:
        """C{todo/ID} waits for preprocessing (sooner than planned for one that had trouble)."""
        state = self.messages.get(message_id)
        if state is None:
            self.messages.add(message_id, Stage.WAITING)
        elif state.stage is Stage.LATER and state.later is Later.PREPROCESS:
            self.messages.move(message_id, Stage.WAITING)

    def scan_todo(self) -> None:
        """Look for work in todo/ soon (trigger pulled, periodic scan); many requests make one scan."""
        if self.exiting:
            return
        self._scan_requested = True
        self._kick()

    def _scan_todo_now(self) -> None:
        try:
            found = list_todo(self.layout)
        except OSError as e:
            self.log.warning(f"unable to read todo/: {e.strerror}")
            return
        for message_id in found:
            self._pick_up(message_id)

    def _resume_queue(self) -> None:
        """At start: todo/ waits for preprocessing; every preprocessed message goes back on its schedule, in slices."""
        for message_id in (todo := scan_todo(self.layout, self.log, self._dsn)):
            self._pick_up(message_id)
        self.loader.start(todo)

    def _resume_message(self, message_id: int) -> None:
        times = channel_times(self.layout, self.log, CHANNELS, message_id)
        if times is None:
            self._retry_later(message_id, Later.RESUME)
            return
        birth = info_birth(self.layout, message_id) if times else None
        if self.queue_control.resumed(message_id, times):
            if (held := self.messages.get(message_id)) is not None:
                held.birth = birth
            return
        self._passes.resume(message_id, birth, times)

    # --------------------------------------------------------------- the loop

    def _kick(self) -> None:
        """Run the main loop soon (coalesced; never re-entered)."""
        if self.exiting:
            return
        if self._running:
            self._rerun = True
            return
        self._timers.soon(self._run)

    def _run(self) -> None:
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
                if not preprocessed and not self._intake.running and self._gathering.ready(self.messages):
                    # one batch per reactor turn: a large backlog must not starve other protocols
                    preprocessed = True
                    self._guard("preprocessing", self._intake.preprocess)
                while (state := self.messages.next_to_finish()) is not None:
                    message_id = state.message_id
                    if not self._guard(f"finishing msg {message_id}", self._finish, state):
                        self._retry_later(message_id, Later.FINISH)
                if not self.paused:
                    for channel in CHANNELS:
                        self._guard(f"{channel} dispatch", self._dispatch, channel)
        finally:
            self._running = False
        if not self._intake.running and self._gathering.ready(self.messages):
            self._kick()
        if not self.exiting:
            self._timers.wake_at(None if self.paused else self._passes.soonest(), self._run)

    def _guard(self, what: str, f: Callable[..., Any], *args: Any) -> bool:
        """Run one step of the loop; an unexpected error is logged, never kills the service."""
        return guard(self.log, what, f, *args)

    def _dispatch(self, channel: str) -> None:
        now = self.now()
        while self._passes.has_slot(channel) and not self.exiting and not self.paused:
            # new mail and due jobs take turns: new mail never waits behind a backlog of due retries
            first = self.messages.next_first(channel) if self._new_turn.pop(channel, False) else None
            if first is None and self._passes.step(channel, now):
                self._new_turn[channel] = True
                continue
            if first is None and (first := self.messages.next_first(channel)) is None:
                return
            self._first.start(first)

    def _retry_later(self, message_id: int, later: Later) -> None:
        """A failure of the moment: try C{later} again after L{SYSFAIL_DELAY}."""
        if message_id in self.messages:
            state = self.messages.move(message_id, Stage.LATER)
        else:
            state = self.messages.add(message_id, Stage.LATER)
        state.later = later
        if not self.exiting:
            self._timers.later(SYSFAIL_DELAY, self._retry_now, state)

    def _retry_now(self, state: MessageState) -> None:
        if self.messages.get(state.message_id) is not state or state.stage is not Stage.LATER:
            return
        if state.later is Later.PREPROCESS:
            self.messages.move(state.message_id, Stage.WAITING)
        elif state.later is Later.FINISH:
            self.messages.move(state.message_id, Stage.FINISH_QUEUED)
        else:
            self._resume_message(state.message_id)
        self._kick()

    # -------------------------------------------------------- finishing off

    def _finish(self, state: MessageState) -> None:
        """No recipient left: inject the bounce if any, then remove the message."""
        message_id = state.message_id
        finished = self._finisher.finish(message_id)
        if isinstance(finished, Finished):
            self._finished(message_id, finished)
            return
        self.messages.move(message_id, Stage.FINISHING)
        d = finished
        self._in_flight.add(d)

        def settled(result: Finished | Failure) -> None:
            self._in_flight.discard(d)
            if isinstance(result, Failure):
                self.log.alert(f"internal error in finishing msg {message_id}: {result.getErrorMessage()}; continuing")
                result = Finished(Outcome.RETRY)
            self._finished(message_id, result)
            self._kick()

        d.addBoth(settled)

    def _finished(self, message_id: int, finished: Finished) -> None:
        if finished.bounced:
            self.stats["bounces"] += 1
        if finished.outcome is Outcome.RETRY:
            self._retry_later(message_id, Later.FINISH)
            return
        if finished.outcome is Outcome.REMOVED:
            self.stats["messages_done"] += 1
        self.messages.drop(message_id)
