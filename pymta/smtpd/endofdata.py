# -*- test-case-name: tests.smtpd.test_endofdata -*-
"""
The end-of-data stage: checks that need the whole message before smtpd
answers, behind the L{pymta.interfaces.MessageSink} seam.

smtpd streams DATA into the queue writer as it arrives.  A check such as
DKIM needs the whole message, and its verdict goes into a header field
at the top.  So when a transaction has end-of-data steps, the message is
spooled instead (L{pymta.smtpd.spool.SpoolingWriter}: memory up to a
bound, then an anonymous temporary file; as large as databytes lets it
be); at the end of DATA the steps run in order, each answering with a
L{StepVerdict}: header fields to add, incoming fields to drop, or a
refusal.  Then the real queue writer is opened, the new fields, the kept
header and the rest of the message are written, and the writer's commit
is what smtpd's C{250} waits for, as without steps: the durability
promise is unchanged.  A transaction without steps gets the real writer
directly (no copy, no cost).

The stage holds a list of L{EndOfDataStep}s (the sender checks,
L{pymta.smtpd.senderauthstep}; a milter later).  Each is asked once per
transaction, at MAIL FROM, with the session's L{SessionFacts}, and gives
a L{TransactionStep} or None (nothing to do for this transaction).  A
transaction step may also refuse the sender at MAIL FROM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from pymta.interfaces import MessageSink, MessageWriter, QueueRefused
from pymta.smtpd.mailparams import TransactionParameters
from pymta.smtpd.spool import SpooledMessage, SpoolingWriter

__all__ = [
    "SessionFacts", "Session", "session_facts", "StepVerdict", "TransactionStep", "EndOfDataStep",
    "EndOfDataStage", "Transaction", "StepRefusal", "refusal_reply", "ORIGIN",
]

log = Logger()

#: qmail-queue's origin text for mail from smtpd
ORIGIN = "from network"


@dataclass(frozen=True)
class SessionFacts:
    """What the end-of-data steps know of the session at MAIL FROM."""

    client_ip: str
    helo: str | None
    sender: str
    auth_user: str | None = None
    relay_client: bool = False

    @property
    def trusted(self) -> bool:
        """A relay client (C{RELAYCLIENT}) or a logged-in user."""
        return self.relay_client or self.auth_user is not None


class Session(Protocol):
    """The parts of an SMTP session the stage reads (L{pymta.smtpd.protocol.SMTPServerProtocol})."""

    remote_ip: str
    helo: str | None
    sender: str | None
    auth_user: str | None
    relayclient: str | None

    def reply(self, line: str) -> None:
        """Send one reply line."""


def session_facts(session: Session) -> SessionFacts:
    return SessionFacts(session.remote_ip, session.helo, session.sender or "", session.auth_user,
                        session.relayclient is not None)


@dataclass(frozen=True)
class StepVerdict:
    """
    A step's answer at the end of DATA: C{add} whole header fields (LF
    line ends, each ending in LF) put at the top, in order; C{drop} says
    of an incoming field C{(name, value)} whether to remove it; C{refusal}
    is an SMTP reply that refuses the message instead (e.g. C{550 ...}).
    """

    add: tuple[bytes, ...] = ()
    drop: Callable[[bytes, bytes], bool] | None = None
    refusal: str | None = None


class TransactionStep(Protocol):
    """One step's work for one transaction."""

    def at_mail(self) -> "defer.Deferred[str | None]":
        """A refusal of the sender (a whole SMTP reply), or None to go on."""

    def at_end_of_data(self, message: SpooledMessage) -> "defer.Deferred[StepVerdict]":
        """The verdict on the whole message (as stored: our Received line first, LF line ends)."""


class EndOfDataStep(Protocol):
    """A kind of end-of-data check, one per daemon."""

    def for_transaction(self, facts: SessionFacts) -> TransactionStep | None:
        """This transaction's work, or None when there is nothing to do."""


class StepRefusal(QueueRefused):
    """A step refused the message; C{reply} is the whole SMTP reply."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply[4:], permanent=reply.startswith("5"))
        self.reply = reply


def refusal_reply(failure: Failure) -> str:
    """smtpd's answer to a message that was not queued: a step's reply, the queue's refusal, or a 451."""
    error = failure.value
    if isinstance(error, StepRefusal):
        return error.reply
    if isinstance(error, QueueRefused):
        return ("554 " if error.permanent else "451 ") + error.text
    log.failure("smtpd: queue failure", failure)
    return "451 qq temporary problem (#4.3.0)"


class Transaction:
    """The steps of one transaction (none: the plain path)."""

    def __init__(self, steps: Sequence[TransactionStep] = ()) -> None:
        self.steps = tuple(steps)

    def at_mail(self, session: Session) -> "defer.Deferred[None] | None":
        """Answer MAIL FROM: C{250 ok}, or a step's refusal (which forgets the sender)."""
        if not self.steps:
            session.reply("250 ok")
            return None

        async def ask() -> None:
            for step in self.steps:
                refusal = await step.at_mail()
                if refusal is not None:
                    session.sender = None
                    session.reply(refusal)
                    return
            session.reply("250 ok")

        return defer.Deferred.fromCoroutine(ask())

    def open_message(self, sink: MessageSink, sender: str, recipients: list[str],
                     params: TransactionParameters | None = None) -> MessageWriter:
        """
        The writer smtpd streams DATA into: the sink's own, or a spool that runs the steps at finish().
        C{params}: the transaction's ESMTP parameters, whose DSN data (if any) goes to the sink.
        """
        dsn = params.message_dsn(len(recipients)) if params is not None else None

        def open_writer() -> MessageWriter:
            if dsn is None:
                return sink.open_message(sender, recipients, origin=ORIGIN)
            return sink.open_message(sender, recipients, origin=ORIGIN, dsn=dsn)

        return open_writer() if not self.steps else SpoolingWriter(open_writer, self.verdicts)

    async def verdicts(self, message: SpooledMessage) -> list[StepVerdict]:
        """The steps' verdicts on the whole message, in order; L{StepRefusal} when one refuses it."""
        verdicts = []
        for step in self.steps:
            verdict = await step.at_end_of_data(message)
            if verdict.refusal is not None:
                raise StepRefusal(verdict.refusal)
            verdicts.append(verdict)
        return verdicts


@dataclass
class EndOfDataStage:
    """The daemon's end-of-data steps; L{start} makes a transaction's at MAIL FROM."""

    steps: list[EndOfDataStep] = field(default_factory=list)

    def start(self, facts: SessionFacts) -> Transaction:
        found = [step.for_transaction(facts) for step in self.steps]
        return Transaction([step for step in found if step is not None])


#: the transaction of a session before its first MAIL FROM
NO_STEPS = Transaction()
