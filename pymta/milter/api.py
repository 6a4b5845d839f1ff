# -*- test-case-name: tests.milter.test_api -*-
"""
The seam between smtpd and its content filters (milters).

smtpd holds one L{MilterSession} per SMTP session: every filter of
C{control/milters}, asked in order.  Each stage's call gives a
L{Verdict}; smtpd turns it into its SMTP reply at that stage, so a
message a filter rejects is never given a C{250}.  At the end of DATA
L{MilterSession.end_of_message} gives the verdict and the filters'
L{Modification}s, which smtpd applies to the message before the queue
writer is opened: the durability promise is unchanged (the C{250} still
waits for the queue's commit of the message as modified).

Nothing a filter says is trusted as more than a request: smtpd applies
only the modifications the filter negotiated, and a filter that cannot be
reached or does not answer in time is replaced by its configured default
action (L{Action.TEMPFAIL}, L{Action.ACCEPT} or L{Action.REJECT}).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol, Sequence, Union

from twisted.internet import defer

__all__ = [
    "Action", "Verdict", "CONTINUE", "ConnectInfo", "Macros",
    "AddHeader", "InsertHeader", "ChangeHeader", "ChangeSender", "AddRecipient",
    "DeleteRecipient", "ReplaceBody", "Quarantine", "Modification", "EndOfMessage",
    "MessageSource", "MilterSession",
]

#: macro name (C{j}, C{{client_addr}}, ...) to value, for one stage
Macros = Mapping[str, str]


class Action(enum.Enum):
    """What the filters decided at one stage."""

    #: go on to the next stage (no filter objected)
    CONTINUE = "continue"
    #: accept: this filter asks nothing more for this message (or session, at connect/HELO)
    ACCEPT = "accept"
    #: refuse permanently (5xx); C{Verdict.reply} holds the filter's own reply when it gave one
    REJECT = "reject"
    #: refuse temporarily (4xx); C{Verdict.reply} likewise
    TEMPFAIL = "tempfail"
    #: accept the message and throw it away (the client is told 250)
    DISCARD = "discard"


@dataclass(frozen=True)
class Verdict:
    """
    The filters' answer at one stage.  C{reply} is the whole SMTP reply to
    give for REJECT or TEMPFAIL (CRLF-free lines joined by C{"\\r\\n"},
    each with its code, e.g. C{"550 5.7.1 Gtube pattern"}), or None for
    the MTA's own default text (C{550 5.7.1 Command rejected} /
    C{451 4.7.1 Service unavailable - try again later}).  C{filter_name}
    names the filter that decided (for the log line).
    """

    action: Action
    reply: str | None = None
    filter_name: str | None = None


#: the verdict of no objection
CONTINUE = Verdict(Action.CONTINUE)


@dataclass(frozen=True)
class ConnectInfo:
    """The client as the connect stage describes it to filters."""

    #: the client's name from reverse DNS (or C{[ADDRESS]} when it has none)
    hostname: str
    #: C{"4"} (IPv4), C{"6"} (IPv6), C{"L"} (a unix socket) or C{""} (unknown)
    family: str
    address: str
    port: int


@dataclass(frozen=True)
class AddHeader:
    """Append a header field at the end of the header."""

    name: str
    value: str


@dataclass(frozen=True)
class InsertHeader:
    """Insert a header field at C{index} (0 = at the top)."""

    index: int
    name: str
    value: str


@dataclass(frozen=True)
class ChangeHeader:
    """
    Change the C{index}-th (1-based) field called C{name} (case-insensitive);
    an empty C{value} deletes it.  No such field: nothing changes (an add
    when the value is not empty, as Sendmail and Postfix do).
    """

    index: int
    name: str
    value: str


@dataclass(frozen=True)
class ChangeSender:
    """Replace the envelope sender (C{args}: ESMTP parameters, kept for the log)."""

    address: str
    args: str = ""


@dataclass(frozen=True)
class AddRecipient:
    """Add an envelope recipient."""

    address: str
    args: str = ""


@dataclass(frozen=True)
class DeleteRecipient:
    """Remove an envelope recipient (compared case-insensitively, without angle brackets)."""

    address: str


@dataclass(frozen=True)
class ReplaceBody:
    """
    One chunk of a new body; the chunks of one filter's end-of-message
    answer, in order, make the whole new body (CRLF line ends as sent).
    """

    chunk: bytes


@dataclass(frozen=True)
class Quarantine:
    """Queue the message held (C{pymta ctl release} lets it go), with the filter's reason."""

    reason: str


Modification = Union[AddHeader, InsertHeader, ChangeHeader, ChangeSender, AddRecipient,
                     DeleteRecipient, ReplaceBody, Quarantine]


@dataclass(frozen=True)
class EndOfMessage:
    """
    The filters' answer at the end of DATA: the verdict, and every filter's
    modifications in the order they were given (filter by filter, in the
    order of C{control/milters}).
    """

    verdict: Verdict
    modifications: tuple[Modification, ...] = ()


class MessageSource(Protocol):
    """The message as smtpd spooled it, for the filters."""

    def header_fields(self) -> Sequence[tuple[str, str]]:
        """The header fields as (name, value), unfolded lines kept as received, in order."""

    def body_chunks(self, size: int) -> Iterable[bytes]:
        """The body (after the blank line), in chunks of at most C{size} bytes, CRLF line ends."""


class MilterSession(Protocol):
    """
    The filters of one SMTP session.  Every call returns a Deferred that
    fires with a verdict and never fails: an unreachable or silent filter
    gives its default action.  Once a filter has accepted or rejected at a
    stage it is not asked again in the rest of that message (or session).
    """

    def connect(self, info: ConnectInfo, macros: Macros) -> "defer.Deferred[Verdict]":
        """The client connected (asked before the greeting)."""

    def helo(self, name: str, macros: Macros) -> "defer.Deferred[Verdict]":
        """HELO or EHLO with the client's name."""

    def mail(self, sender: str, args: Sequence[str], macros: Macros) -> "defer.Deferred[Verdict]":
        """MAIL FROM (C{sender} without angle brackets; C{args}: ESMTP parameters)."""

    def rcpt(self, recipient: str, args: Sequence[str], macros: Macros) -> "defer.Deferred[Verdict]":
        """One RCPT TO; a refusal refuses that recipient only."""

    def data(self, macros: Macros) -> "defer.Deferred[Verdict]":
        """The DATA command, before the client sends the message."""

    def unknown(self, command: str, macros: Macros) -> "defer.Deferred[Verdict]":
        """
        A command smtpd does not know (the whole line), before smtpd's own
        reply: only a REJECT or TEMPFAIL means anything (its reply replaces
        smtpd's); a filter that opted out (SMFIP_NOUNKNOWN) is not asked.
        """

    def end_of_message(self, message: MessageSource, eoh_macros: Macros,
                       eom_macros: Macros) -> "defer.Deferred[EndOfMessage]":
        """The whole message: header fields, end of header, body chunks, end of message."""

    def abort(self) -> None:
        """The transaction ended without a message (RSET, a new MAIL, a refusal): filters forget it."""

    def close(self) -> None:
        """The SMTP session ended: say QUIT to every filter and close their connections."""
