# -*- test-case-name: tests.qmtpd.test_protocol -*-
"""
One QMTP message on its way in (L{pymta.qmtpd.protocol}): the spool it
streams into while it arrives (its envelope comes after it), its weight
against databytes, its line ends, and at the end the commit into the
queue for the accepted recipients.

The commit runs the message through smtpd's end-of-data stage
(L{pymta.smtpd.endofdata}) when the client is a relay client
(C{RELAYCLIENT}): the steps a trusted SMTP session gets, i.e. DKIM
signing (the sender checks skip trusted sessions).  Other QMTP clients
get no steps, as documented in docs/qmtp.md.  A step's refusal answers
every accepted recipient, as the queue's does.
"""

from __future__ import annotations

from typing import Any, Sequence

from twisted.internet import defer

from pymta.interfaces import MessageWriter, QueueReceipt
from pymta.qmtpd.envelope import EnvelopeDecision
from pymta.smtpd.endofdata import NO_STEPS, ORIGIN, StepRefusal, StepVerdict, Transaction
from pymta.smtpd.spool import SpooledMessage, SpoolingWriter

__all__ = ["IncomingMessage"]


class IncomingMessage:
    """
    One message: C{write} its bytes as they come (C{crlf}: its lines end in
    CRLF, stored with LF), then L{commit} it or C{writer.abort()} it.
    Bytes over C{databytes} (0: no limit) are counted and not kept.
    """

    def __init__(self, sink_open: Any, databytes: int, crlf: bool) -> None:
        self.writer: MessageWriter = SpoolingWriter(self._open_real, self._verdicts)
        self._sink_open = sink_open
        self._decision: EnvelopeDecision | None = None
        self._transaction: Transaction = NO_STEPS
        self.databytes = databytes
        self.crlf = crlf
        self.size = 0
        self._cr = False  # a CR at the end of the last piece (CRLF mode)

    @property
    def too_big(self) -> bool:
        return self.databytes > 0 and self.size > self.databytes

    def write(self, data: bytes, last: bool = False) -> None:
        if self.crlf:
            if self._cr:
                data = b"\r" + data
            self._cr = data.endswith(b"\r") and not last
            if self._cr:
                data = data[:-1]
            data = data.replace(b"\r\n", b"\n")
        self.size += len(data)
        if not self.too_big:
            self.writer.write(data)

    def commit(self, decision: EnvelopeDecision, transaction: Transaction) -> "defer.Deferred[QueueReceipt]":
        """Queue the message for C{decision}'s recipients, through C{transaction}'s steps; fires once durable."""
        self._decision, self._transaction = decision, transaction
        return defer.maybeDeferred(self.writer.finish)

    def _open_real(self) -> MessageWriter:
        decision = self._decision
        assert decision is not None
        return self._sink_open(decision.sender, list(decision.recipients), origin=ORIGIN)

    async def _verdicts(self, message: SpooledMessage) -> Sequence[StepVerdict]:
        for step in self._transaction.steps:  # what SMTP asks at MAIL FROM, asked now that the sender is known
            refusal = await step.at_mail()
            if refusal is not None:
                raise StepRefusal(refusal)
        return await self._transaction.verdicts(message)
