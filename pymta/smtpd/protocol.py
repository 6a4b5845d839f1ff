# -*- test-case-name: tests.smtpd.test_protocol -*-
"""
The ESMTP server protocol: qmail-smtpd's dialogue with ESMTP, STARTTLS and
AUTH added, written on C{Protocol} with its own input buffer.

Why not C{twisted.mail.smtp.ESMTP}: it runs pipelined lines while a check's
Deferred is pending, executes plaintext sent after STARTTLS inside TLS,
offers AUTH in plaintext, buffers endless lines, turns a 451 at the end of
data into 550 and advertises no PIPELINING/SIZE/8BITMIME.  Here:

- One command at a time.  A command may return a Deferred; until it fires
  further input stays in the buffer (the transport is paused when more
  than C{pipeline_buffer} bytes wait), so replies always come in order;
  L{SMTPServerProtocol.when_idle} fires once no command waits.
- Command lines end at LF (one CR before it removed); lines longer than
  C{max_command_line} get C{500} and are skipped without being buffered.
- DATA goes through L{DataStream}: only CRLF.CRLF ends it, a bare LF gets
  qmail's 451 and the connection is closed, the message is streamed into the
  queue as it arrives and acknowledged only when the sink says it is durable.
  Checks of the whole message run in the end-of-data stage (L{pymta.smtpd.endofdata}).
- STARTTLS throws away everything the client sent after the command and
  forgets HELO, sender, recipients and AUTH (RFC 3207 4.2).
- AUTH only on submission listeners and only inside TLS unless the operator
  allows plaintext; L{pymta.smtpd.authcheck} decides each exchange through
  the daemon's login limiter (budgets, growing delays, a bound on checks
  running at once); the session ends after C{max_auth_failures}.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.interfaces import IHandshakeListener, ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from pymta.clientaddress import normalise_ip
from pymta.connectionlimit import counted_address
from pymta.connectionclose import ConnectionCloser
from pymta.interfaces import MessageWriter
from pymta.levellogger import Logger
from pymta.linedeadline import DATA_RATE, Hold, LineDeadline
from pymta.smtpd import policy
from pymta.smtpd.admission import admission
from pymta.smtpd.auth import SASLExchange
from pymta.smtpd.authcommands import AuthCommands
from pymta.smtpd.context import LIMIT_REPLIES, ListenerSettings, SMTPDContext
from pymta.smtpd.data import BARE_LF, END, LINE_TOO_LONG, DataStream
from pymta.smtpd.dnsbl import reply_from_variable
from pymta.smtpd.endofdata import NO_STEPS, refusal_reply
from pymta.smtpd.idlecommands import IdleCommands
from pymta.smtpd.idlesignal import IdleSignal
from pymta.smtpd.greetcommands import GreetCommands
from pymta.smtpd.junk import JunkCounter
from pymta.smtpd.mailparams import TransactionParameters
from pymta.smtpd.miltercommands import MilterCommands
from pymta.smtpd.modes import AUTH, CLOSED, COMMAND, DATA, RBL, REPLY_UNIMPLEMENTED, SKIP_LINE
from pymta.smtpd.received import received_line
from pymta.smtpd.remotehost import can_look_up, remote_host_name
from pymta.smtpd.replywriter import ReplyWriter, reply_writer
from pymta.smtpd.tlscommands import TLSCommands
from pymta.streamtransport import IStreamTransport

__all__ = ["SMTPServerProtocol"]

log = Logger()

REPLY_BARE_LF = "451 See https://cr.yp.to/docs/smtplf.html."
REPLY_TIMEOUT = "451 timeout (#4.4.2)"
RBL_HOST = "rblsmtpd.local"


@implementer(IHandshakeListener)
class SMTPServerProtocol(Protocol, MilterCommands, AuthCommands, GreetCommands, IdleCommands, TLSCommands):
    """One SMTP session.  Built by L{pymta.smtpd.factory.SMTPFactory}."""
    transport: IStreamTransport  # every method but __init__ runs once connected
    _replies: ReplyWriter  # set in connectionMade

    def __init__(self, context: SMTPDContext, settings: ListenerSettings) -> None:
        self.ctx = context
        self.settings = settings
        self.clock = context.clock
        self.controls = context.reader.current
        self._buf = b""
        self._mode = COMMAND
        self._after_skip = COMMAND
        self._busy: Hold | None = None  # a command's Deferred is pending
        self._processing = False
        self._paused = False
        self._queue_full: Hold | None = None  # the queue writer's buffer is over its bound
        self._deadline = LineDeadline(self.clock, max(1, self.controls.timeoutsmtpd), self._timed_out)
        self._closer = ConnectionCloser(self.clock, idle=self._deadline.seconds)  # closes for good, TLS handshake or not
        self._junk = JunkCounter(context.junk_command_limit, context.max_recipients)
        self._counted = False
        self._pending: defer.Deferred | None = None
        self._cancel_on_close = False
        self._idle = IdleSignal()
        self.remote_ip = "unknown"
        self.local_ip = "unknown"
        self.env: dict[str, str] = {}
        self.relayclient: str | None = None
        self.databytes = 0
        self.tls = False
        self.helo: str | None = None
        self.esmtp = False
        self.auth_user: str | None = None
        self.auth_failures = 0
        self._sasl: SASLExchange | None = None
        self._sasl_mechanism = ""
        self.sender: str | None = None
        self.bad_sender = False
        self.recipients: list[str] = []
        self.params = TransactionParameters()  # MAIL's and RCPT's ESMTP parameters (SIZE, DSN)
        self._writer: MessageWriter | None = None
        self._steps = NO_STEPS  # the end-of-data steps of the transaction
        self._stream: DataStream | None = None
        self._rbl_reply = ""

    # -- connection ------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        host = self.transport.getHost()
        self.remote_ip = normalise_ip(getattr(peer, "host", None) or "unknown")
        self.local_ip = normalise_ip(getattr(host, "host", None) or "unknown")
        self.tls = self.settings.implicit_tls or ISSLTransport.providedBy(self.transport)
        self._replies = reply_writer(self.transport, self.tls)
        if self.tls:
            self._closer.tls_started()
        # counted at accept, before any lookup: parallel connects cannot pass the limits
        refusal = self.ctx.limiter.acquire(
            counted_address(self.transport, self.remote_ip), self.controls.concurrencyincoming, self.ctx.per_ip_limit(self.controls)
        )
        if refusal is not None:
            log.info("smtpd: {ip}: {reply}", ip=self.remote_ip, reply=LIMIT_REPLIES[refusal])
            return self._close_with(LIMIT_REPLIES[refusal])
        self._counted = True
        rules = self.ctx.rules
        resolver = self.ctx.resolver
        if rules.uses_host_names and can_look_up(resolver) and self.remote_ip != "unknown":
            d = remote_host_name(resolver, self.remote_ip, self.ctx.reverse_lookup_seconds, self.clock)
            self._run_pending(d.addCallback(self._admit), cancel_on_close=True)
            return
        pending = self._admit(None)
        if pending is not None:
            self._run_pending(pending, cancel_on_close=True)

    def _admit(self, remote_host: str | None) -> defer.Deferred | None:
        """
        Apply the access rule and the connection limits, then greet - or
        return the DNSBL decision's Deferred that greets when it fires.
        """
        if self._mode == CLOSED:
            return None
        rule = self.ctx.rules.lookup(self.remote_ip, host=remote_host)
        if not rule.allow:
            log.info("smtpd: deny {ip} (tcp.smtp line {line})", ip=self.remote_ip, line=rule.lineno)
            self._release_slot()
            self._mode = CLOSED
            self._closer.close(self.transport)
            return None
        admitted = admission(self.controls, rule, self.remote_ip, self.local_ip, remote_host)
        self.env, self.relayclient, self.databytes = dict(admitted.env), admitted.relayclient, admitted.databytes
        log.info("smtpd: ok {ip} -> {local}", ip=self.remote_ip, local=self.local_ip)
        self._deadline.restart()
        variable = self.env.get("RBLSMTPD")
        if self.ctx.dnsbl is not None or variable is not None:
            if self.ctx.dnsbl is None:
                d: defer.Deferred = defer.succeed(reply_from_variable(variable or ""))
            else:
                d = self.ctx.dnsbl.check(self.remote_ip, variable)
            return d.addCallback(self._rbl_decided)
        return self._greet()

    def _greet(self) -> defer.Deferred | None:
        return self._greet_after_filters(lambda: self.reply(f"220 {self.controls.smtpgreeting} ESMTP"))

    def _rbl_decided(self, reply: str | None) -> defer.Deferred | None:
        if self._mode == CLOSED:
            return None
        if reply is None:
            return self._greet()
        log.info("rblsmtpd: {ip} pid {pid}: {reply}", ip=self.remote_ip, pid=os.getpid(), reply=reply)
        self._mode = RBL
        self._rbl_reply = reply
        self._deadline.seconds = self.ctx.rbl_session_seconds  # one period for the whole session
        self._deadline.restart()
        self.reply(f"220 {RBL_HOST}")
        return None

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._mode, self._buf = CLOSED, b""
        self._closer.lost()
        self._deadline.stop()
        self._release_slot()
        self._filters_closed()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.abort()
        # Only a DNSBL lookup is cancelled; a queue commit in flight is left
        # to finish (the message is then queued, as with any lost 250).
        if self._pending is not None and self._cancel_on_close and not self._pending.called:
            self._pending.cancel()

    def _release_slot(self) -> None:
        if self._counted:
            self._counted = False
            self.ctx.limiter.release(counted_address(self.transport, self.remote_ip))

    def reply(self, line: str) -> None:
        """Send one reply line (or several joined by CRLF)."""
        if self._mode == CLOSED and self.transport.disconnecting:
            return
        self.ctx.replied(line)
        self._replies.write(line.encode("utf-8", "replace") + b"\r\n")

    def _close_with(self, line: str, complete: bool = False) -> None:
        self.reply(line)
        self._mode, self._buf = CLOSED, b""
        if complete:  # QUIT: the session is over, the socket only drains; its slot is free now
            self._release_slot()
        # imposed: abort after the grace; complete (QUIT's 221): the reply drains while it moves
        (self._closer.finish if complete else self._closer.close)(self.transport)

    # -- deadline (pymta.linedeadline: per line, held while the server works) --

    def _timed_out(self, reason: str) -> None:
        if self._mode == CLOSED:
            return
        if self._mode == RBL:
            self._mode = CLOSED
            self._closer.close(self.transport)
            return
        rate = " (DATA below mindatarate)" if reason == DATA_RATE else ""
        log.info("smtpd: {ip}: timeout{rate}", ip=self.remote_ip, rate=rate)
        self._close_with(REPLY_TIMEOUT)

    # -- input -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._mode == CLOSED:
            return
        self._buf += data
        self._closer.received()  # decrypted bytes: a TLS handshake is over, even behind haproxy:ssl:
        if not self._rbl_reply:  # rblsmtpd's fake server ends after a fixed time, however busy the client
            self._deadline.received(data)
        self._process()

    def _run_pending(self, d: defer.Deferred, cancel_on_close: bool = False) -> None:
        """Hold further input until C{d} fires."""
        self._busy = self._deadline.hold()  # the server's own work does not count against the client
        self._pending = d
        self._cancel_on_close = cancel_on_close

        def done(result: object) -> None:
            self._pending = None
            busy, self._busy = self._busy, None
            if busy is not None:
                busy.release()
            if isinstance(result, Failure) and not result.check(defer.CancelledError):
                log.failure("smtpd: unexpected error", result)
                if self._mode != CLOSED:
                    self._close_with("421 internal error, closing (#4.3.0)")
            elif not self._processing and self._mode != CLOSED:
                self._process()  # works through the buffer (and fires the idle signal itself)
            if not self._processing and self._pending is None:
                self._idle.fire()

        d.addBoth(done)

    def _process(self) -> None:
        if self._processing:
            return
        self._processing = True
        try:
            while self._busy is None and self._buf and self._mode != CLOSED:
                if self._mode == DATA:
                    self._process_data()
                    if self._mode == DATA:
                        break
                    continue
                if self._mode == SKIP_LINE:
                    nl = self._buf.find(b"\n")
                    if nl == -1:
                        self._buf = b""
                        break
                    self._buf = self._buf[nl + 1 :]
                    self._mode = self._after_skip
                    continue
                nl = self._buf.find(b"\n")
                if nl == -1:
                    if len(self._buf) > self.ctx.max_command_line:
                        self._buf = b""
                        self._line_too_long()
                    break
                line, self._buf = self._buf[:nl], self._buf[nl + 1 :]
                if len(line) > self.ctx.max_command_line:
                    self._long_line_seen()
                    continue
                if line.endswith(b"\r"):
                    line = line[:-1]
                result = self._line(line)
                if isinstance(result, defer.Deferred):
                    self._run_pending(result)
        finally:
            self._processing = False
        self._flow_control()
        if self._pending is None:
            self._idle.fire()

    def when_idle(self) -> "defer.Deferred[None]":
        """Fires once no command waits (for the queue, a check) and the buffered input is worked through."""
        return self._idle.wait(self._pending is None and not self._processing)

    def _flow_control(self) -> None:
        waiting = (self._busy is not None and len(self._buf) > self.ctx.pipeline_buffer) or self._queue_full is not None
        if waiting and not self._paused and self._mode != CLOSED:
            self._paused = True
            self.transport.pauseProducing()
        elif self._paused and not waiting:
            self._paused = False
            if self._mode != CLOSED:
                self.transport.resumeProducing()

    def _line_too_long(self) -> None:
        """A line over the limit without its end yet: answer now, skip the rest of it."""
        self._long_line_seen()
        if self._mode != CLOSED:
            self._after_skip, self._mode = (RBL if self._mode == RBL else COMMAND), SKIP_LINE

    def _long_line_seen(self) -> None:
        if self._mode != RBL and self._too_much_junk():
            return
        self.reply("500 line too long (#5.5.2)")
        if self._mode == AUTH:
            self._sasl = None
            self._mode = COMMAND

    def _line(self, line: bytes) -> defer.Deferred | None:
        if self._mode == AUTH:
            return self._auth_line(line)
        if self._mode != RBL and self._too_much_junk():
            return None
        if b"\0" in line:
            self.reply("501 NUL character in command (#5.5.2)")
            return None
        verb, _, arg = line.partition(b" ")
        try:
            verb_text = verb.decode("ascii").lower()
            arg_text = arg.lstrip(b" ").decode("utf-8")
        except UnicodeDecodeError:
            self.reply("501 command is not valid UTF-8 (#5.5.2)")
            return None
        if self._mode == RBL:
            self._rbl_command(verb_text)
            return None
        handler: Callable[[str], defer.Deferred | None] | None = (
            getattr(self, "smtp_" + verb_text, None) if verb_text.isalpha() else None
        )
        if handler is None:
            return self._unknown_after_filters(line.decode("utf-8"))
        return handler(arg_text)

    def _rbl_command(self, verb: str) -> None:
        if verb == "quit":
            self._close_with(f"221 {RBL_HOST}", complete=True)
        elif verb in ("helo", "ehlo", "mail", "rset", "noop"):
            self.reply(f"250 {RBL_HOST}")
        else:
            self.reply(self._rbl_reply)

    # -- transaction state -------------------------------------------------

    def _reset_transaction(self) -> None:
        self.sender = None
        self.bad_sender = False
        self.recipients = []
        self.params = TransactionParameters()
        self._filters_reset()

    # -- commands ----------------------------------------------------------

    def smtp_mail(self, arg: str) -> defer.Deferred | None:
        if self.settings.submission and self.auth_user is None and self.relayclient is None:
            self.reply("530 authentication required (#5.7.0)")
            return None
        parsed = policy.parse_path(arg)
        if len(parsed.address.encode("utf-8")) > policy.MAX_ADDRESS_BYTES or policy.has_control_character(parsed.address):
            self.reply(policy.REPLY_SYNTAX)
            return None
        params = TransactionParameters.at_mail(parsed.parameters, self.databytes)
        if isinstance(params, str):
            self.reply(params)
            return None
        self._reset_transaction()
        self.sender, self.params = parsed.address, params
        self.bad_sender = policy.is_bad_mailfrom(self.controls, parsed.address)
        self._junk.progress()
        return self._mail_after_filters(parsed.parameters)

    def smtp_rcpt(self, arg: str) -> defer.Deferred | None:
        if self.sender is None:
            self.reply("503 MAIL first (#5.5.1)")
            return None
        parsed = policy.parse_path(arg)
        address = policy.replace_local_ip(self.controls, parsed.address, self.ctx.local_ips | {self.local_ip})
        if len(address.encode("utf-8")) > policy.MAX_ADDRESS_BYTES or policy.has_control_character(address):
            self.reply(policy.REPLY_SYNTAX)
            return None
        if self.bad_sender:
            self.reply(policy.REPLY_BADMAILFROM)
            return None
        if len(self.recipients) >= self.ctx.max_recipients:
            self.reply("452 too many recipients (#4.5.3)")
            return None
        refusal = self.params.at_rcpt(parsed.parameters, address, len(self.recipients))
        if refusal is not None:
            self.reply(refusal)
            return None
        decision = policy.rcpt_decision(
            self.controls, address, relayclient=self.relayclient, authenticated=self.auth_user is not None
        )
        if decision.recipient is None:
            self.reply(decision.reply)
            return None
        recipient = decision.recipient
        if self.ctx.recipient_check is None:
            return self._recipient_passed(recipient, decision.reply, parsed.parameters)
        d = defer.maybeDeferred(self.ctx.recipient_check, self.controls, recipient)

        def checked(known: bool) -> defer.Deferred | None:
            if known:
                return self._recipient_passed(recipient, "250 ok", parsed.parameters)
            self.reply("550 sorry, no mailbox here by that name (#5.1.1)")
            return None

        def trouble(failure: Failure) -> None:
            if failure.check(defer.CancelledError):
                return
            log.failure("smtpd: recipient check failed", failure)
            self.reply("451 temporary failure checking the recipient (#4.3.0)")

        return d.addCallbacks(checked, trouble)

    def _start_data(self, arg: str) -> None:
        if self.sender is None:
            self.reply("503 MAIL first (#5.5.1)")
            return
        if not self.recipients:
            self.reply("503 RCPT first (#5.5.1)")
            return
        try:
            writer = self._steps.open_message(self.ctx.sink_for(self.env), self.sender, list(self.recipients), self.params)
        except Exception:
            log.failure("smtpd: cannot open a queue message")
            self.reply("451 qqt failure (#4.3.0)")
            return
        self._writer = writer
        writer.watch_backlog(lambda: self._queue_backlog(writer, True), lambda: self._queue_backlog(writer, False))
        self._stream = DataStream(writer.write, self.databytes, self.ctx.max_data_line)
        try:
            writer.write(
                received_line(
                    remote_host=self.env.get("TCPREMOTEHOST", "unknown"),
                    remote_ip=self.remote_ip,
                    local_host=self.controls.me or self.local_ip,
                    helo=self.helo,
                    esmtp=self.esmtp,
                    tls=self.tls,
                    auth_user=self.auth_user,
                    when=self.clock.seconds(),
                )
            )
        except Exception:
            log.failure("smtpd: queue write failed")
            self._writer = None
            writer.abort()
            self.reply("451 qqt failure (#4.3.0)")
            return
        self._mode = DATA
        self._deadline.start_data(self.controls.mindatarate)
        self._junk.progress()
        self.reply("354 go ahead")

    def _process_data(self) -> None:
        stream = self._stream
        assert stream is not None
        try:
            consumed, outcome = stream.feed(self._buf)
        except Exception:
            log.failure("smtpd: queue write failed during DATA")
            self._abort_message()
            self._close_with("451 qq write error or disk full (#4.3.0)")
            return
        self._buf = self._buf[consumed:]
        if outcome is None:
            return
        if outcome == BARE_LF:
            self._abort_message()
            self._close_with(REPLY_BARE_LF)
            return
        if outcome == LINE_TOO_LONG:
            self._abort_message()
            self._close_with("554 line too long, closing (#5.5.2)")
            return
        assert outcome == END
        self._mode = COMMAND
        self._deadline.end_data()
        d = self._finish_message()
        if d is not None:
            self._run_pending(d)

    def _queue_backlog(self, writer: Any, full: bool) -> None:
        """The queue writer's buffer went over its bound (C{full}) or drained: stop or go on reading."""
        if full and writer is not self._writer:
            return
        if full and self._queue_full is None:
            self._queue_full = self._deadline.hold()
        elif not full and self._queue_full is not None:
            hold, self._queue_full = self._queue_full, None
            hold.release()
        if not self._processing:
            self._flow_control()

    def _abort_message(self) -> None:
        writer, self._writer, self._stream = self._writer, None, None
        self._reset_transaction()
        if writer is not None:
            writer.abort()

    def _finish_message(self) -> defer.Deferred | None:
        stream, writer = self._stream, self._writer
        assert stream is not None and writer is not None
        self._stream = None
        self._reset_transaction()
        if stream.too_many_hops:
            self._writer = None
            writer.abort()
            self.reply("554 too many hops, this message is looping (#5.4.6)")
            return None
        if stream.too_big:
            self._writer = None
            writer.abort()
            self.reply(policy.REPLY_DATABYTES)
            return None
        try:
            d = defer.maybeDeferred(writer.finish)
        finally:
            self._writer = None
        self._filters_watch(writer, d)

        def queued(receipt: Any) -> None:
            log.info("smtpd: {ip}: message {id} queued, qp {qp}", ip=self.remote_ip, id=receipt.message_id, qp=receipt.qp)
            self._junk.message_accepted()
            self.reply(f"250 ok {int(self.clock.seconds())} qp {receipt.qp}")

        def refused(failure: Failure) -> None:
            if not failure.check(defer.CancelledError):
                self._refuse_message(refusal_reply(failure))

        return d.addCallbacks(queued, refused)

    def smtp_quit(self, arg: str) -> None:
        self._close_with(f"221 {self.controls.smtpgreeting}", complete=True)
