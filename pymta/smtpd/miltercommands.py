# -*- test-case-name: tests.smtpd.test_miltercommands -*-
"""
The content filters' stages in smtpd's dialogue: mixed into
L{pymta.smtpd.protocol.SMTPServerProtocol}, which calls these methods at
the points where qmail-smtpd's own checks have passed (the filters are
asked after them, as Postfix does).

With C{SMTPDContext.milters} None nothing here costs anything: every
method goes straight on.  Otherwise the factory gives the session its
L{pymta.milter.api.MilterSession} (or None while control/milters lists no
filter) when the access rules have admitted the client, and
L{pymta.smtpd.milterstages.MilterStages} asks it at each stage.

A connection the filters refuse at connect gets a C{554} greeting and then
behaves as qmail's rblsmtpd does (HELO, MAIL, RSET and NOOP are answered
C{250}, QUIT closes, every other command gets the refusal); a temporary
refusal gets C{421} and is closed, as is the session after a filter's
C{421} reply at any later stage, the end of DATA included.  A command
smtpd does not know is shown to the filters (SMFIC_UNKNOWN) before
smtpd's own C{502}, which their refusal replaces, as Sendmail and Postfix do.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from twisted.internet import defer
from twisted.logger import Logger

from pymta.control import Controls
from pymta.linedeadline import LineDeadline
from pymta.smtpd.context import SMTPDContext
from pymta.smtpd.endofdata import Transaction, session_facts
from pymta.smtpd.junk import JunkCounter
from pymta.smtpd.mailparams import TransactionParameters
from pymta.smtpd.miltermacros import ClientFacts, tls_facts
from pymta.smtpd.milterstages import MilterStages, greeting_refusal
from pymta.smtpd.milterstep import MilterTransaction
from pymta.smtpd.modes import RBL, REPLY_UNIMPLEMENTED

__all__ = ["MilterCommands"]

log = Logger()

Then = Callable[[], "defer.Deferred[Any] | None"]


class MilterCommands:
    """The hooks; see the module's description."""

    # provided by SMTPServerProtocol
    ctx: SMTPDContext
    controls: Controls
    transport: Any
    remote_ip: str
    local_ip: str
    env: dict[str, str]
    tls: bool
    helo: str | None
    relayclient: str | None
    databytes: int
    auth_user: str | None
    _sasl_mechanism: str
    sender: str | None
    recipients: list[str]
    params: TransactionParameters
    _steps: Transaction
    _junk: JunkCounter
    _mode: str
    _rbl_reply: str
    _deadline: LineDeadline
    reply: Callable[[str], None]
    _close_with: Callable[[str], None]
    _start_data: Callable[[str], None]  # DATA once the filters let it go on
    _reset_transaction: Callable[[], None]

    #: the session's filters (None: no filters)
    _milter: MilterStages | None = None
    #: the message whose end-of-data verdict (and commit) is pending, while filters are on
    _filtered_message: Any = None

    def _filtered(self, ask: Callable[[MilterStages], "defer.Deferred[str | None]"], then: Then,
                  refused: Callable[[], None] | None = None) -> "defer.Deferred[Any] | None":
        """C{then()} when the filters let the command go on; else their reply (and C{refused()})."""
        stages = self._milter
        if stages is None:
            return then()

        def decided(reply: str | None) -> "defer.Deferred[Any] | None":
            if reply is None:
                return then()
            if refused is not None:
                refused()
            if reply.startswith("421"):  # as smtpd's own 421s: the last reply of the session
                log.info("milter: {ip}: session closed: {reply}", ip=self.remote_ip, reply=reply)
                self._close_with(reply)
            else:
                self.reply(reply)
            return None

        return ask(stages).addCallback(decided)

    def _refuse_message(self, reply: str) -> None:
        """The reply to a message not queued; a 421 (a filter's, at the end of DATA) ends the session, as at every stage."""
        if reply.startswith("421"):
            log.info("milter: {ip}: session closed: {reply}", ip=self.remote_ip, reply=reply.replace("\r\n", " / "))
            self._close_with(reply)
        else:
            self.reply(reply)

    # -- connect -----------------------------------------------------------

    def _greet_after_filters(self, greet: Callable[[], None]) -> "defer.Deferred[None] | None":
        """Greet once the filters have accepted the connection (at once without filters)."""
        factory = self.ctx.milters
        session = factory() if factory is not None else None
        if session is None:
            greet()
            return None
        port = getattr(self.transport.getPeer(), "port", 0)
        client = ClientFacts(self.controls.me or self.local_ip, self.remote_ip, int(port or 0),
                             self.env.get("TCPREMOTEHOST"), self.local_ip)
        stages = self._milter = MilterStages(session, client, self.controls.locals)

        def decided(verdict: Any) -> None:
            if stages.closed:
                return
            refusal = greeting_refusal(verdict)
            if refusal is None:
                greet()
            elif refusal.startswith("421"):
                log.info("milter: {ip}: connection refused for now: {reply}", ip=self.remote_ip, reply=refusal)
                self._close_with(refusal)
            else:
                log.info("milter: {ip}: connection refused: {reply}", ip=self.remote_ip, reply=refusal)
                self.reply(refusal)
                self._mode, self._rbl_reply = RBL, refusal
                self._deadline.seconds = self.ctx.rbl_session_seconds
                self._deadline.restart()

        return stages.connect().addCallback(decided)

    # -- HELO, MAIL, RCPT, DATA ---------------------------------------------

    def _helo_after_filters(self, name: str, then: Callable[[], None]) -> "defer.Deferred[Any] | None":
        def go_on() -> None:
            then()

        tls = tls_facts(self.transport) if self.tls else None
        # refused: the transaction is forgotten all the same (the filters have forgotten it)
        return self._filtered(lambda stages: stages.helo(name, tls), go_on, self._reset_transaction)

    def _mail_after_filters(self, parameters: Sequence[str]) -> "defer.Deferred[Any] | None":
        """The sender passed smtpd's checks: the filters, then the end-of-data steps' MAIL stage."""
        if self._milter is None:
            self._steps = self.ctx.end_of_data.start(session_facts(self))
            return self._steps.at_mail(self)
        sender, recipients, stages = self.sender or "", self.recipients, self._milter

        def go_on() -> "defer.Deferred[Any] | None":
            step = MilterTransaction(stages, sender, recipients, self.databytes)
            self._steps = self.ctx.end_of_data.start(session_facts(self), step)
            return self._steps.at_mail(self)

        def forget() -> None:
            self.sender = None

        return self._filtered(
            lambda stages: stages.mail(sender, parameters, self._sasl_mechanism or None, self.auth_user),
            go_on, forget)

    def _recipient_passed(self, recipient: str, reply: str, parameters: Sequence[str]) -> "defer.Deferred[Any] | None":
        """The recipient passed smtpd's checks: the filters may still refuse it (that one only)."""

        def go_on() -> None:
            self.recipients.append(recipient)
            self._junk.recipient_accepted()
            self.reply(reply)

        if self._milter is None:
            go_on()
            return None
        return self._filtered(lambda stages: stages.rcpt(recipient, parameters), go_on)

    def smtp_data(self, arg: str) -> "defer.Deferred[Any] | None":
        stages = self._milter
        if stages is None or self.sender is None or not self.recipients:
            self._start_data(arg)
            return None

        def go_on() -> None:
            stages.data_sent = True
            self._start_data(arg)

        return self._filtered(lambda stages: stages.data(), go_on)

    def _unknown_after_filters(self, command: str) -> "defer.Deferred[Any] | None":
        """A command smtpd does not know: the filters may answer it with their refusal, else smtpd's C{502}."""

        def unimplemented() -> None:
            self.reply(REPLY_UNIMPLEMENTED)

        return self._filtered(lambda stages: stages.unknown(command), unimplemented)

    # -- the transaction forgotten, the session ended -------------------------

    def _filters_reset(self) -> None:
        if self._milter is not None:
            self._milter.reset()

    def _filters_watch(self, writer: Any, finished: "defer.Deferred[Any]") -> None:
        """
        With filters, C{writer}'s finish() is pending until C{finished}
        fires: a client that leaves meanwhile has its message dropped
        (L{_filters_closed}).
        """
        if self._milter is None or finished.called:
            return
        self._filtered_message = writer

        def settled(result: object) -> object:
            if self._filtered_message is writer:
                self._filtered_message = None
            return result

        finished.addBoth(settled)

    def _filters_closed(self) -> None:
        """
        The session ended: a message still waiting on the filters' verdict
        is dropped first (no 250 was given, so nothing acknowledged is lost;
        the filters, closed next, could no longer answer, and their default
        action must not queue it unscanned); a commit already under way is
        left to finish (the spool's abort no longer touches it).
        """
        message, self._filtered_message = self._filtered_message, None
        if message is not None:
            message.abort()
        if self._milter is not None:
            self._milter.close()

