# -*- test-case-name: tests.queue.test_scheduler -*-
"""
The deliveries of pymta-send under the concurrency limits: the jobs of
scheduled messages (one per channel file) wait for their attempt time, a
I{pass} over a due job's channel file hands its C{T} records to the channel
in batches of one domain, each result is judged, logged and checkpointed
before anything else, and a job whose records are all done loses its
channel file.  Only one pass per channel is open at a time, as in qmail;
the work per message is constant whatever the queue's length (heaps, no
scans).  docs/internals.md ("pymta-send: where a message stands") has the
whole model.

L{ChannelPasses} keeps the jobs in the scheduler's L{MessageStates} (a
scheduled message's C{jobs}) and moves a message whose last job closed to
L{Stage.FINISH_QUEUED}; C{changed()} tells the scheduler's loop to run, and
C{on_idle(state)} is told when a pass ends and leaves a message with a
pending C{pymta ctl} action nothing in flight.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from twisted.internet import defer
from twisted.python.failure import Failure

from pymta.interfaces import DEFERRAL, Channel, DeliveryJob, DeliveryResult
from pymta.queue import bounce as bounces
from pymta.queue.channeljob import ChannelJob, DueJobs, Unreadable, batch_size, read_job_files
from pymta.queue.checkpoint import Checkpoint
from pymta.queue.finishfacts import KnownGone
from pymta.queue.finishing import quarantine
from pymta.queue.firstattempt import FirstAttempt, pair_with_records
from pymta.queue.messagestate import MessageState, MessageStates, Stage
from pymta.queue.qmaillog import guard
from pymta.queue.reasonbook import ReasonBook
from pymta.queue.reasons import Reason
from pymta.queue.retry import SYSFAIL_DELAY
from pymta.queue.routing import LOCAL, REMOTE
from pymta.queue.unlinking import delete_small
from pymta.queue.verdict import Verdict, judge
from pymta.queue.sendcontext import SendContext

__all__ = ["ChannelPasses", "JobView"]


@dataclass(frozen=True)
class JobView:
    """A read-only description of one queued job (for C{pymta ctl queue})."""

    message_id: int
    channel: str
    due: int
    running: bool
    in_flight: int
    #: why its recipients wait: the newest reason kept (None: none known)
    reason: Reason | None = None
    #: held (C{pymta ctl hold}): never attempted until released
    held: bool = False


class ChannelPasses:
    """Slots, due jobs and open passes of the local and remote channels (see the module docstring)."""

    def __init__(self, ctx: SendContext, messages: MessageStates, channels: Mapping[str, Channel],
                 stats: dict[str, int], changed: Callable[[], None],
                 on_idle: Callable[[MessageState], None] | None = None) -> None:
        self.messages = messages
        self.clock = ctx.clock
        self.channels = dict(channels)
        self.disk = ctx.disk
        self.layout = ctx.disk.layout
        self.controls = ctx.controls
        self.log = ctx.log
        self.dsn = ctx.dsn
        self.finishing = ctx.finishing
        self.stats = stats
        self.changed = changed
        #: set at a stop: the status line says so
        self.exiting = False
        #: deliveries whose results have not come back
        self.in_flight: set[defer.Deferred] = set()
        self.used: dict[str, int] = {c: 0 for c in channels}
        self._checkpoint = Checkpoint(ctx)
        self._reasons = ReasonBook(ctx)
        self._due = DueJobs(channels, messages.job, messages.resting_due)
        self._open: dict[str, ChannelJob | None] = {c: None for c in channels}
        self._delivery_ids = itertools.count(1)
        #: called with a scheduled message that has a pending ctl action once nothing of it is in flight
        self.on_idle = on_idle

    def now(self) -> int:
        return int(self.clock.seconds())

    def reset(self) -> None:
        """Forget every job (at start: the map is empty)."""
        self._due.clear()
        self._open = {c: None for c in self._open}

    # -- slots and the status line ------------------------------------------------

    def capacity(self, channel: str) -> int:
        c = self.controls.current
        return c.concurrencylocal if channel == LOCAL else c.concurrencyremote

    def has_slot(self, channel: str) -> bool:
        return self.used[channel] < self.capacity(channel)

    def batch_size(self, channel: str, sender: str) -> int:
        return batch_size(self.channels[channel], sender)

    def status_text(self) -> str:
        c = self.controls.current
        line = f"status: local {self.used[LOCAL]}/{c.concurrencylocal} remote {self.used[REMOTE]}/{c.concurrencyremote}"
        return line + " exitasap" if self.exiting else line

    def status(self) -> str:
        """Log and return qmail's C{status:} line."""
        line = self.status_text()
        self.log.line(line)
        return line

    # -- jobs ------------------------------------------------------------------------

    def jobs(self, peek: bool = False) -> Iterator[ChannelJob]:
        """Every job (C{peek}: resting messages' jobs as detached copies, to read only)."""
        for state in self.messages.in_stage(Stage.SCHEDULED, peek=peek):
            yield from state.jobs.values()

    def views(self) -> list[JobView]:
        """Every job, and every first attempt waiting or running, by message id."""
        views = [JobView(j.message_id, j.channel, j.due, j.running, j.in_flight, self._reasons.last(j))
                 for j in self.jobs(peek=True)]
        for s in self.messages.in_stage(Stage.FIRST_WAITING, Stage.FIRST_RUNNING):
            running = s.stage is Stage.FIRST_RUNNING
            if s.first is not None:
                views.append(JobView(s.message_id, s.first.channel, s.first.since, running, int(running)))
        for s in self.messages.in_stage(Stage.HELD):
            views += [JobView(s.message_id, channel, 0, False, 0, held=True) for channel in s.held_channels]
        return sorted(views, key=lambda v: (v.message_id, v.channel))

    def counts(self) -> dict[str, int]:
        """Messages, jobs and slots for C{pymta ctl stat} (first attempts count as jobs)."""
        c = self.controls.current
        views = [v for v in self.views() if not v.held]
        waiting = sum(1 for v in views if not v.running)
        return {
            "messages": self.messages.count(Stage.SCHEDULED, Stage.FINISH_QUEUED, Stage.FINISHING,
                                            Stage.FIRST_WAITING, Stage.FIRST_RUNNING, Stage.HELD),
            "jobs_waiting": waiting,
            "jobs_running": len(views) - waiting,
            "local_used": self.used[LOCAL],
            "local_limit": c.concurrencylocal,
            "remote_used": self.used[REMOTE],
            "remote_limit": c.concurrencyremote,
            "held": self.messages.count(Stage.HELD),
        }

    def add_job(self, state: MessageState, channel: str, due: int, resumed: bool = False) -> ChannelJob:
        """A scheduled message's job for C{channel}'s file, due at C{due} (C{resumed}: found at start)."""
        job = ChannelJob(state.message_id, channel, due)
        if not resumed:
            job.reasons.kept = False  # a message just preprocessed has no reasons yet
            job.reasons.absent = True
        state.jobs[channel] = job
        if len(state.jobs) > 1:
            for each in state.jobs.values():
                each.reasons.absent = False  # one job does not see the other's lines
        self._due.push(job, due)
        return job

    def resume(self, message_id: int, birth: int | None, times: dict[str, int]) -> None:
        """
        A preprocessed message found on disk (at start, or again after
        trouble) goes back on its schedule: a job per channel file, due at
        its mtime C{times[channel]}; none left: it is to be finished.  One
        the map does not hold yet rests (L{MessageStates.rest}).
        """
        if times and message_id not in self.messages:
            self.messages.rest(message_id, birth, times)
            for channel, due in times.items():
                self._due.push_rested(channel, due, message_id)
            return
        stage = Stage.SCHEDULED if times else Stage.FINISH_QUEUED
        known = message_id in self.messages
        state = self.messages.move(message_id, stage) if known else self.messages.add(message_id, stage)
        state.birth = birth
        for channel, mtime in times.items():
            self.add_job(state, channel, mtime, resumed=True)

    def soonest(self) -> int | None:
        """When the next waiting job of a channel with a free slot is due."""
        times = [due for c in self._open if self.has_slot(c) and (due := self._due.first_due(c)) is not None]
        return min(times, default=None)

    def all_due_now(self, now: int) -> None:
        """Every waiting job is due now (SIGALRM / C{pymta ctl doqueue})."""
        for channel in self._open:
            waiting = [job for job in self.jobs() if job.channel == channel and not job.running]
            for job in waiting:
                job.due = min(job.due, now)
            self._due.rebuild(channel, waiting)

    def due_now(self, state: MessageState, now: int) -> int:
        """Every waiting job of a scheduled message is due C{now} (C{pymta ctl retry}); how many."""
        waiting = [job for job in state.jobs.values() if not job.running]
        for job in waiting:
            self._due.push(job, min(job.due, now))
        return len(waiting)

    def remember_due(self, now: int) -> None:
        """At a stop: each channel file's mtime becomes its job's next attempt, for the next start."""
        for job in list(self.jobs(peek=True)):  # resting messages are read, not woken
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

    def quarantine(self, message_id: int, reason: str) -> None:
        """Forget a message nothing can deliver and move its files into C{quarantine/}."""
        state = self.messages.get(message_id)
        if state is not None:
            for job in list(state.jobs.values()):
                self._drop_job(job)
            self.messages.drop(message_id)
        quarantine(self.disk, self.log, message_id, reason)

    # -- passes ----------------------------------------------------------------------

    def step(self, channel: str, now: int) -> bool:
        """
        One step on C{channel}, which has a free slot: start the open pass's
        next batch, end a pass that has dispatched everything, or open the
        pass of the job due first.  False when there is nothing to do.
        """
        job = self._open[channel]
        if job is not None:
            if job.pending and not self._action_pending(job):
                self._start_batch(job)
                return True
            # every batch dispatched, or a ctl action waits: the untried records stay T in the file
            self._open[channel] = None
            job.hit_eof = True
            if job.in_flight == 0:
                self._close_pass(job)
            return True
        due = self._due.first_due(channel)
        if due is None or due > now:
            return False
        top = self._due.first(channel)
        if top is None:
            return False
        self._due.pop(channel)
        if self._action_pending(top):
            return True  # set aside: the action is done once its other channel's pass ends (see requeue)
        self._open_pass(top, now)
        return True

    def _action_pending(self, job: ChannelJob) -> bool:
        """A C{pymta ctl} action waits for C{job}'s message: no new delivery of it starts."""
        state = self.messages.get(job.message_id)
        return state is not None and state.pending is not None

    def requeue(self, state: MessageState) -> None:
        """
        A scheduled message whose pending action was cancelled or could not
        be done: its waiting jobs (some set aside by L{step}) wait for their
        attempt times again.
        """
        for job in state.jobs.values():
            if not job.running:
                self._due.push(job, job.due)

    def _rel(self, path: str) -> str:
        return os.path.relpath(path, self.layout.queuedir)

    def _open_pass(self, job: ChannelJob, now: int) -> None:
        files = read_job_files(self.layout, job.message_id, job.channel, self._rel)
        if isinstance(files, Unreadable):
            if files.kind == "vanished":
                # the file went away under us (message removed or quarantined)
                if self._drop_job(job):
                    self.messages.drop(job.message_id)
            elif files.kind == "quarantine":
                # nothing can ever deliver it; keep what is left for the administrator
                self.quarantine(job.message_id, files.text)
            else:
                self.log.warning(f"trouble opening {files.text}; will try again later")
                self._due.push(job, now + SYSFAIL_DELAY)
                guard(self.log, f"keeping the reason of msg {job.message_id}", self._reasons.trouble, job,
                      f"trouble opening {files.text}; will try again later", now)
            return
        job.open_pass(files, now, self.controls.current.queuelifetime)
        self._open[job.channel] = job

    def _start_batch(self, job: ChannelJob) -> None:
        batch = job.take_batch(self.batch_size(job.channel, job.sender))
        path = self.layout.channel(job.channel, job.message_id)

        def record(numbers: list[int], results: list[Any]) -> None:
            verdicts = []
            for (offset, address), number, result in zip(batch, numbers, results):
                verdict = self.judged(number, result, job.dying)
                # a recipient whose result cannot be recorded stays T: it is tried again later
                guard(self.log, f"recording delivery {number}", self._checkpoint_one, job, path, offset, address,
                      verdict)
                verdicts.append((address, verdict))
            # only once every result is checkpointed: why the deferred recipients wait
            guard(self.log, f"keeping the reasons of msg {job.message_id}", self._reasons.noted, job, verdicts,
                  self.now())

        def settled() -> None:
            job.in_flight -= 1
            if job.hit_eof and job.in_flight == 0 and self._open[job.channel] is not job:
                guard(self.log, f"closing msg {job.message_id} {job.channel}", self._close_pass, job)

        self.launch(job.channel, job.message_id, job.sender, [a for _, a in batch], record, settled)

    def launch(self, channel_name: str, message_id: int, sender: str, recipients: list[str],
               record: Callable[[list[int], list[Any]], None], settled: Callable[[], None]) -> None:
        """
        Start one delivery of C{message_id} to C{recipients} (one batch) on a
        slot of C{channel_name}.  When it is back, C{record(numbers, results)}
        gets the delivery numbers and one result per recipient (a failing
        channel counts as a deferral; a malformed answer gives C{None}s); then
        the slot is free, the status line logged and C{settled()} called.
        """
        channel = self.channels[channel_name]
        if len(recipients) == 1:
            sender = bounces.verp_sender(sender, recipients[0])
        numbers = []
        for address in recipients:
            number = next(self._delivery_ids)
            numbers.append(number)
            self.log.starting_delivery(number, message_id, channel_name, address)
        self.used[channel_name] += 1
        self.status()
        # a first attempt is never of a message with DSN data (and its id may be an old message's)
        dsn = None if self.messages.stage(message_id) is Stage.FIRST_RUNNING else self.dsn.get(message_id)
        delivery = DeliveryJob(message_id, self.layout.mess(message_id), sender, tuple(recipients), tuple(numbers),
                               dsn)
        d = defer.maybeDeferred(channel.deliver, delivery)
        self.in_flight.add(d)

        def done(result: object) -> None:
            self.in_flight.discard(d)
            if isinstance(result, Failure):
                text = f"delivery channel failed: {result.getErrorMessage()}\n"
                results: list[Any] = [DeliveryResult(DEFERRAL, text)] * len(recipients)
            elif isinstance(result, (list, tuple)) and len(result) == len(recipients):
                results = list(result)
            else:
                results = [None] * len(recipients)
            try:
                record(numbers, results)
            finally:
                self.used[channel_name] -= 1
                self.status()
                settled()
                self.changed()

        d.addBoth(done)

    def judged(self, number: int, result: object, dying: bool) -> Verdict:
        """Judge delivery C{number}'s result, log and count it."""
        verdict = judge(result, dying)
        self.log.delivery(number, verdict.status, verdict.text)
        self.stats[verdict.stat] += 1
        return verdict

    def _checkpoint_one(self, job: ChannelJob, path: str, offset: int, address: str, verdict: Verdict) -> None:
        if self._checkpoint.record(job.message_id, path, offset, address, verdict):
            job.undone -= 1

    def record_first(self, state: MessageState, first: FirstAttempt, now: int) -> None:
        """
        A just preprocessed message's first attempt did not simply succeed:
        its job on the attempt's channel gets the attempt's verdicts
        checkpointed as a pass would have, then waits for its retry or closes.
        """
        message_id, channel = first.message_id, first.channel
        job = self.add_job(state, channel, now)  # should anything below fail, the message is tried again
        files = read_job_files(self.layout, message_id, channel, self._rel)
        if isinstance(files, Unreadable):
            return  # the pass will find out and tell
        job.learn(files, now, self.controls.current.queuelifetime)
        path = self.layout.channel(channel, message_id)
        pairs = pair_with_records(first, files.records)
        for record, verdict in pairs:
            guard(self.log, f"recording the first attempt of msg {message_id}", self._checkpoint_one, job, path,
                  record.offset, record.address, verdict)
        guard(self.log, f"keeping the reasons of msg {message_id}", self._reasons.noted, job,
              [(record.address, verdict) for record, verdict in pairs], now)
        if job.undone == 0:
            self.close_job(job)
        else:
            self._due.push(job, job.retry)

    def _close_pass(self, job: ChannelJob) -> None:
        """A pass is over: L{close_job}, then a pending ctl action may act on a message with nothing in flight."""
        self.close_job(job)
        state = self.messages.get(job.message_id)
        if state is None or state.pending is None or self.on_idle is None or state.stage is not Stage.SCHEDULED:
            if state is not None:
                self.messages.rest_if_idle(state.message_id)  # only waiting for its retry now: kept compact
            return
        if not any(j.running for j in state.jobs.values()):
            self.on_idle(state)

    def close_job(self, job: ChannelJob) -> None:
        """The pass is over: the job waits for its retry time, or its channel file goes."""
        if self.messages.job(job.message_id, job.channel) is not job:
            return
        guard(self.log, f"rewriting the reasons of msg {job.message_id}", self._reasons.closed, job)
        if job.undone > 0:
            self._due.push(job, job.retry)
            return
        path = self.layout.channel(job.channel, job.message_id)
        try:
            delete_small(self.disk, path)
        except FileNotFoundError:
            pass
        except OSError:
            self.log.warning(f"unable to unlink {self._rel(path)}; will try again later")
            self._due.push(job, self.now() + SYSFAIL_DELAY)
            return
        reasons_gone = job.reasons.absent
        if not self._drop_job(job):
            return
        other = REMOTE if job.channel == LOCAL else LOCAL
        if os.path.exists(self.layout.channel(other, job.message_id)):
            self.messages.drop(job.message_id)  # a channel file without a job: left to the next start
        else:
            self.finishing.note(job.message_id, KnownGone(channel_files=True, reasons=reasons_gone))
            self.messages.move(job.message_id, Stage.FINISH_QUEUED)
            self.changed()

    def _drop_job(self, job: ChannelJob) -> bool:
        """Forget C{job}; True when it was its message's last (the caller moves the message on)."""
        state = self.messages.get(job.message_id)
        if state is None or state.jobs.get(job.channel) is not job:
            return False
        del state.jobs[job.channel]
        if self._open[job.channel] is job:
            self._open[job.channel] = None
        return not state.jobs
