# -*- test-case-name: tests.milter.test_chain -*-
"""
The filters of control/milters for one SMTP session, in order: the
L{pymta.milter.api.MilterSession} smtpd holds.

At each stage every filter still taking part is asked in turn; the first
REJECT, TEMPFAIL or DISCARD decides and the filters after it are not
asked.  A filter's ACCEPT leaves it out of the rest of the message (the
session, at connect and HELO).  After a DISCARD the rest of the message
is discarded without asking anyone.  At RCPT a refusal refuses that
recipient only; the filters stay.

At the end of the message each filter sees the header and body as the
filters before it left them (Postfix shows each filter the queue file as
edited so far), and the modifications come back filter by filter, in
order.  A later filter's new body replaces an earlier one's, so the
L{ReplaceBody} chunks of the answer always make one whole body.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

from twisted.internet import defer

from pymta.milter.api import CONTINUE, Action, ConnectInfo, EndOfMessage, Macros, MessageSource, Modification, \
    ReplaceBody, Verdict
from pymta.milter.filter import FilterSession, Outcome
from pymta.milter.headeredits import edit_headers

__all__ = ["MilterChain"]

_DECIDING = (Action.REJECT, Action.TEMPFAIL, Action.DISCARD)


def _chunks(body: Sequence[bytes]) -> Callable[[int], Iterator[bytes]]:
    """A new body's pieces as the next filter reads them (never joined: a body may be large)."""
    def chunks(size: int) -> Iterator[bytes]:
        for piece in body:
            for start in range(0, len(piece), size):
                yield piece[start:start + size]
    return chunks


class MilterChain:
    """L{pymta.milter.api.MilterSession} over L{FilterSession}s, asked in order."""

    def __init__(self, filters: Sequence[FilterSession]) -> None:
        self.filters = tuple(filters)
        self._discarded = False

    def _each(self, stage: str, ask: Callable[[FilterSession], "defer.Deferred[Outcome]"]) -> "defer.Deferred[Verdict]":
        async def run() -> Verdict:
            if self._discarded and stage not in ("connect", "helo"):
                return Verdict(Action.DISCARD)
            for milter in self.filters:
                if not milter.active(stage):
                    continue
                outcome = await ask(milter)
                if outcome.action in _DECIDING:
                    if outcome.action is Action.DISCARD and stage not in ("connect", "helo"):
                        self._discarded = True
                    return Verdict(outcome.action, outcome.reply, milter.spec.name)
            return CONTINUE
        return defer.Deferred.fromCoroutine(run())

    def connect(self, info: ConnectInfo, macros: Macros) -> "defer.Deferred[Verdict]":
        async def run() -> Verdict:
            await defer.gatherResults([milter.open() for milter in self.filters], consumeErrors=True)
            return await self._each("connect", lambda milter: milter.connect(info, macros))
        return defer.Deferred.fromCoroutine(run())

    def helo(self, name: str, macros: Macros) -> "defer.Deferred[Verdict]":
        return self._each("helo", lambda milter: milter.helo(name, macros))

    def mail(self, sender: str, args: Sequence[str], macros: Macros) -> "defer.Deferred[Verdict]":
        return self._each("mail", lambda milter: milter.mail(sender, args, macros))

    def rcpt(self, recipient: str, args: Sequence[str], macros: Macros) -> "defer.Deferred[Verdict]":
        return self._each("rcpt", lambda milter: milter.rcpt(recipient, args, macros))

    def data(self, macros: Macros) -> "defer.Deferred[Verdict]":
        return self._each("data", lambda milter: milter.data(macros))

    def unknown(self, command: str, macros: Macros) -> "defer.Deferred[Verdict]":
        return self._each("unknown", lambda milter: milter.unknown(command, macros))

    def end_of_message(self, message: MessageSource, eoh_macros: Macros,
                       eom_macros: Macros) -> "defer.Deferred[EndOfMessage]":
        return defer.Deferred.fromCoroutine(self._end_of_message(message, eoh_macros, eom_macros))

    async def _end_of_message(self, message: MessageSource, eoh_macros: Macros, eom_macros: Macros) -> EndOfMessage:
        discarded, self._discarded = self._discarded, False
        if discarded:
            for milter in self.filters:
                milter.forget_message()
            return EndOfMessage(Verdict(Action.DISCARD))
        headers = list(message.header_fields())
        body: Callable[[int], Iterable[bytes]] = message.body_chunks
        changes: list[Modification] = []
        for position, milter in enumerate(self.filters):
            if not milter.active("eom"):
                milter.forget_message()
                continue
            outcome = await milter.end_of_message(headers, body, eoh_macros, eom_macros)
            if outcome.action in _DECIDING:
                for later in self.filters[position + 1:]:
                    later.forget_message()
                return EndOfMessage(Verdict(outcome.action, outcome.reply, milter.spec.name))
            new_body = [c.chunk for c in outcome.modifications if isinstance(c, ReplaceBody)]
            if new_body:
                changes = [c for c in changes if not isinstance(c, ReplaceBody)]
                body = _chunks(new_body)
            for change in outcome.modifications:
                headers = edit_headers(headers, change)
            changes.extend(outcome.modifications)
        return EndOfMessage(CONTINUE, tuple(changes))

    def abort(self) -> None:
        self._discarded = False
        for milter in self.filters:
            milter.abort()

    def close(self) -> None:
        for milter in self.filters:
            milter.close()
