"""
The seams between pymta's parts.

- A L{MessageSink} takes a message into the queue: smtpd, inject, local
  forwarding and bounces all write through one.  Two implementations exist:
  the in-process queue writer (used when the queue manager runs in the same
  process, e.g. C{twistd pymta}) and the inject-socket client (other
  processes).  C{finish()} fires only once the message is durable (fsynced
  and linked into todo/): that is the moment a caller may say C{250}.
- A L{Channel} delivers one message to some of its recipients and reports,
  per recipient, success (C{K}), deferral (C{Z}) or permanent failure (C{D})
  with the text qmail would log and put into a bounce.
- L{LocalRecipients} is local delivery's answer, ahead of delivery, to
  "has this local address a mailbox?" (smtpd's opt-in RCPT check).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from twisted.internet.defer import Deferred

from pymta.dsn.params import MessageDsn
from pymta.dsn.stored import DsnFile

__all__ = [
    "QueueReceipt",
    "QueueRefused",
    "MessageWriter",
    "MessageSink",
    "SUCCESS",
    "DEFERRAL",
    "FAILURE",
    "DeliveryResult",
    "DeliveryJob",
    "Channel",
    "LocalRecipients",
]


@dataclass(frozen=True)
class QueueReceipt:
    """A message is durably queued: its queue id and the qp number for logs and C{250 ok <time> qp <qp>}."""

    message_id: int
    qp: int


class QueueRefused(Exception):
    """
    The queue did not take the message.  C{permanent} is qmail-queue's C{D}
    class (smtpd answers 554), otherwise C{Z} (451).  C{text} is qmail's text
    without the letter, e.g. C{qq write error or disk full (#4.3.0)}.
    """

    def __init__(self, text: str, permanent: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.permanent = permanent


class MessageWriter(Protocol):
    """One message on its way into the queue."""

    def write(self, data: bytes) -> None:
        """Append message bytes (LF line ends, as stored on disk)."""

    def watch_backlog(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """
        Flow control for whoever feeds C{write()}: call C{pause()} when more
        data waits on its way to the queue than the writer will hold, and
        C{resume()} once it has drained or the message is settled.  A writer
        that never holds a backlog does nothing.
        """

    def finish(self) -> "Deferred[QueueReceipt]":
        """Commit: fires with a L{QueueReceipt} once durable, or fails with L{QueueRefused}."""

    def abort(self) -> None:
        """Drop the message; nothing becomes visible to the scheduler."""


class MessageSink(Protocol):
    """Something that opens L{MessageWriter}s into the queue."""

    def open_message(
        self,
        sender: str,
        recipients: Sequence[str],
        *,
        origin: str,
        uid: int | None = None,
        pid: int | None = None,
        dsn: MessageDsn | None = None,
        held: bool = False,
    ) -> MessageWriter:
        """
        Start a message.  C{origin} is the text qmail-queue puts into its
        C{Received:} line after C{invoked}: C{"from network"},
        C{"for bounce"}, C{"by alias"} or C{"by uid N"}.  C{dsn}: what the
        client asked for with RFC 3461's parameters (one request per
        recipient, in order), kept with the message when it is more than
        the defaults.  C{held}: the message is queued held (a content
        filter's quarantine: C{pymta ctl release} lets it go), marked so
        before it becomes visible to the scheduler.  Callers pass C{dsn}
        and C{held} only when they are set.
        """


SUCCESS = "K"
DEFERRAL = "Z"
FAILURE = "D"


@dataclass(frozen=True)
class DeliveryResult:
    """One recipient's outcome: C{status} is C{K}, C{Z} or C{D}; C{text} as qmail reports it."""

    status: str
    text: str
    #: a success whose NOTIFY request went on to the next server with the message (it reports from now on)
    notify_passed_on: bool = False


@dataclass(frozen=True)
class DeliveryJob:
    """
    What the scheduler hands a channel: the queued message file, the envelope
    sender (VERP already expanded when it applies), the recipients (already
    rewritten by routing, e.g. C{prepend-user@virtual.example}) and the
    delivery numbers of the log's C{starting delivery N} lines, one per
    recipient (empty when there are none).  C{dsn}: the message's DSN
    requests (RFC 3461) by routed recipient, None for a message without
    any - the scheduler keeps them in memory, a channel never reads them
    from the queue.
    """

    message_id: int
    message_path: str
    sender: str
    recipients: tuple[str, ...]
    deliveries: tuple[int, ...] = ()
    dsn: DsnFile | None = None

    def about(self, recipient: str | None = None) -> str:
        """
        How a channel's log line names this job: C{msg ID delivery N}
        (C{deliveries N,M} for several; only C{recipient}'s when given).
        """
        numbers = [str(n) for n, r in zip(self.deliveries, self.recipients) if recipient in (None, r)]
        if not numbers:
            return f"msg {self.message_id}"
        return f"msg {self.message_id} {'delivery' if len(numbers) == 1 else 'deliveries'} {','.join(numbers)}"


class Channel(Protocol):
    """
    A delivery channel (local or remote).  The scheduler calls C{start()}
    once before the first delivery (while the process may still be root),
    C{deliver()} for each batch of recipients and C{stop()} at the end.
    """

    #: how many recipients of one message the scheduler may put into one job
    max_recipients: int

    def start(self) -> None:
        """Get ready to deliver (e.g. spawn a helper process); nothing to do for many channels."""

    def deliver(self, job: DeliveryJob) -> "Deferred[list[DeliveryResult]]":
        """
        Deliver C{job}; fires with one L{DeliveryResult} per recipient, in
        order.  Never errbacks: trouble is a C{Z} result with a reason.
        """

    def stop(self) -> "Deferred[None] | None":
        """Finish or abandon in-flight work on service stop."""


class LocalRecipients(Protocol):
    """
    Local delivery's lookup of a local address, asked before the message
    is accepted (smtpd's RCPT check, C{control/rcptcheck}).

    Promise: it never says no when delivery might take the mail.  It fires
    False only when local delivery would certainly find no mailbox (no
    user, no alias, no matching C{.qmail} file); whatever cannot be decided
    (an unreadable home directory, a broken users/assign) fires True.  It
    never blocks the caller: the password database and home directories
    are read elsewhere, and the answer comes as a Deferred.
    """

    def deliverable(self, local: str) -> "Deferred[bool]":
        """
        C{local} is the local part of the address as routing hands it to
        local delivery (after virtualdomains, e.g. C{joe-lists}).
        """
