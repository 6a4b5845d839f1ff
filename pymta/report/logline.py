# -*- test-case-name: tests.report.test_logline -*-
"""
One line of pymta-send's log, read back: its time and what qmail-send said.

A line as pymta's twistd plugins write it (L{pymta.twistdlog}) is a time
stamp in RFC 3339 form with a numeric zone, a C{[system]} field and the
text::

    2026-05-01T10:00:02+0200 [pymta.send#info] delivery 3: success: did_1+0+0/

A line as multilog writes qmail-send's log (a TAI64N label, then the text)
is read too, so a qmail log gives the same tables::

    @4000000069f4b0d2000000000000000a delivery 3: success: did_1+0+0/

The texts that matter are the ones L{pymta.queue.qmaillog} writes (the
qmail-send lines listed in docs/queue.md), plus the two marks of a new run
of the daemon, after which delivery numbers start again at 1: C{status:
exiting} and twistd's C{starting up.} line.  Everything else - other
daemons' lines, tracebacks, a line cut in half, binary garbage - is None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "Event",
    "NewMessage",
    "MessageInfo",
    "DeliveryStart",
    "DeliveryResult",
    "MessageEnd",
    "BounceQueued",
    "NewRun",
    "LineReader",
    "parse_text",
    "SUCCESS",
    "FAILURE",
    "DEFERRAL",
]

SUCCESS = "success"
FAILURE = "failure"
DEFERRAL = "deferral"

#: what the result line of a mangled report counts as (qmail-send defers it)
MANGLED_REASON = "report_mangled"

_TWISTD = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d{4}|Z)) \[[^\]\n]*\] ")
_TAI64N = re.compile(r"@([0-9a-fA-F]{16})([0-9a-fA-F]{8}) ")
#: TAI64 label of the Unix epoch: 2**62, plus the 10 s TAI was ahead of UTC in 1970
_TAI64_EPOCH = 2**62 + 10


@dataclass(frozen=True, slots=True)
class NewMessage:
    """C{new msg ID}."""

    message_id: int


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """C{info msg ID: bytes N from <SENDER> qp QP uid UID}: the message's birth in the reports."""

    message_id: int
    size: int
    sender: str


@dataclass(frozen=True, slots=True)
class DeliveryStart:
    """C{starting delivery D: msg ID to local|remote RCPT}."""

    number: int
    message_id: int
    channel: str
    recipient: str


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """C{delivery D: success|failure|deferral: REASON} (a mangled report is a deferral)."""

    number: int
    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class MessageEnd:
    """C{end msg ID}."""

    message_id: int


@dataclass(frozen=True, slots=True)
class BounceQueued:
    """C{bounce msg ID qp QP}."""

    message_id: int


@dataclass(frozen=True, slots=True)
class DeletedByCtl:
    """C{delete msg ID by ctl}: its C{end msg ID} follows; the message was not delivered."""

    message_id: int


@dataclass(frozen=True, slots=True)
class BouncedByCtl:
    """C{bounce msg ID by ctl: REASON}: its undelivered recipients failed with REASON (no delivery lines)."""

    message_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class NewRun:
    """The daemon stopped (C{status: exiting}) or started: delivery numbers start again."""


Event = (NewMessage | MessageInfo | DeliveryStart | DeliveryResult | MessageEnd | BounceQueued | DeletedByCtl
         | BouncedByCtl | NewRun)

_NEW = re.compile(r"new msg (\d{1,20})\Z")
_INFO = re.compile(r"info msg (\d{1,20}): bytes (\d{1,20}) from <(.*)> qp \d+ uid \d+\Z")
_START = re.compile(r"starting delivery (\d{1,20}): msg (\d{1,20}) to (local|remote) (.*)\Z")
# "msg ID" after the number is accepted too: a line that names its message says the same thing
_RESULT = re.compile(r"delivery (\d{1,20}): (?:msg \d{1,20}:? )?(success|failure|deferral): (.*)\Z")
_MANGLED = re.compile(r"delivery (\d{1,20}): (?:msg \d{1,20}:? )?report mangled, will defer\Z")
_END = re.compile(r"end msg (\d{1,20})\Z")
_BOUNCE = re.compile(r"bounce msg (\d{1,20}) qp \d+\Z")
_DELETED = re.compile(r"delete msg (\d{1,20}) by ctl\Z")
_BOUNCED = re.compile(r"bounce msg (\d{1,20}) by ctl: (.*)\Z")
_TWISTD_START = re.compile(r"twistd \S+ \(.*\) starting up\.\Z")


def parse_text(text: str) -> Event | None:
    """The event a qmail-send line (without time stamp) reports; None for any other text."""
    head = text[:6]
    m: re.Match[str] | None
    if head == "delive":
        if m := _RESULT.match(text):
            return DeliveryResult(int(m[1]), m[2], m[3])
        if m := _MANGLED.match(text):
            return DeliveryResult(int(m[1]), DEFERRAL, MANGLED_REASON)
    elif head == "starti":
        if m := _START.match(text):
            return DeliveryStart(int(m[1]), int(m[2]), m[3], m[4])
    elif head == "info m":
        if m := _INFO.match(text):
            return MessageInfo(int(m[1]), int(m[2]), m[3])
    elif head == "new ms":
        if m := _NEW.match(text):
            return NewMessage(int(m[1]))
    elif head == "end ms":
        if m := _END.match(text):
            return MessageEnd(int(m[1]))
    elif head == "bounce":
        if m := _BOUNCE.match(text):
            return BounceQueued(int(m[1]))
        if m := _BOUNCED.match(text):
            return BouncedByCtl(int(m[1]), m[2])
    elif head == "delete":
        if m := _DELETED.match(text):
            return DeletedByCtl(int(m[1]))
    elif text == "status: exiting" or (head == "twistd" and _TWISTD_START.match(text)):
        return NewRun()
    return None


class LineReader:
    """
    Reads lines into (time, event): the time as seconds since the epoch,
    from the line's own time stamp.  A twistd time stamp changes once a
    second at most, so the last one parsed is kept.
    """

    def __init__(self) -> None:
        self._stamp = ""
        self._when = 0.0

    def _twistd_time(self, stamp: str) -> float | None:
        if stamp != self._stamp:
            try:
                when = datetime.fromisoformat(stamp).timestamp()
            except ValueError:
                return None
            self._stamp, self._when = stamp, when
        return self._when

    def read(self, line: str) -> tuple[float, Event] | None:
        """(time, event) for a qmail-send line with a time stamp; None for any other line."""
        line = line.rstrip("\r\n")
        when: float | None
        if m := _TWISTD.match(line):
            when = self._twistd_time(m[1])
        elif m := _TAI64N.match(line):
            when = int(m[1], 16) - _TAI64_EPOCH + int(m[2], 16) / 1e9
        else:
            return None
        if when is None:
            return None
        event = parse_text(line[m.end():])
        return None if event is None else (when, event)
