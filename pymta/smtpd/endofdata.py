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
refusal; a step may also rewrite the message (the later steps and the
writer see the rewritten one) and change the envelope or ask for the
message to be queued held.  Then the real queue writer is opened with the
final envelope, the new fields, the kept header and the rest of the
message are written, and the writer's commit
is what smtpd's C{250} waits for, as without steps: the durability
promise is unchanged.  A transaction without steps gets the real writer
directly (no copy, no cost).

The stage holds a list of L{EndOfDataStep}s (the sender checks,
L{pymta.smtpd.senderauthstep}) and a list of C{late} ones (DKIM signing,
L{pymta.smtpd.dkimsignstep}).  Each is asked once per transaction, at MAIL
FROM, with the session's L{SessionFacts}, and gives a L{TransactionStep}
or None (nothing to do for this transaction).  A transaction step may also
refuse the sender at MAIL FROM.  A session may bring a step of its own
(its content filters, L{pymta.smtpd.milterstep}): it runs between the two
lists, so the sender checks see the message as received and the
signature covers what the filters changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from pymta.dsn.params import MessageDsn, RecipientDsn
from pymta.interfaces import MessageSink, MessageWriter, QueueRefused
from pymta.smtpd.mailparams import TransactionParameters
from pymta.smtpd.spool import SpooledMessage, SpoolingWriter

__all__ = [
    "SessionFacts", "Session", "session_facts", "StepVerdict", "TransactionStep", "EndOfDataStep",
    "EndOfDataStage", "Transaction", "StepRefusal", "MessageDiscarded", "refusal_reply", "ORIGIN",
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
    C{message}: the whole message rewritten (the later steps and the
    writer see it instead); C{sender}, C{recipients}: the envelope changed;
    C{held}: queue the message held (C{pymta ctl release} lets it go), the
    reason being already logged.
    """

    add: tuple[bytes, ...] = ()
    drop: Callable[[bytes, bytes], bool] | None = None
    refusal: str | None = None
    message: SpooledMessage | None = None
    sender: str | None = None
    recipients: tuple[str, ...] | None = None
    held: bool = False


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


class MessageDiscarded(StepRefusal):
    """A step threw the message away (already logged): the client is told C{250}, nothing is queued."""

    def __init__(self) -> None:
        super().__init__("250 ok, message discarded")


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
        #: the steps' verdicts, once they have all spoken (the writer is opened with their envelope)
        self.edits: tuple[StepVerdict, ...] = ()

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
            final_sender, final_recipients, held = final_envelope(sender, recipients, self.edits)
            final_dsn = dsn if final_recipients == recipients else dsn_for(dsn, recipients, final_recipients)
            extra: dict[str, Any] = {"held": True} if held else {}  # keywords a sink without them never sees
            if final_dsn is not None:
                extra["dsn"] = final_dsn
            return sink.open_message(final_sender, final_recipients, origin=ORIGIN, **extra)

        return open_writer() if not self.steps else SpoolingWriter(open_writer, self.verdicts)

    async def verdicts(self, message: SpooledMessage) -> list[StepVerdict]:
        """
        The steps' verdicts on the whole message, in order (a step sees the
        message as the one before rewrote it); L{StepRefusal} when one refuses it.
        """
        verdicts = []
        for step in self.steps:
            verdict = await step.at_end_of_data(message)
            if verdict.refusal is not None:
                raise StepRefusal(verdict.refusal)
            verdicts.append(verdict)
            message = verdict.message or message
        self.edits = tuple(verdicts)
        return verdicts


def final_envelope(sender: str, recipients: list[str], edits: Sequence[StepVerdict]) -> tuple[str, list[str], bool]:
    """C{(sender, recipients, held)} after the steps' changes (the last change of each wins)."""
    held = False
    for edit in edits:
        sender = edit.sender if edit.sender is not None else sender
        recipients = list(edit.recipients) if edit.recipients is not None else recipients
        held = held or edit.held
    return sender, recipients, held


def dsn_for(dsn: MessageDsn | None, original: list[str], final: list[str]) -> MessageDsn | None:
    """The DSN data of the final recipients: each kept one's request, the defaults for an added one."""
    if dsn is None:
        return None
    requests = {address.lower(): dsn.for_recipient(i) for i, address in enumerate(original)}
    changed = MessageDsn(dsn.ret, dsn.envid, tuple(requests.get(a.lower(), RecipientDsn()) for a in final))
    return changed if changed.meaningful else None


@dataclass
class EndOfDataStage:
    """
    The daemon's end-of-data steps; L{start} makes a transaction's at MAIL
    FROM: C{steps}, then the session's own (C{own}), then C{late}.
    """

    steps: list[EndOfDataStep] = field(default_factory=list)
    late: list[EndOfDataStep] = field(default_factory=list)

    def start(self, facts: SessionFacts, own: TransactionStep | None = None) -> Transaction:
        found = [step.for_transaction(facts) for step in self.steps] + [own]
        found += [step.for_transaction(facts) for step in self.late]
        return Transaction([step for step in found if step is not None])


#: the transaction of a session before its first MAIL FROM
NO_STEPS = Transaction()
