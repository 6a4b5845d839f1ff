# -*- test-case-name: tests.report.test_tally -*-
"""
The sums behind qmailanalog's tables, kept as the deliveries and messages
of L{pymta.report.matchup} arrive (a L{pymta.report.matchup.Sink}).

What each number means is qmailanalog's:

  - I{xdelay}: how long one delivery attempt took, from its C{starting
    delivery} line to its result line;
  - I{ddelay}: from a message's birth (its C{info msg} line) to the end of
    one successful delivery of it;
  - I{qtime}: from a message's birth to its C{end msg} line;
  - a completed message's I{recipients} are its successes and failures
    (deferrals are retried), its I{attempts} all three.

Memory: a fixed number of sums, plus one row per distinct recipient,
sender and reason (the tables themselves).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

from pymta.report.logline import DEFERRAL, FAILURE, SUCCESS
from pymta.report.matchup import Delivery, Message

__all__ = ["Tally", "Overall", "ReasonRow", "RecipientRow", "SenderRow", "DDIST_LIMITS"]

#: zddist's rows: a successful delivery counts in the first row whose limit (seconds) its ddelay is within
DDIST_LIMITS: tuple[float, ...] = (
    1, 2, 5, 10, 30, 60, 2 * 60, 5 * 60, 10 * 60, 30 * 60, 3600, 2 * 3600, 4 * 3600,
    12 * 3600, 86400, 2 * 86400, 4 * 86400, 7 * 86400,
)


@dataclass(slots=True)
class Overall:
    """zoverall's sums."""

    messages: int = 0
    recipients: int = 0  # of completed messages
    message_attempts: int = 0  # delivery attempts of completed messages
    bytes: int = 0
    bytes_by_success: int = 0  # each completed message's size times its successes
    qtime: float = 0.0
    qtime_max: float = 0.0
    attempts: dict[str, int] = field(default_factory=lambda: {SUCCESS: 0, FAILURE: 0, DEFERRAL: 0})
    ddelay: float = 0.0  # over successes whose message's birth is known
    ddelay_max: float = 0.0
    ddelay_count: int = 0
    xdelay: float = 0.0
    xdelay_max: float = 0.0


@dataclass(slots=True)
class ReasonRow:
    """zfailures/zdeferrals: one reason."""

    deliveries: int = 0
    xdelay: float = 0.0


@dataclass(slots=True)
class RecipientRow:
    """zrecipients: one recipient."""

    sbytes: int = 0  # bytes successfully delivered to it
    messages: int = 0  # messages successfully delivered to it
    tries: int = 0
    xdelay: float = 0.0


@dataclass(slots=True)
class SenderRow:
    """zsenders: one sender (C{<>} for bounces)."""

    messages: int = 0  # completed messages
    bytes: int = 0  # their bytes
    sbytes: int = 0  # bytes successfully delivered (one message's size per success)
    rbytes: int = 0  # each completed message's size times its recipients
    recipients: int = 0  # of completed messages
    tries: int = 0
    xdelay: float = 0.0


@dataclass
class Tally:
    """Every table's sums (a L{pymta.report.matchup.Sink})."""

    overall: Overall = field(default_factory=Overall)
    reasons: dict[str, dict[str, ReasonRow]] = field(default_factory=lambda: {FAILURE: {}, DEFERRAL: {}})
    recipients: dict[tuple[str, str], RecipientRow] = field(default_factory=dict)
    senders: dict[str, SenderRow] = field(default_factory=dict)
    #: successes per zddist row (the last one: beyond the last limit)
    ddist: list[int] = field(default_factory=lambda: [0] * (len(DDIST_LIMITS) + 1))

    def delivery(self, d: Delivery) -> None:
        o = self.overall
        o.attempts[d.status] += 1
        xdelay = d.xdelay
        o.xdelay += xdelay
        o.xdelay_max = max(o.xdelay_max, xdelay)
        success = d.status == SUCCESS
        size = d.size or 0
        if success:
            ddelay = d.ddelay
            if ddelay is not None:
                o.ddelay += ddelay
                o.ddelay_max = max(o.ddelay_max, ddelay)
                o.ddelay_count += 1
                self.ddist[bisect_left(DDIST_LIMITS, ddelay)] += 1
        else:
            row = self.reasons[d.status].setdefault(d.reason, ReasonRow())
            row.deliveries += 1
            row.xdelay += xdelay
        recipient = self.recipients.get((d.channel, d.recipient))
        if recipient is None:
            recipient = self.recipients[(d.channel, d.recipient)] = RecipientRow()
        recipient.tries += 1
        recipient.xdelay += xdelay
        if success:
            recipient.messages += 1
            recipient.sbytes += size
        if d.sender is not None:
            sender = self._sender(d.sender)
            sender.tries += 1
            sender.xdelay += xdelay
            if success:
                sender.sbytes += size

    def bounced_by_ctl(self, reason: str) -> None:
        """A C{pymta ctl bounce}: a zfailures row of its own (one per message; no delivery was attempted)."""
        row = self.reasons[FAILURE].setdefault(f"bounced by ctl: {reason}", ReasonRow())
        row.deliveries += 1

    def message(self, m: Message) -> None:
        o = self.overall
        o.messages += 1
        o.recipients += m.recipients
        o.message_attempts += m.attempts
        o.bytes += m.size
        o.bytes_by_success += m.size * m.successes
        o.qtime += m.qtime
        o.qtime_max = max(o.qtime_max, m.qtime)
        sender = self._sender(m.sender)
        sender.messages += 1
        sender.bytes += m.size
        sender.recipients += m.recipients
        sender.rbytes += m.size * m.recipients

    def _sender(self, address: str) -> SenderRow:
        row = self.senders.get(address)
        if row is None:
            row = self.senders[address] = SenderRow()
        return row
