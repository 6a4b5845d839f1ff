# -*- test-case-name: tests.queue.test_queuecontrol -*-
"""
C{pymta ctl delete|hold|release|retry|bounce}: acting on the queue while
pymta-send runs (docs/queue.md, "Acting on queued mail"; docs/internals.md,
"Acting on the queue while it runs").

L{QueueControl} works on the scheduler's L{MessageStates} - the one record
of where each message stands - and the queue's files:

- a message with nothing in flight is acted on at once;
- one with a delivery in flight, or not preprocessed yet, gets the action
  as its L{Pending} one: it is done when the message is next scheduled with
  nothing in flight (a delivery is never cut short), and forgotten should
  the message finish first;
- a message about to be finished, or waiting after trouble with its files,
  is left alone (the reply says why).

The disk side is L{pymta.queue.ctldisk} (hold markers, the deletion order);
a bounce is written through the L{Checkpoint} deliveries use, and the
normal finishing injects it.  Each action logs a line in qmail-send's style.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from pymta.address import safe_log
from pymta.interfaces import FAILURE
from pymta.queue.checkpoint import Checkpoint
from pymta.queue.ctldisk import delete_messages, remove_holds, write_holds
from pymta.queue.ctlrequest import Selection, Selector
from pymta.queue.messagestate import Later, MessageState, MessageStates, Pending, Stage
from pymta.queue.passes import ChannelPasses
from pymta.queue.routing import LOCAL, REMOTE
from pymta.queue.sendfiles import QueueFileError, parse_todo, read_channel_file, read_info
from pymta.queue.unlinking import delete_small
from pymta.queue.verdict import Verdict
from pymta.queue.sendcontext import SendContext

__all__ = ["QueueControl", "Facts", "DONE"]

#: what each action did, for the reply lines
DONE = {"delete": "deleted", "hold": "held", "release": "released", "retry": "due now", "bounce": "bounced"}

#: stages in which the message is still C{todo/ID} (read from there)
_TODO = (Stage.WAITING, Stage.PREPROCESSING, Stage.FIRST_WAITING, Stage.FIRST_RUNNING)
#: leaving the queue: selected only by id
_LEAVING = (Stage.FINISH_QUEUED, Stage.FINISHING)


@dataclass(frozen=True)
class Facts:
    """What a selector looks at: the sender, the recipients not delivered yet, the birth."""

    sender: str
    undelivered: tuple[str, ...]
    birth: int


def age_text(seconds: int) -> str:
    """C{45s}, C{12m}, C{3h05m}, C{2d03h}."""
    seconds = max(0, seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


class QueueControl:
    """
    The queue actions of C{pymta ctl} on the scheduler's messages.

    @param changed: runs the scheduler's loop soon.
    @param resume: puts a message the map does not hold back on its schedule
        from what is on disk (the scheduler's start-up path).
    """

    def __init__(self, ctx: SendContext, messages: MessageStates, passes: ChannelPasses,
                 changed: Callable[[], None], resume: Callable[[int], None]) -> None:
        self.messages = messages
        self.passes = passes
        self.disk = ctx.disk
        self.layout = ctx.disk.layout
        self.log = ctx.log
        self.changed = changed
        self.resume = resume
        self.clock = ctx.clock
        self._checkpoint = Checkpoint(ctx)
        self.dsn = ctx.dsn

    # -- start and the scheduler's hooks -------------------------------------------

    def resumed(self, message_id: int, times: dict[str, int]) -> bool:
        """
        A preprocessed message goes back on its schedule with the channel
        files C{times}: True when it is held instead (in L{Stage.HELD} now).
        A held message without a channel file is held no more.  Its
        C{hold/ID} marker says it is held: the L{Stage.HELD} of the map is
        the only other record of it.
        """
        if not os.path.exists(self.layout.hold(message_id)):
            return False
        if not times:
            remove_holds(self.disk, [message_id])
            return False
        state = self.messages.get(message_id)
        state = self.messages.add(message_id, Stage.HELD) if state is None else \
            self.messages.move(message_id, Stage.HELD)
        state.held_channels = tuple(sorted(times))
        return True

    def settle(self, state: MessageState) -> None:
        """A scheduled message with nothing in flight: do its pending action, if any."""
        pending = state.pending
        if pending is None or state.stage is not Stage.SCHEDULED or self._running(state):
            return
        state.pending = None
        for line in self._now(pending.action, [state], pending.reason):
            if not line.endswith(": " + DONE[pending.action]):
                self.log.warning(f"pending {pending.action}: {line}")
        if self.messages.get(state.message_id) is state and state.stage is Stage.SCHEDULED:
            self.passes.requeue(state)  # not done: its jobs set aside meanwhile wait again

    # -- the command -------------------------------------------------------------------

    def act(self, command: str, selection: Selection) -> list[str]:
        """Do C{command} on the messages C{selection} picks; the reply's lines after C{ok}."""
        now = int(self.clock.seconds())
        selector = selection.selector
        lines = [f"msg {i}: not in the queue" for i in dict.fromkeys(selector.ids) if i not in self.messages]
        matched = self._select(selector, now)
        if not matched:
            return lines + ["no message matched"]
        if selection.dry_run:
            lines += [self._describe(state, facts, now) for state, facts in matched]
            return lines + [f"dry run: {len(matched)} message(s) would be {DONE[command]}; nothing changed"]
        tally: Counter[str] = Counter()
        ready = []
        for state, _ in matched:
            if command == "release" and state.pending is not None and state.pending.action == "hold":
                lines.append(self._cancel_hold(state))
                tally["done"] += 1
                continue
            plan = self._plan(command, state)
            if plan == "now":
                ready.append(state)
                continue
            if plan == "pending":
                if state.stage is Stage.FIRST_WAITING:
                    self.messages.move(state.message_id, Stage.WAITING).first = None  # never attempted first
                earlier, state.pending = state.pending, Pending(command, selection.reason)
                when = "when its deliveries in flight end" if state.stage is Stage.SCHEDULED else "once preprocessed"
                instead = f" (instead of {DONE[earlier.action]})" if earlier and earlier.action != command else ""
                lines.append(f"msg {state.message_id}: busy; will be {DONE[command]} {when}{instead}")
            else:
                lines.append(f"msg {state.message_id}: left alone: {plan}")
            tally[plan if plan == "pending" else "skipped"] += 1
        for line in self._now(command, ready, selection.reason):
            lines.append(line)
            tally["done" if line.endswith(": " + DONE[command]) else "skipped"] += 1
        self.changed()
        return lines + [f"{len(matched)} matched: {tally['done']} {DONE[command]}, {tally['pending']} after work "
                        f"in flight, {tally['skipped']} left alone"]

    def _cancel_hold(self, state: MessageState) -> str:
        """C{release} of a message whose hold is still pending: the hold is not done."""
        state.pending = None
        if state.stage is Stage.SCHEDULED:
            self.passes.requeue(state)
        self.log.line(f"release msg {state.message_id}: pending hold cancelled")
        return f"msg {state.message_id}: released (its pending hold cancelled)"

    # -- selecting ----------------------------------------------------------------------

    def _select(self, selector: Selector, now: int) -> list[tuple[MessageState, Facts]]:
        if selector.ids:
            states = [s for i in dict.fromkeys(selector.ids) if (s := self.messages.get(i)) is not None]
        else:
            # resting messages are read through copies: only the matched ones are woken
            states = sorted((s for s in self.messages.in_stage(*Stage, peek=True) if s.stage not in _LEAVING),
                            key=lambda s: s.message_id)
        matched = []
        for state in states:
            facts = self._facts(state)
            if facts is None:
                if not selector.by_id_only:
                    continue
                facts = Facts("?", (), now)  # chosen by id alone: acted on even when its files cannot be read
            if selector.matches(state.message_id, facts.sender, list(facts.undelivered), now - facts.birth):
                if (held := self.messages.get(state.message_id)) is not None:
                    matched.append((held, facts))
        return matched

    def _facts(self, state: MessageState) -> Facts | None:
        message_id = state.message_id
        try:
            if state.stage in _TODO or state.later is Later.PREPROCESS:
                with open(self.layout.todo(message_id), "rb") as f:
                    birth = int(os.fstat(f.fileno()).st_mtime)
                    envelope = parse_todo(f.read())
                return Facts(envelope.sender, envelope.recipients, birth)
            sender, birth = read_info(self.layout, message_id)
            undelivered = tuple(r.address for channel in (LOCAL, REMOTE) for r in self._records(channel, message_id)
                                if not r.done)
        except (OSError, QueueFileError):
            return None
        return Facts(sender, undelivered, birth)

    def _records(self, channel: str, message_id: int) -> list:
        try:
            return read_channel_file(self.layout.channel(channel, message_id))
        except FileNotFoundError:
            return []

    def _describe(self, state: MessageState, facts: Facts, now: int) -> str:
        held = " (held)" if state.stage is Stage.HELD else ""
        to = " ".join(safe_log(r) for r in facts.undelivered) or "-"
        return (f"msg {state.message_id} age {age_text(now - facts.birth)} from <{safe_log(facts.sender)}>"
                f" to {to}{held}")

    # -- acting ---------------------------------------------------------------------------

    @staticmethod
    def _running(state: MessageState) -> bool:
        return any(job.running for job in state.jobs.values())

    def _plan(self, command: str, state: MessageState) -> str:
        """C{"now"}, C{"pending"} or why the message is left alone."""
        stage = state.stage
        if stage in _LEAVING:
            return "no recipient left: it is being finished"
        if stage is Stage.LATER:
            return "waiting after trouble with its files; try again in a few minutes"
        if command == "release":
            return "now" if stage is Stage.HELD else "not held"
        if command == "retry":
            if stage is Stage.HELD:
                return "held; release it"
            if stage is Stage.SCHEDULED and any(not job.running for job in state.jobs.values()):
                return "now"
            return "being delivered now" if stage is not Stage.WAITING else "new: tried as soon as preprocessed"
        if stage is Stage.HELD:
            return "already held" if command == "hold" else "now"
        if command == "delete" and stage in (Stage.WAITING, Stage.FIRST_WAITING):
            return "now"
        if stage is Stage.SCHEDULED and not self._running(state):
            return "now"
        return "pending"

    def _now(self, command: str, states: list[MessageState], reason: str | None) -> list[str]:
        """Do C{command} on C{states}, which nothing is in flight for; one line each."""
        if not states:
            return []
        if command == "delete":
            return self._delete(states)
        if command == "hold":
            return self._hold(states)
        if command == "release":
            return self._release(states)
        if command == "retry":
            now = int(self.clock.seconds())
            for state in states:
                self.passes.due_now(state, now)
            return [f"msg {s.message_id}: due now" for s in states]
        return [self._bounce(state, reason or "bounced by the postmaster") for state in states]

    def _delete(self, states: list[MessageState]) -> list[str]:
        ids = [s.message_id for s in states]
        todo = {s.message_id for s in states if s.stage in _TODO}
        for message_id in ids:
            self.messages.drop(message_id)
        failed = delete_messages(self.disk, ids)
        lines = []
        for message_id in ids:
            error = failed.get(message_id)
            if error is None or not self._still_queued(message_id):
                self.log.line(f"delete msg {message_id} by ctl")
                self.log.end_msg(message_id)
                self.dsn.forget(message_id)
                lines.append(f"msg {message_id}: deleted")
                continue
            lines.append(f"msg {message_id}: unable to delete: {error.strerror}")
            if message_id in todo:
                self.messages.add(message_id, Stage.WAITING)
            else:
                self.resume(message_id)
        return lines

    def _still_queued(self, message_id: int) -> bool:
        return os.path.exists(self.layout.info(message_id)) or os.path.exists(self.layout.todo(message_id))

    def _hold(self, states: list[MessageState]) -> list[str]:
        failed = write_holds(self.disk, [s.message_id for s in states])
        lines = []
        for state in states:
            message_id = state.message_id
            if message_id in failed:
                lines.append(f"msg {message_id}: unable to hold: {failed[message_id].strerror}")
                continue
            channels = tuple(sorted(state.jobs))
            self.messages.move(message_id, Stage.HELD).held_channels = channels
            self.log.line(f"hold msg {message_id}")
            lines.append(f"msg {message_id}: held")
        return lines

    def _release(self, states: list[MessageState]) -> list[str]:
        failed = remove_holds(self.disk, [s.message_id for s in states])
        lines = []
        now = int(self.clock.seconds())
        for state in states:
            message_id = state.message_id
            if message_id in failed:
                lines.append(f"msg {message_id}: unable to release: {failed[message_id].strerror}")
                continue
            self.messages.drop(message_id)
            self.resume(message_id)
            resumed = self.messages.get(message_id)
            if resumed is not None and resumed.stage is Stage.SCHEDULED:
                self.passes.due_now(resumed, now)
            self.log.line(f"release msg {message_id}")
            lines.append(f"msg {message_id}: released")
        return lines

    def _bounce(self, state: MessageState, reason: str) -> str:
        """Every undelivered recipient fails with C{reason}; the normal finishing sends the bounce."""
        message_id = state.message_id
        held = state.stage is Stage.HELD
        self.log.line(f"bounce msg {message_id} by ctl: {safe_log(reason)}")
        verdict = Verdict(FAILURE, reason if reason.endswith("\n") else reason + "\n")
        trouble = None
        for channel in (LOCAL, REMOTE):
            path = self.layout.channel(channel, message_id)
            try:
                records = read_channel_file(path)
            except FileNotFoundError:
                continue
            except (OSError, QueueFileError) as e:
                trouble = str(e)
                continue
            done = [self._checkpoint.record(message_id, path, r.offset, r.address, verdict)
                    for r in records if not r.done]
            if not all(done):
                trouble = f"{channel}/{message_id} could not be marked"
                continue
            try:
                delete_small(self.disk, path)
            except OSError as e:
                trouble = f"unable to unlink {channel}/{message_id}: {e.strerror}"
        if trouble is not None:
            # what was written stays written; the rest goes back on its schedule
            self.messages.drop(message_id)
            self.resume(message_id)
            return f"msg {message_id}: bounced in part ({trouble}); the rest stays queued"
        if held:
            # last: until every recipient is marked, a crash leaves the message held, not released
            error = remove_holds(self.disk, [message_id]).get(message_id)
            if error is not None:
                self.log.warning(f"unable to remove hold/{message_id}: {error.strerror}; the cleaner will")
        self.messages.move(message_id, Stage.FINISH_QUEUED)
        return f"msg {message_id}: bounced"
