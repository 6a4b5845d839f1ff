# -*- test-case-name: tests.milter.test_filter -*-
"""
One filter for one SMTP session: its connection, what it negotiated, and
whether it still takes part.

L{FilterSession.open} connects (within the filter's connect timeout) and
negotiates; each stage sends the stage's macros (those the filter asked
for with SETSYMLIST, else the list of control/milters, of those the
caller has), then the stage's command, and waits for the answer unless
the filter said it would not send one (or is not sent the stage at all).

A filter that cannot be reached, does not answer in time or breaks the
protocol is logged once, its connection closed, and from then on counts
as its default action at every stage: TEMPFAIL or REJECT, or for
C{default=accept} it is left out for the rest of the session.  The SMTP
session ending (L{FilterSession.close}, or a stage's Deferred cancelled)
is no failure of the filter: the connection is closed and nothing logged.  An ACCEPT
at connect or HELO leaves the filter out of the session; at MAIL and
later, out of the rest of the message.

A NUL in a stage's text (it would end the string on the wire) is sent as
a blank, as in a header.  Text pymta still cannot encode counts as the
filter's default at that stage only: the filter itself is fine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Coroutine, Iterable, Sequence

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pymta.milter import wire
from pymta.milter.answers import modification, stage_action
from pymta.milter.api import Action, ConnectInfo, Macros, MessageSource, Modification
from pymta.milter.connection import MilterConnection, MilterFailure
from pymta.milter.negotiation import SMFIP_HDR_LEADSPC, Negotiated, macro_name, offer_packet
from pymta.milter.settings import MilterSpec
from pymta.milter.wire import ProtocolError, encode_packet, encode_strings

__all__ = ["FilterSession", "Outcome", "Connector"]

log = Logger()

#: opens a connection to the filter of a spec (fails when it cannot)
Connector = Callable[[MilterSpec], "defer.Deferred[MilterConnection]"]

_MESSAGE_STAGES = ("mail", "rcpt", "data", "eoh", "eom")  # (an unknown command may come outside a message)


@dataclass(frozen=True)
class Outcome:
    """One filter's answer at one stage."""

    action: Action
    reply: str | None = None
    modifications: tuple[Modification, ...] = ()


CONTINUE = Outcome(Action.CONTINUE)


class _Unsendable(Exception):
    """pymta's own text the protocol cannot carry (the filter is not at fault)."""


def _text(s: str) -> str:
    """A string for the filter: a NUL, which would end it on the wire, is sent as a blank."""
    return s.replace("\0", " ")


def _encoded(build: Callable[[], bytes]) -> bytes:
    try:
        return build()
    except ValueError as e:  # a character UTF-8 cannot carry (a lone surrogate)
        raise _Unsendable(str(e)) from None


class FilterSession:
    """The MTA's side of one filter in one SMTP session."""

    def __init__(self, spec: MilterSpec, clock: IReactorTime, connector: Connector) -> None:
        self.spec = spec
        self.clock = clock
        self.connector = connector
        self.connection: MilterConnection | None = None
        self.negotiated = Negotiated()
        #: why the filter is out of use (logged once), or None
        self.broken: str | None = None
        #: accepted at connect/HELO: not asked again in this session
        self.session_done = False
        #: accepted (or decided) during this message: not asked again until the next
        self.message_done = False
        self._ignored: set[bytes] = set()

    # life

    def open(self) -> "defer.Deferred[None]":
        """Connect and negotiate; never fails (a failure makes the filter L{broken})."""
        return defer.Deferred.fromCoroutine(self._open())

    async def _open(self) -> None:
        try:
            connecting = self.connector(self.spec).addTimeout(self.spec.connect_timeout, self.clock)
            try:
                self.connection = await connecting
            except defer.TimeoutError:
                raise MilterFailure(f"connect timed out after {self.spec.connect_timeout}s") from None
            except MilterFailure:
                raise
            except Exception as e:
                raise MilterFailure(f"cannot connect: {e}") from None
            if self.broken is not None:  # the session ended while connecting
                self.connection.close()
                return
            self.connection.on_lost = self._lost
            self.negotiated = await self.connection.negotiate(offer_packet(), self.spec.command_timeout)
            if any(self.negotiated.dropped):
                log.info("milter {name}: asked for options not offered (actions {a:#x}, steps {s:#x}): ignored",
                         name=self.spec.name, a=self.negotiated.dropped[0], s=self.negotiated.dropped[1])
        except MilterFailure as e:
            self._fail(str(e))
        except defer.CancelledError:  # the SMTP client left meanwhile: nothing to say, only to close
            self.broken = self.broken or "the SMTP session ended"
            if self.connection is not None:
                self.connection.close()

    def _lost(self, reason: str) -> None:
        if self.broken is None and not self.session_done:
            self._fail(reason)

    def _fail(self, reason: str) -> None:
        if self.broken is None:
            self.broken = reason
            log.warn("milter {name}: {reason}; default action {action}", name=self.spec.name, reason=reason,
                     action=self.spec.default.value)
        if self.connection is not None:
            self.connection.close()

    def forget_message(self) -> None:
        """The message is over (without being asked at its end): the next MAIL starts afresh."""
        self.message_done = False

    def abort(self) -> None:
        """The message ended without being accepted: the filter forgets it."""
        self.message_done = False
        if self.usable():
            assert self.connection is not None
            self.connection.send(encode_packet(wire.SMFIC_ABORT))

    def close(self) -> None:
        """The SMTP session ended: QUIT and close (a stage still waiting gets the default, quietly)."""
        if self.broken is None:
            self.broken = "the SMTP session ended"  # set without a log line: not a failure of the filter
            if self.connection is not None:
                self.connection.send(encode_packet(wire.SMFIC_QUIT))
                self.connection.close()

    def usable(self) -> bool:
        """Connected, not broken, not done with the session."""
        return self.broken is None and self.connection is not None and not self.session_done

    def default_outcome(self) -> Outcome:
        """What a broken filter counts as: its default action (ACCEPT: no objection)."""
        return CONTINUE if self.spec.default is Action.ACCEPT else Outcome(self.spec.default)

    # stages

    def active(self, stage: str) -> bool:
        """Whether the filter is asked at C{stage} (a broken one answers with its default)."""
        if self.broken is not None:
            return self.spec.default is not Action.ACCEPT
        if self.session_done or (stage in _MESSAGE_STAGES and self.message_done):
            return False
        return self.connection is not None

    def connect(self, info: ConnectInfo, macros: Macros) -> "defer.Deferred[Outcome]":
        return self._stage("connect", wire.SMFIC_CONNECT, lambda: wire.encode_connect(
            _text(info.hostname), info.family, info.port, _text(info.address)), macros)

    def helo(self, name: str, macros: Macros) -> "defer.Deferred[Outcome]":
        return self._stage("helo", wire.SMFIC_HELO, lambda: encode_strings([_text(name)]), macros)

    def mail(self, sender: str, args: Sequence[str], macros: Macros) -> "defer.Deferred[Outcome]":
        return self._stage("mail", wire.SMFIC_MAIL, lambda: encode_strings(map(_text, [f"<{sender}>", *args])), macros)

    def rcpt(self, recipient: str, args: Sequence[str], macros: Macros) -> "defer.Deferred[Outcome]":
        return self._stage("rcpt", wire.SMFIC_RCPT, lambda: encode_strings(map(_text, [f"<{recipient}>", *args])), macros)

    def data(self, macros: Macros) -> "defer.Deferred[Outcome]":
        return self._stage("data", wire.SMFIC_DATA, lambda: b"", macros)

    def unknown(self, command: str, macros: Macros) -> "defer.Deferred[Outcome]":
        """SMFIC_UNKNOWN with the whole command line; only a refusal counts (see L{_verdict})."""
        return self._stage("unknown", wire.SMFIC_UNKNOWN, lambda: encode_strings([_text(command)]), macros)

    def _stage(self, stage: str, command: bytes, data: Callable[[], bytes],
               macros: Macros) -> "defer.Deferred[Outcome]":
        return self._guarded(stage, self._ask_stage(stage, command, data, macros))

    def _guarded(self, stage: str, work: Coroutine[Any, Any, Outcome]) -> "defer.Deferred[Outcome]":
        async def run() -> Outcome:
            if self.broken is not None:
                work.close()
                return self.default_outcome()
            try:
                outcome = await work
            except defer.CancelledError:  # the SMTP session ended while the filter was asked
                self.close()
                raise
            except MilterFailure as e:
                self._fail(str(e))
                return self.default_outcome()
            except ProtocolError as e:
                self._fail(f"protocol error: {e}")
                return self.default_outcome()
            except _Unsendable as e:
                return self._unsendable(stage, str(e))
            except Exception as e:  # the session's promise: a verdict, never a failure
                log.failure("milter {name}: unexpected error", name=self.spec.name)
                self._fail(f"unexpected error: {e!r}")
                return self.default_outcome()
            return outcome
        return defer.Deferred.fromCoroutine(run())

    def _unsendable(self, stage: str, error: str) -> Outcome:
        """The stage counts as the filter's default (an ACCEPT as at any stage); the filter stays in use."""
        log.warn("milter {name}: cannot send the {stage} stage ({error}); default action {action} for it",
                 name=self.spec.name, stage=stage, error=error, action=self.spec.default.value)
        if stage == "eom":
            self.abort()  # the filter has seen part of the message
        elif self.spec.default is Action.ACCEPT:
            if stage in ("connect", "helo"):
                self.session_done = True
            else:
                self.message_done = True
        return self.default_outcome()

    def _macros(self, stage: str, command: bytes, macros: Macros) -> bytes:
        """The stage's macro packet (empty when there are none to send)."""
        wanted = self.negotiated.symlists.get(stage, self.spec.macros.get(stage, ()))
        given = {macro_name(k): _text(v) for k, v in macros.items()}
        pairs = [(name, given[name]) for name in wanted if name in given]
        if not pairs:
            return b""
        return _encoded(lambda: encode_packet(wire.SMFIC_MACRO, wire.encode_macros(command, pairs)))

    def _send(self, packet: bytes) -> None:
        if packet:
            assert self.connection is not None
            self.connection.send(packet)

    async def _ask(self, stage: str, packet: bytes, timeout: int) -> wire.Response | None:
        """Send one packet of C{stage}; the final answer, or None when the filter sends none."""
        assert self.connection is not None
        if not self.negotiated.answers(stage):
            self.connection.send(packet)
            return None
        answers = await self.connection.ask(packet, timeout)
        if len(answers) > 1:
            raise ProtocolError(f"modification {answers[0].command!r} before the end of the message")
        return answers[-1]

    def _verdict(self, stage: str, answer: wire.Response | None) -> Outcome:
        if answer is None:
            return CONTINUE
        if answer.command in (wire.SMFIR_CONN_FAIL, wire.SMFIR_SHUTDOWN):
            raise MilterFailure(f"the filter gave up ({answer.command.decode()!r})")
        action, reply = stage_action(answer)
        if stage == "unknown" and action not in (Action.REJECT, Action.TEMPFAIL):
            return CONTINUE  # accept or discard of an unknown command: smtpd's own reply, nothing skipped
        if action is Action.ACCEPT:
            if stage in ("connect", "helo"):
                self.session_done = True
            else:
                self.message_done = True
        elif action is Action.DISCARD:
            self.message_done = True
        return Outcome(action, reply)

    async def _ask_stage(self, stage: str, command: bytes, data: Callable[[], bytes], macros: Macros) -> Outcome:
        if not self.active(stage) or not self.negotiated.sends(stage):
            return CONTINUE
        macro_packet, packet = self._macros(stage, command, macros), _encoded(lambda: encode_packet(command, data()))
        self._send(macro_packet)  # both encoded first: a stage that cannot be sent is not begun
        answer = await self._ask(stage, packet, self.spec.command_timeout)
        return self._verdict(stage, answer)

    # the message

    def end_of_message(self, headers: Sequence[tuple[str, str]], body: Callable[[int], Iterable[bytes]],
                       eoh_macros: Macros, eom_macros: Macros) -> "defer.Deferred[Outcome]":
        """Headers, end of header, body chunks (C{body(size)} iterates them), end of message."""
        return self._guarded("eom", self._message(headers, body, eoh_macros, eom_macros))

    async def _message(self, headers: Sequence[tuple[str, str]], body: Callable[[int], Iterable[bytes]],
                       eoh_macros: Macros, eom_macros: Macros) -> Outcome:
        if not self.active("eom"):
            return self._ended(CONTINUE)
        timeout = self.spec.content_timeout
        assert self.connection is not None
        if self.negotiated.sends("header"):
            leadspc = bool(self.negotiated.steps & SMFIP_HDR_LEADSPC)
            for name, value in headers:
                value = (value if leadspc else value.lstrip(" \t")).replace("\r\n", "\n")  # folded: LF, as libmilter has it
                packet = _encoded(lambda: encode_packet(wire.SMFIC_HEADER, encode_strings([_text(name), _text(value)])))
                outcome = self._verdict("eom", await self._ask("header", packet, timeout))
                if outcome.action is not Action.CONTINUE:
                    return self._ended(outcome)
        if self.negotiated.sends("eoh"):
            self._send(self._macros("eoh", wire.SMFIC_EOH, eoh_macros))
            outcome = self._verdict("eom", await self._ask("eoh", encode_packet(wire.SMFIC_EOH), timeout))
            if outcome.action is not Action.CONTINUE:
                return self._ended(outcome)
        if self.negotiated.sends("body"):
            for chunk in body(wire.CHUNK_SIZE):
                answer = await self._ask("body", encode_packet(wire.SMFIC_BODY, chunk), timeout)
                if answer is not None and answer.command == wire.SMFIR_SKIP:
                    break
                outcome = self._verdict("eom", answer)
                if outcome.action is not Action.CONTINUE:
                    return self._ended(outcome)
        self._send(self._macros("eom", wire.SMFIC_BODYEOB, eom_macros))
        answers = await self.connection.ask(encode_packet(wire.SMFIC_BODYEOB), timeout)
        modifications = []
        for answer in answers[:-1]:
            change = modification(answer, self.negotiated)
            if change is None:
                if answer.command not in self._ignored:
                    self._ignored.add(answer.command)
                    log.info("milter {name}: modification {command!r} not negotiated: ignored",
                             name=self.spec.name, command=answer.command.decode())
                continue
            modifications.append(change)
        outcome = self._verdict("eom", answers[-1])
        if outcome.action in (Action.REJECT, Action.TEMPFAIL, Action.DISCARD):
            modifications = []
        return self._ended(Outcome(outcome.action, outcome.reply, tuple(modifications)))

    def _ended(self, outcome: Outcome) -> Outcome:
        """The message is over for this filter (the next MAIL starts afresh); ACCEPT is no objection."""
        self.message_done = False
        return Outcome(Action.CONTINUE, None, outcome.modifications) if outcome.action is Action.ACCEPT else outcome

