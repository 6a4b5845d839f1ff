# -*- test-case-name: tests.smtpd.test_milterstep -*-
"""
The content filters' end-of-message stage, as a transaction's end-of-data
step (L{pymta.smtpd.endofdata}): the session's own step, run after the
sender checks and before DKIM signing, so the signature covers what the
filters changed.

The filters get the spooled message (L{SpooledSource}: our C{Received:}
line first, as it will be queued); their verdict refuses the message
(their reply, or the defaults), throws it away (DISCARD: the client is
told C{250}, nothing is queued, a log line says so) or lets it go on with
their modifications applied (L{pymta.smtpd.milteredits}): a new header or
body makes a new spool that the later steps and the queue writer see
(refused with smtpd's C{552} when it grew past databytes), a
changed envelope opens the writer with the final sender and recipients
(a message left without a recipient is discarded, with a log line), a
quarantine queues it held.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

from twisted.internet import defer
from twisted.logger import Logger

from pymta.milter.api import Action, EndOfMessage
from pymta.smtpd.endofdata import MessageDiscarded, StepVerdict
from pymta.smtpd.milteredits import EditedMessage, Envelope, apply_modifications
from pymta.smtpd.milterstages import MilterStages, refusal_of
from pymta.smtpd.policy import REPLY_DATABYTES
from pymta.smtpd.spool import SpooledMessage

__all__ = ["SpooledSource", "MilterTransaction", "rewritten"]

log = Logger()


def _whole_fields(message: SpooledMessage) -> list[bytes]:
    """The stored header's fields (an over-long field's parts joined again), without the empty line."""
    fields: list[bytes] = []
    for text in message.fields():
        if text == b"\n":
            break
        if text[:1] in (b" ", b"\t") and fields:
            fields[-1] += text
        else:
            fields.append(text)
    return fields


def _body(message: SpooledMessage, size: int) -> Iterator[bytes]:
    for _ in message.fields():
        pass
    yield from message.rest(size)


class SpooledSource:
    """A L{SpooledMessage} as the filters read it (L{pymta.milter.api.MessageSource})."""

    def __init__(self, message: SpooledMessage) -> None:
        self.message = message

    def header_fields(self) -> Sequence[tuple[str, str]]:
        """
        (name, value): the value as stored after the colon (its leading
        space too: the client strips it unless a filter asked for it),
        folded lines kept (LF between them), without the final line end.
        """
        found = []
        for field in _whole_fields(self.message):
            name, colon, value = field.partition(b":")
            if not colon:
                continue
            found.append((name.decode("utf-8", "surrogateescape"),
                          value.rstrip(b"\n").decode("utf-8", "surrogateescape")))
        return found

    def body_chunks(self, size: int) -> Iterable[bytes]:
        """The body with CRLF line ends, in chunks of at most C{size} bytes."""
        for chunk in _body(self.message, max(size // 2, 1)):
            yield chunk.replace(b"\n", b"\r\n")


def rewritten(message: SpooledMessage, edited: EditedMessage) -> SpooledMessage:
    """A new spool with the edited header and body (the stored ones where the filters left them)."""
    header = edited.header if edited.header is not None else tuple(_whole_fields(message))

    def pieces() -> Iterator[bytes]:
        yield from header
        yield b"\n"
        if edited.body is not None:
            yield edited.body
        else:
            yield from _body(message, 64 * 1024)

    return SpooledMessage.of(pieces())


class MilterTransaction:
    """One transaction's end-of-message stage (a L{pymta.smtpd.endofdata.TransactionStep})."""

    def __init__(self, stages: MilterStages, sender: str, recipients: Sequence[str], databytes: int = 0) -> None:
        """
        C{recipients}: the transaction's list, which smtpd fills at each
        accepted RCPT (read at the end); C{databytes}: smtpd's bound (0:
        none), which a message the filters rewrote may not grow past.
        """
        self.stages = stages
        self.databytes = databytes
        self.sender = sender
        self.recipients = recipients
        self.transaction_id = stages.transaction_id or ""

    def at_mail(self) -> "defer.Deferred[str | None]":
        return defer.succeed(None)  # the filters' MAIL stage has already spoken

    def at_end_of_data(self, message: SpooledMessage) -> "defer.Deferred[StepVerdict]":
        stages = self.stages
        if stages.discarding:
            stages.reset_after_message(abort=True)
            self._log("discarded (a filter said so before the end of DATA)")
            return defer.fail(MessageDiscarded())
        macros = stages.message_macros()
        d = stages.session.end_of_message(SpooledSource(message), macros, macros)

        def decided(answer: EndOfMessage) -> StepVerdict:
            stages.reset_after_message(abort=False)
            return self.verdict(message, answer)

        return d.addCallback(decided)

    def _log(self, what: str) -> None:
        log.info("milter: {ip}: transaction {i} {what}", ip=self.stages.client.client_addr, i=self.transaction_id,
                 what=what)

    def verdict(self, message: SpooledMessage, answer: EndOfMessage) -> StepVerdict:
        """The step's verdict for the filters' answer (L{MessageDiscarded} raised for a message thrown away)."""
        name = answer.verdict.filter_name or "a filter"
        if answer.verdict.action is Action.DISCARD:
            self._log(f"discarded by {name}")
            raise MessageDiscarded()
        refusal = refusal_of(answer.verdict)
        if refusal is not None:
            self._log(f"refused by {name}: {refusal.replace(chr(13) + chr(10), ' / ')}")
            return StepVerdict(refusal=refusal)
        if not answer.modifications:
            return StepVerdict()
        envelope = Envelope(self.sender, tuple(self.recipients))
        edited = apply_modifications(_whole_fields(message), envelope, answer.modifications)
        final = edited.envelope
        if not final.recipients:
            self._log("discarded: the filters removed every recipient")
            raise MessageDiscarded()
        if edited.quarantine is not None:
            self._log(f"quarantined (queued held): {edited.quarantine}")
        new = rewritten(message, edited) if edited.rewrites_message else None
        if new is not None and self.databytes and new.size > max(self.databytes, message.size):
            new.close()  # grown past the bound by the filters (a message smtpd took at its size stays taken)
            self._log(f"refused: the filters made it {new.size} bytes, over databytes")
            return StepVerdict(refusal=REPLY_DATABYTES)
        return StepVerdict(
            message=new,
            sender=final.sender if final.sender != envelope.sender else None,
            recipients=final.recipients if final.recipients != envelope.recipients else None,
            held=edited.quarantine is not None,
        )
