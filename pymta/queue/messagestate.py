# -*- test-case-name: tests.queue.test_messagestate -*-
"""
Where each message stands in pymta-send: one map from message id to a
L{MessageState}, the only record of it.  The scheduler moves a message from
one L{Stage} to the next through L{MessageStates.move} (L{MessageStates.add}
and L{MessageStates.drop} at the ends); a move the diagram does not allow
raises L{IllegalMove}.  docs/internals.md ("pymta-send: where a message
stands") draws the diagram and says what is on disk at each stage.

A scheduled message that only waits for its retry time may I{rest}: the
map keeps it as a compact record (L{pymta.queue.restrecord}) instead of a
L{MessageState}, and wakes it - builds its state and jobs back - the
moment anything asks for it (L{MessageStates.get}, L{MessageStates.move},
L{MessageStates.in_stage}...).  It is L{Stage.SCHEDULED} all along.

The FIFOs kept here (messages waiting for preprocessing; first attempts
waiting for a slot, per channel; messages waiting to be finished) are indexes into the map: an entry counts
only while its message is still in the stage, and the same life of it, it
was queued for.
"""

from __future__ import annotations

import enum
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from pymta.queue.channeljob import RESTED, ChannelJob
from pymta.queue.envelope import Envelope
from pymta.queue.firstattempt import FirstAttempt
from pymta.queue.restrecord import pack, unpack

__all__ = ["Stage", "Later", "Pending", "MessageState", "MessageStates", "IllegalMove", "MOVES"]


class Stage(enum.Enum):
    #: C{todo/ID} waits for preprocessing (a first attempt's verdicts may wait with it)
    WAITING = "waiting for preprocessing"
    #: in a preprocessing batch (thread pool, or the reactor thread)
    PREPROCESSING = "preprocessing"
    #: committed here, tried from memory as soon as its channel has a slot
    FIRST_WAITING = "first attempt waiting"
    FIRST_RUNNING = "first attempt running"
    #: preprocessed: one job per channel file left
    SCHEDULED = "scheduled"
    #: no channel file left: waiting for its bounce and removal
    FINISH_QUEUED = "waiting to be finished"
    #: its bounce is being injected
    FINISHING = "finishing"
    #: a failure of the moment: tried again after a delay (L{Later} says what)
    LATER = "retry later"
    #: held by C{pymta ctl hold} (C{hold/ID} on disk): never attempted until released
    HELD = "held"

    # Members are singletons, so identity is a valid hash; object's is done in C, while
    # Enum's hashes the member's name in Python on every dict and set lookup of a stage.
    __hash__ = object.__hash__


class Later(enum.Enum):
    """What a message in L{Stage.LATER} does when its time comes."""

    PREPROCESS = "preprocess"
    FINISH = "finish"
    RESUME = "resume"


#: the moves a message may make; None is "not in the map" (new, or gone: finished, quarantined, forgotten,
#: deleted by C{pymta ctl delete})
MOVES: dict[Stage | None, frozenset[Stage | None]] = {
    None: frozenset({Stage.WAITING, Stage.FIRST_WAITING, Stage.SCHEDULED, Stage.FINISH_QUEUED, Stage.LATER,
                     Stage.HELD}),
    Stage.WAITING: frozenset({Stage.PREPROCESSING, None}),
    Stage.PREPROCESSING: frozenset({Stage.SCHEDULED, Stage.FINISH_QUEUED, Stage.LATER, Stage.HELD, None}),
    Stage.FIRST_WAITING: frozenset({Stage.FIRST_RUNNING, Stage.WAITING, None}),
    Stage.FIRST_RUNNING: frozenset({Stage.WAITING, None}),
    Stage.SCHEDULED: frozenset({Stage.FINISH_QUEUED, Stage.HELD, None}),
    Stage.FINISH_QUEUED: frozenset({Stage.FINISHING, Stage.LATER, None}),
    Stage.FINISHING: frozenset({Stage.LATER, None}),
    Stage.LATER: frozenset({Stage.WAITING, Stage.SCHEDULED, Stage.FINISH_QUEUED, Stage.LATER, Stage.HELD}),
    Stage.HELD: frozenset({Stage.SCHEDULED, Stage.FINISH_QUEUED, None}),
}


#: stale FIFO entries tolerated beyond twice the live ones before an index is compacted
STALE_SLACK = 64


@dataclass(frozen=True)
class Pending:
    """
    A C{pymta ctl} action (C{hold}, C{delete} or C{bounce}) asked for while
    the message was busy (a delivery in flight, preprocessing): done when it
    is next scheduled with nothing in flight, forgotten if it finishes first.
    """

    action: str
    reason: str | None = None


class IllegalMove(RuntimeError):
    """A move the diagram does not allow: a bug in the scheduler, never a condition of the queue."""


@dataclass
class MessageState:
    """One message in pymta-send, and what its stage needs."""

    message_id: int
    stage: Stage
    #: committed in this process and not preprocessed yet: its envelope and message size (read nothing back)
    fresh: tuple[Envelope, int] | None = None
    #: C{new msg} and C{info msg} are logged already (by its first attempt)
    logged: bool = False
    #: its first attempt: waiting or running, then its verdicts until preprocessing has recorded them
    first: FirstAttempt | None = None
    #: L{Stage.SCHEDULED}: its jobs by channel
    jobs: dict[str, ChannelJob] = field(default_factory=dict)
    #: L{Stage.LATER}: what to do when the time comes
    later: Later | None = None
    #: a ctl action waiting for the deliveries in flight (or the preprocessing) to end
    pending: Pending | None = None
    #: L{Stage.HELD}: the channels it has files for (for C{pymta ctl queue})
    held_channels: tuple[str, ...] = ()
    #: when it was accepted (its info file's mtime), once preprocessed here or found at start
    birth: int | None = None


class MessageStates:
    """The map from message id to L{MessageState}, with its two FIFO indexes."""

    def __init__(self, channels: Iterable[str]) -> None:
        channels = tuple(channels)
        self._states: dict[int, MessageState] = {}
        #: messages per stage (every stage has its entry, so that counting never needs a default)
        self._counts: dict[Stage, int] = dict.fromkeys(Stage, 0)
        self._first_fifo: dict[str, deque[MessageState]] = {c: deque() for c in channels}
        self._finish_fifo: deque[MessageState] = deque()
        self._waiting_fifo: deque[MessageState] = deque()
        self._channels = channels
        #: resting messages (scheduled, only waiting for their retry times): id -> packed record
        self._resting: dict[int, int] = {}

    # -- queries -----------------------------------------------------------------

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._states or message_id in self._resting

    def __len__(self) -> int:
        return len(self._states) + len(self._resting)

    def get(self, message_id: int) -> MessageState | None:
        state = self._states.get(message_id)
        if state is None and message_id in self._resting:
            return self._wake(message_id)
        return state

    def stage(self, message_id: int) -> Stage | None:
        state = self._states.get(message_id)
        if state is None:
            return Stage.SCHEDULED if message_id in self._resting else None
        return state.stage

    def resting_due(self, message_id: int, channel: str) -> int | None:
        """A resting message's attempt time on C{channel} (-1: no job there), not waking it; None: not resting."""
        record = self._resting.get(message_id)
        if record is None:
            return None
        due = unpack(record, len(self._channels))[1][self._channels.index(channel)]
        return -1 if due is None else due

    def resting(self) -> int:
        """How many messages rest (kept as compact records)."""
        return len(self._resting)

    def count(self, *stages: Stage) -> int:
        n = 0
        for stage in stages:
            n += self._counts[stage]
        return n

    def in_stage(self, *stages: Stage, peek: bool = False) -> Iterator[MessageState]:
        """
        The states in C{stages} (a snapshot: the caller may move them).
        Resting messages are woken first; with C{peek} they are not, and
        come as detached copies instead (to read, never to move or keep).
        """
        if Stage.SCHEDULED in stages and self._resting:
            if not peek:
                for message_id in list(self._resting):
                    self._wake(message_id)
            else:
                # built one at a time as the caller reads them: a copy is garbage once read
                return itertools.chain([s for s in self._states.values() if s.stage in stages],
                                       (self._build(i, r) for i, r in list(self._resting.items())))
        return iter([s for s in self._states.values() if s.stage in stages])

    def job(self, message_id: int, channel: str) -> ChannelJob | None:
        state = self.get(message_id)
        if state is None or state.stage is not Stage.SCHEDULED:
            return None
        return state.jobs.get(channel)

    def take_known(self, message_ids: Iterable[int]) -> tuple[dict[int, tuple[Envelope, int]], set[int]]:
        """
        What preprocessing need not read or log again for these messages: the
        envelopes of fresh ones (forgotten here: a retry reads them from disk)
        and the ids whose C{new msg} and C{info msg} a first attempt logged.
        """
        known, logged = {}, set()
        for message_id in message_ids:
            state = self._states.get(message_id)
            if state is None:
                continue
            if state.fresh is not None:
                known[message_id], state.fresh = state.fresh, None
            if state.logged:
                logged.add(message_id)
        return known, logged

    # -- moves ---------------------------------------------------------------------

    def add(self, message_id: int, stage: Stage, first: FirstAttempt | None = None) -> MessageState:
        """A message the map does not hold enters it at C{stage} (L{Stage.FIRST_WAITING}: with its C{first} attempt)."""
        if (known := self.stage(message_id)) is not None:
            raise IllegalMove(f"msg {message_id} is {known.value} already")
        if stage not in MOVES[None]:
            raise _illegal(message_id, None, stage)
        if (stage is Stage.FIRST_WAITING) != (first is not None):
            raise IllegalMove(f"msg {message_id}: a first attempt waits in {Stage.FIRST_WAITING.value}, and only there")
        state = MessageState(message_id, stage, first=first)
        self._states[message_id] = state
        self._counts[stage] += 1
        self._index(state)
        return state

    def move(self, message_id: int, stage: Stage) -> MessageState:
        """Move a message the map holds to C{stage}."""
        state = self.get(message_id)
        if state is None:
            raise IllegalMove(f"msg {message_id} is not known; cannot make it {stage.value}")
        if stage not in MOVES[state.stage]:
            raise _illegal(message_id, state.stage, stage)
        self._counts[state.stage] -= 1
        state.stage = stage
        self._counts[stage] += 1
        if stage in (Stage.SCHEDULED, Stage.FINISH_QUEUED):
            # preprocessed: todo/ID is gone, and nothing of the message's time there outlives it
            state.fresh, state.first, state.logged = None, None, False
        if stage is not Stage.SCHEDULED:
            state.jobs = {}
        if stage is not Stage.LATER:
            state.later = None
        if stage is not Stage.HELD:
            state.held_channels = ()
        if stage is Stage.FINISH_QUEUED:
            state.pending = None  # nothing left to hold, delete or bounce
        self._index(state)
        return state

    def drop(self, message_id: int) -> MessageState | None:
        """The message leaves the map (finished, quarantined, or left to a later scan); None if not held."""
        state = self.get(message_id)
        if state is None:
            return None
        if None not in MOVES[state.stage]:
            raise _illegal(message_id, state.stage, None)
        del self._states[message_id]
        self._counts[state.stage] -= 1
        return state

    def clear(self) -> None:
        self._states.clear()
        self._resting.clear()
        self._counts = dict.fromkeys(Stage, 0)
        for fifo in self._first_fifo.values():
            fifo.clear()
        self._finish_fifo.clear()
        self._waiting_fifo.clear()

    # -- resting messages --------------------------------------------------------------

    def rest(self, message_id: int, birth: int | None, dues: dict[str, int]) -> None:
        """
        A message the map does not hold enters it L{Stage.SCHEDULED}, resting:
        born at C{birth}, with a waiting job due at C{dues[channel]} for each
        channel file (woken jobs have C{heap_key} L{RESTED}).
        """
        if message_id in self:
            raise IllegalMove(f"msg {message_id} is in the map already")
        if Stage.SCHEDULED not in MOVES[None]:
            raise _illegal(message_id, None, Stage.SCHEDULED)
        self._resting[message_id] = pack(birth, [dues.get(c) for c in self._channels])
        self._counts[Stage.SCHEDULED] += 1

    def rest_if_idle(self, message_id: int) -> bool:
        """
        Let a scheduled message rest again when it only waits: no pending
        action, and none of its jobs in a pass or with reasons to rewrite
        (what a job knows of its reason file is read again once woken).
        """
        state = self._states.get(message_id)
        if state is None or state.stage is not Stage.SCHEDULED or state.pending is not None or not state.jobs:
            return False
        jobs = state.jobs
        if any(j.running or j.in_flight or j.reasons.appended or j.reasons.cleared for j in jobs.values()):
            return False
        birth = state.birth if state.birth is not None else next((j.birth for j in jobs.values() if j.birth), None)
        del self._states[message_id]
        self._resting[message_id] = pack(birth, [jobs[c].due if c in jobs else None for c in self._channels])
        return True

    def _build(self, message_id: int, record: int) -> MessageState:
        birth, dues = unpack(record, len(self._channels))
        state = MessageState(message_id, Stage.SCHEDULED, birth=birth)
        for channel, due in zip(self._channels, dues):
            if due is not None:
                state.jobs[channel] = ChannelJob(message_id, channel, due, heap_key=RESTED)
        return state

    def _wake(self, message_id: int) -> MessageState:
        state = self._build(message_id, self._resting.pop(message_id))
        self._states[message_id] = state
        return state

    # -- the FIFO indexes ------------------------------------------------------------

    def next_first(self, channel: str) -> MessageState | None:
        """The first attempt of C{channel} that has waited longest (removed from the FIFO), or None."""
        fifo = self._first_fifo[channel]
        while fifo:
            state = fifo.popleft()
            if self._valid(state, Stage.FIRST_WAITING):
                return state
        return None

    def start_preprocessing(self, limit: int) -> list[MessageState]:
        """Up to C{limit} messages waiting for preprocessing, longest waiting first, moved to L{Stage.PREPROCESSING}."""
        batch: list[MessageState] = []
        while self._waiting_fifo and len(batch) < limit:
            state = self._waiting_fifo.popleft()
            if self._valid(state, Stage.WAITING):
                batch.append(self.move(state.message_id, Stage.PREPROCESSING))
        return batch

    def next_to_finish(self) -> MessageState | None:
        """The message that has waited longest to be finished (removed from the FIFO), or None."""
        while self._finish_fifo:
            state = self._finish_fifo.popleft()
            if self._valid(state, Stage.FINISH_QUEUED):
                return state
        return None

    def _valid(self, state: MessageState, stage: Stage) -> bool:
        return self._states.get(state.message_id) is state and state.stage is stage

    def _index(self, state: MessageState) -> None:
        if state.stage is Stage.FINISH_QUEUED:
            fifo = self._finish_fifo
        elif state.stage is Stage.WAITING:
            fifo = self._waiting_fifo
        elif state.stage is Stage.FIRST_WAITING and state.first is not None:
            fifo = self._first_fifo[state.first.channel]
        else:
            return
        fifo.append(state)
        if len(fifo) > 2 * self._counts[state.stage] + STALE_SLACK:
            # entries of messages that left the stage another way: dropped now and then, so that
            # an index stays within a constant factor of the messages it indexes
            kept = [s for s in fifo if self._valid(s, state.stage)]
            fifo.clear()
            fifo.extend(kept)

    def index_length(self) -> int:
        """Entries in the FIFO indexes, stale ones included (at most about twice the messages they index)."""
        return len(self._finish_fifo) + len(self._waiting_fifo) + sum(len(f) for f in self._first_fifo.values())


def _illegal(message_id: int, old: Stage | None, new: Stage | None) -> IllegalMove:
    """The error for a move from C{old} to C{new} that L{MOVES} does not allow."""
    was = "unknown" if old is None else old.value
    to = "gone" if new is None else new.value
    return IllegalMove(f"msg {message_id} cannot go from {was} to {to}")
