# -*- test-case-name: tests.milter.test_connection -*-
"""
One connection to one filter: packets out, answers in, one question at a time.

L{MilterConnection.ask} sends a packet and fires with the filter's
answers up to the one that ends the stage (L{pymta.milter.wire.FINAL}):
the modifications that came before it, then it.  Each question has its
own timeout on the injected clock; SMFIR_PROGRESS starts it again, up to
L{PROGRESS_LIMIT} times the timeout in all: a filter that only ever says
it is working is broken as one that says nothing.
L{MilterConnection.send} sends a packet that gets no answer (macros,
ABORT, QUIT, stages the filter said it does not answer).

Anything wrong - a timeout, a malformed or oversized packet, an answer
nobody asked for, the connection lost - fails the question with
L{MilterFailure} and closes the connection: a broken filter is not
asked again (L{pymta.milter.filter} applies its default action).
Cancelling a question (the SMTP session ended) closes the connection
too, quietly: its answer would come out of step.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from pymta.milter.negotiation import Negotiated, parse_negotiation
from pymta.milter.wire import FINAL, MAX_PACKET, SMFIR_PROGRESS, PacketReader, ProtocolError, Response, \
    parse_response

__all__ = ["MilterConnection", "MilterFailure", "MAX_ANSWER", "PROGRESS_LIMIT"]

#: the most bytes of modifications one answer may carry (a replaced body included)
MAX_ANSWER = 64 * 1024 * 1024

#: the longest a question may be kept open by progress messages, in its own timeouts
PROGRESS_LIMIT = 10


class MilterFailure(Exception):
    """The filter cannot be used for the rest of the session (the text says why)."""


class _Question:
    def __init__(self, deferred: "defer.Deferred[Any]", timeout: float, negotiation: bool, now: float) -> None:
        self.deferred = deferred
        self.timeout = timeout
        self.give_up_at = now + timeout * PROGRESS_LIMIT
        self.negotiation = negotiation
        self.answers: list[Response] = []
        self.size = 0
        self.timer: IDelayedCall | None = None


class MilterConnection(Protocol):
    """The MTA's end of one filter connection."""

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._reader = PacketReader(MAX_PACKET)
        self._question: _Question | None = None
        self.failure: str | None = None
        #: called once with the reason when the connection breaks or is closed
        self.on_lost: Callable[[str], None] | None = None

    # questions

    def negotiate(self, packet: bytes, timeout: float) -> "defer.Deferred[Negotiated]":
        """Send the offer; fires with what the filter negotiated."""
        return self._ask(packet, timeout, negotiation=True)

    def ask(self, packet: bytes, timeout: float) -> "defer.Deferred[list[Response]]":
        """Send C{packet}; fires with the answers up to and including the final one."""
        return self._ask(packet, timeout, negotiation=False)

    def send(self, packet: bytes) -> None:
        """Send C{packet}, which gets no answer."""
        if self.failure is None and self.transport is not None:
            self.transport.write(packet)

    def close(self) -> None:
        """Close the connection (after what was sent)."""
        if self.failure is None:
            self.failure = "closed"
        if self.transport is not None:
            self.transport.loseConnection()

    def _ask(self, packet: bytes, timeout: float, negotiation: bool) -> "defer.Deferred[Any]":
        if self.failure is not None:
            return defer.fail(MilterFailure(self.failure))
        if self._question is not None:
            return defer.fail(MilterFailure("a question asked before the last was answered"))
        deferred: defer.Deferred[Any] = defer.Deferred(canceller=self._cancelled)
        question = self._question = _Question(deferred, timeout, negotiation, self.clock.seconds())
        self._start_timer(question)
        assert self.transport is not None
        self.transport.write(packet)
        return deferred

    def _cancelled(self, deferred: "defer.Deferred[Any]") -> None:
        question = self._question
        if question is not None and question.deferred is deferred:
            self._question = None
            if question.timer is not None and question.timer.active():
                question.timer.cancel()
        self.close()

    def _start_timer(self, question: _Question) -> None:
        if question.timer is not None and question.timer.active():
            question.timer.cancel()
        left = question.give_up_at - self.clock.seconds()
        if left > question.timeout:
            question.timer = self.clock.callLater(question.timeout, self._break, f"no answer in {question.timeout:g}s")
        else:
            question.timer = self.clock.callLater(
                max(left, 0), self._break, f"no final answer in {question.timeout * PROGRESS_LIMIT:g}s")

    # answers

    def dataReceived(self, data: bytes) -> None:
        if self.failure is not None:
            return
        try:
            for command, body in self._reader.feed(data):
                self._answer(command, body)
                if self.failure is not None:
                    return
        except ProtocolError as e:
            self._break(f"protocol error: {e}")

    def _answer(self, command: bytes, data: bytes) -> None:
        question = self._question
        if question is None:
            raise ProtocolError(f"answer {command!r} to no question")
        if question.negotiation:
            self._finish(parse_negotiation(command, data))
            return
        response = parse_response(command, data)
        if command == SMFIR_PROGRESS:
            self._start_timer(question)
        elif command in FINAL:
            self._finish(question.answers + [response])
        else:
            question.size += len(data)
            if question.size > MAX_ANSWER:
                raise ProtocolError(f"answer larger than {MAX_ANSWER} bytes")
            question.answers.append(response)

    def _finish(self, result: object) -> None:
        question = self._question
        assert question is not None
        self._question = None
        if question.timer is not None and question.timer.active():
            question.timer.cancel()
        question.deferred.callback(result)

    # breaking

    def _break(self, reason: str) -> None:
        """The connection is unusable: fail the question, close, say why once."""
        if self.failure is not None and self._question is None:
            return
        first = self.failure is None
        self.failure = self.failure or reason
        question, self._question = self._question, None
        if self.transport is not None:
            self.transport.loseConnection()
        if question is not None:
            if question.timer is not None and question.timer.active():
                question.timer.cancel()
            question.deferred.errback(Failure(MilterFailure(reason)))
        if first and self.on_lost is not None:
            self.on_lost(reason)

    def connectionLost(self, reason: Failure = Failure(ConnectionError("connection lost"))) -> None:
        if self.failure is None or self._question is not None:
            self._break(f"connection lost: {reason.getErrorMessage()}")
