# -*- test-case-name: tests.report.test_matchup -*-
"""
The log's events joined into finished deliveries and finished messages,
as qmailanalog's C{matchup} joins qmail-send's lines.

  - A delivery is joined to its start by its number, within one run of the
    daemon: numbers start again at 1 after each start, so a L{NewRun} mark
    (C{status: exiting}, twistd's C{starting up.}) drops the deliveries
    still open, and so does a new start under a number still open (the
    daemon was killed: no C{status: exiting} was written).
  - A message is joined by its id, across runs (a message stays queued
    over a restart).  Ids are inode numbers and come back as soon as a
    message is gone, so a C{new msg} for an id still open starts a new
    life; a delivery holds the life it started in, not the id.

What is kept is one small record per open message and per delivery in
flight, nothing per line: memory follows the size of the queue, not of the
log.

The time range (C{since} <= t < C{until}) chooses what is counted, not
what is read: a delivery counts when its result is in the range, a message
when its C{end msg} is, each with its true start, read before the range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pymta.report.logline import (
    SUCCESS,
    FAILURE,
    BounceQueued,
    BouncedByCtl,
    DeletedByCtl,
    DeliveryResult,
    DeliveryStart,
    Event,
    MessageEnd,
    MessageInfo,
    NewMessage,
    NewRun,
)

__all__ = ["Delivery", "Message", "Unmatched", "Sink", "Matchup"]


@dataclass(slots=True)
class _Life:
    """One message from C{new msg} to C{end msg}."""

    birth: float | None = None  # the time of its info line
    size: int = 0
    sender: str | None = None
    successes: int = 0
    failures: int = 0
    deferrals: int = 0
    deleted: bool = False  # by pymta ctl delete: its end is no completion


@dataclass(slots=True)
class _Flight:
    """A delivery started and not yet reported."""

    start: float
    channel: str
    recipient: str
    life: _Life | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A finished delivery attempt (qmailanalog's C{d} line)."""

    status: str  # SUCCESS, FAILURE or DEFERRAL
    start: float
    end: float
    channel: str
    recipient: str
    reason: str
    birth: float | None  # None when the message's info line was not in the log
    size: int | None
    sender: str | None

    @property
    def xdelay(self) -> float:
        """The attempt's own duration."""
        return self.end - self.start

    @property
    def ddelay(self) -> float | None:
        """From the message's birth to the end of this attempt (None without the birth)."""
        return None if self.birth is None else self.end - self.birth


@dataclass(frozen=True, slots=True)
class Message:
    """A message that left the queue (qmailanalog's C{m} line)."""

    birth: float
    end: float
    size: int
    sender: str
    successes: int
    failures: int
    deferrals: int

    @property
    def qtime(self) -> float:
        return self.end - self.birth

    @property
    def recipients(self) -> int:
        return self.successes + self.failures

    @property
    def attempts(self) -> int:
        return self.successes + self.failures + self.deferrals


@dataclass(slots=True)
class Unmatched:
    """What could not be joined: the log begins or ends in the middle of things, or lines are lost."""

    results_without_start: int = 0  # its start is before the first line read
    starts_without_result: int = 0  # dropped at a new run, or still in flight at the end
    ends_without_info: int = 0  # the message was born before the first line read
    open_messages: int = 0  # still queued at the end of the log
    bounces: int = 0  # bounce messages queued (in the range)
    deleted: int = 0  # messages deleted by pymta ctl delete (in the range), not counted as completed
    first: float | None = None  # the first and last time stamps in the range
    last: float | None = None


class Sink(Protocol):
    """Where L{Matchup} sends what it joined."""

    def delivery(self, delivery: Delivery) -> None: ...

    def message(self, message: Message) -> None: ...

    def bounced_by_ctl(self, reason: str) -> None:
        """A message's undelivered recipients failed with C{reason} by C{pymta ctl bounce}."""


@dataclass
class Matchup:
    """Feed it (time, event) in log order; it calls C{sink} for each finished delivery and message in the range."""

    sink: Sink
    since: float | None = None
    until: float | None = None
    unmatched: Unmatched = field(default_factory=Unmatched)
    _lives: dict[int, _Life] = field(default_factory=dict)
    _flights: dict[int, _Flight] = field(default_factory=dict)

    def _in_range(self, when: float) -> bool:
        """Whether C{when} is in the range; the time span covers every line in it."""
        if (self.since is not None and when < self.since) or (self.until is not None and when >= self.until):
            return False
        u = self.unmatched
        if u.first is None or when < u.first:
            u.first = when
        if u.last is None or when > u.last:
            u.last = when
        return True

    def feed(self, when: float, event: Event) -> None:
        inside = self._in_range(when)
        if isinstance(event, DeliveryResult):
            self._result(when, inside, event)
        elif isinstance(event, DeliveryStart):
            if event.number in self._flights:
                self.unmatched.starts_without_result += 1  # the run it began in was killed
            self._flights[event.number] = _Flight(when, event.channel, event.recipient,
                                                  self._lives.get(event.message_id))
        elif isinstance(event, NewMessage):
            self._lives[event.message_id] = _Life()
        elif isinstance(event, MessageInfo):
            life = self._lives.setdefault(event.message_id, _Life())
            life.birth, life.size, life.sender = when, event.size, event.sender
        elif isinstance(event, MessageEnd):
            self._end(when, inside, event.message_id)
        elif isinstance(event, BounceQueued):
            if inside:
                self.unmatched.bounces += 1
        elif isinstance(event, DeletedByCtl):
            self._lives.setdefault(event.message_id, _Life()).deleted = True
        elif isinstance(event, BouncedByCtl):
            if inside:
                self.sink.bounced_by_ctl(event.reason)
        elif isinstance(event, NewRun):
            self.unmatched.starts_without_result += len(self._flights)
            self._flights.clear()

    def _result(self, when: float, inside: bool, event: DeliveryResult) -> None:
        flight = self._flights.pop(event.number, None)
        if flight is None:
            if inside:
                self.unmatched.results_without_start += 1
            return
        life = flight.life
        if life is not None:
            if event.status == SUCCESS:
                life.successes += 1
            elif event.status == FAILURE:
                life.failures += 1
            else:
                life.deferrals += 1
        if not inside:
            return
        # size and sender come from the info line, which also gives the birth
        birth = life.birth if life is not None else None
        size, sender = (life.size, life.sender) if life is not None and birth is not None else (None, None)
        self.sink.delivery(Delivery(event.status, flight.start, when, flight.channel, flight.recipient,
                                    event.reason, birth, size, sender))

    def _end(self, when: float, inside: bool, message_id: int) -> None:
        life = self._lives.pop(message_id, None)
        if not inside:
            return
        if life is not None and life.deleted:
            self.unmatched.deleted += 1
            return
        if life is None or life.birth is None or life.sender is None:
            self.unmatched.ends_without_info += 1
            return
        self.sink.message(Message(life.birth, when, life.size, life.sender,
                                  life.successes, life.failures, life.deferrals))

    @property
    def held(self) -> int:
        """How many records it holds now: open messages and deliveries in flight."""
        return len(self._lives) + len(self._flights)

    def finish(self) -> Unmatched:
        """The end of the log: what is still open is counted, and the counts returned."""
        self.unmatched.starts_without_result += len(self._flights)
        self.unmatched.open_messages = len(self._lives)
        self._flights.clear()
        self._lives.clear()
        return self.unmatched
