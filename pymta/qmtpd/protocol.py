# -*- test-case-name: tests.qmtpd.test_protocol -*-
"""
One QMTP connection (qmail-qmtpd): messages in netstrings, one reply
netstring per recipient, several messages per connection.

Per message the client sends three netstrings: the message (its first
byte C{LF}: the lines end in LF; C{CR}: they end in CRLF, turned into LF
here), the sender, and a netstring holding one netstring per recipient.
Each recipient is answered, in the order the client gave them: C{K}
(queued: C{Kok <time> qp <qp>}), C{Z} (try again later) or C{D} (refused
for good), followed by the reason.  The message is queued once, for the
recipients the envelope rules accept (L{pymta.qmtpd.envelope}; none: no
queue write), and the answers go out together once the queue has made it
durable: C{K} to each accepted recipient, or the queue's C{Z}/C{D}.

What is taken from smtpd (L{pymta.smtpd.context.SMTPDContext}, shared with
the SMTP listeners): tcp.smtp's rule for the client (C{deny} closes the
connection; C{RELAYCLIENT}, C{DATABYTES}), the connection limits, the
queue sink, control/databytes, the envelope rules (L{pymta.qmtpd.envelope})
and the C{Received:} line, with the word C{QMTP}.  The message streams
into a spool (L{pymta.qmtpd.incoming}) while it arrives, since its
envelope comes after it; once the envelope is judged, the spool goes into
the queue, through smtpd's end-of-data steps (DKIM signing) for a
C{RELAYCLIENT} client.

Bounds: the sender netstring is at most L{MAX_SENDER} bytes, the
recipients' at most L{MAX_RECIPIENT_LIST}; a message over databytes is read
and dropped (C{D}), and with databytes 0 (no limit) a message is bounded by
L{UNLIMITED_DATABYTES} all the same, since it is spooled before its
envelope is checked; input waiting before the client is admitted (the
reverse lookup of C{=host} rules) or while a message is committed is at
most L{PIPELINE_BUFFER} before reading pauses; every wait for the client is
bounded by control/timeoutsmtpd, and each message as a whole by a deadline
(L{pymta.messagedeadline}: control/timeoutsmtpd, and control/mindatarate
for a large one, from when the server waits for it), so a client that
trickles its bytes does not hold a connection slot for ever.  Anything that is not QMTP (a bad
netstring, a first byte other than LF or CR, an empty message) closes the
connection without a reply, as qmail-qmtpd does; the message is dropped.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from pymta.cli.initcontrols import MESSAGE_SIZE_LIMIT
from pymta.clientaddress import normalise_ip
from pymta.connectionlimit import counted_address
from pymta.interfaces import QueueReceipt, QueueRefused
from pymta.messagedeadline import MessageDeadline
from pymta.qmtpd.envelope import EnvelopeDecision, decide
from pymta.qmtpd.incoming import IncomingMessage
from pymta.queue.framing import FramingError, NetstringParser, netstring, split_netstrings
from pymta.smtpd import policy
from pymta.smtpd.access import AccessRules
from pymta.smtpd.admission import admission
from pymta.smtpd.context import SMTPDContext
from pymta.smtpd.endofdata import NO_STEPS, SessionFacts
from pymta.smtpd.received import received_line
from pymta.smtpd.remotehost import can_look_up, remote_host_name
from pymta.streamtransport import ISocketStreamTransport

__all__ = ["QMTPServerProtocol", "MAX_SENDER", "MAX_RECIPIENT_LIST", "PIPELINE_BUFFER", "CHUNK", "UNLIMITED_DATABYTES"]

log = Logger(namespace="pymta.qmtpd")

#: the longest sender netstring read (an address has at most 900 bytes)
MAX_SENDER = 1024
#: the longest recipient-list netstring read (1000 recipients of 900 bytes, framed)
MAX_RECIPIENT_LIST = 1000 * 910
#: bytes waiting before admission or while a message is committed before reading pauses
PIPELINE_BUFFER = 256 * 1024
#: message bytes taken from the input at once
CHUNK = 64 * 1024
#: any length a netstring's ten digits can say: databytes bounds what is kept
_MAX_MESSAGE = 10**10
#: the bound of a message when databytes is 0 (no limit): the databytes pymta init writes into a new root
UNLIMITED_DATABYTES = MESSAGE_SIZE_LIMIT

TEXT_DATABYTES = "D" + policy.REPLY_DATABYTES[4:]

# states of the connection
_LENGTH, _FIRST, _BODY, _COMMA, _SENDER, _RECIPIENTS, _COMMITTING, _CLOSED = range(8)


class QMTPServerProtocol(Protocol, TimeoutMixin):
    """One QMTP session; see the module's description.  Built by L{pymta.qmtpd.service.QMTPFactory}."""

    transport: ISocketStreamTransport  # every method but __init__ runs once connected
    #: the name in log lines and the rules file named there (L{pymta.qmqpd.protocol} has its own)
    name = "qmtpd"
    rules_name = "tcp.smtp"
    #: the protocol the Received line names
    received_protocol = "QMTP"
    #: what the deadline bounds, as the log line says
    deadline_unit = "message"

    def __init__(self, context: SMTPDContext) -> None:
        self.ctx = context
        self.clock = context.clock
        self.controls = context.reader.current
        self.timeout = max(1, self.controls.timeoutsmtpd)
        self._parser = NetstringParser(_MAX_MESSAGE)
        self._state = _LENGTH
        self._admitted = False
        self._counted = False
        self._paused = False
        self._lookup: defer.Deferred | None = None
        self._remaining = 0
        self._message: IncomingMessage | None = None
        self._sender = b""
        self.remote_ip = "unknown"
        self.local_ip = "unknown"
        self.env: dict[str, str] = {}
        self.relayclient: str | None = None
        self.databytes = 0
        self.rules: AccessRules = context.rules
        self._deadline: MessageDeadline | None = None

    def access_rules(self) -> AccessRules:
        """The rules clients are admitted by, read once per connection: tcp.smtp's."""
        return self.ctx.rules

    def callLater(self, period: float, func: Any) -> Any:  # TimeoutMixin's scheduler: the context's clock
        return self.clock.callLater(period, func)

    # -- connection ------------------------------------------------------

    def connectionMade(self) -> None:
        self.remote_ip = normalise_ip(getattr(self.transport.getPeer(), "host", None) or "unknown")
        self.local_ip = normalise_ip(getattr(self.transport.getHost(), "host", None) or "unknown")
        refusal = self.ctx.limiter.acquire(
            counted_address(self.transport, self.remote_ip), self.controls.concurrencyincoming, self.ctx.per_ip_limit(self.controls)
        )
        if refusal is not None:
            log.info("{name}: {ip}: too many connections ({limit})", name=self.name, ip=self.remote_ip, limit=refusal)
            self._close()
            return
        self._counted = True
        self.setTimeout(self.timeout)
        self.rules = self.access_rules()
        if self.rules.uses_host_names and can_look_up(self.ctx.resolver) and self.remote_ip != "unknown":
            self._lookup = remote_host_name(self.ctx.resolver, self.remote_ip, self.ctx.reverse_lookup_seconds,
                                            self.clock)
            self._lookup.addCallback(self._admit)
            return
        self._admit(None)

    def _admit(self, remote_host: str | None) -> None:
        self._lookup = None
        if self._state == _CLOSED:
            return
        rule = self.rules.lookup(self.remote_ip, host=remote_host)
        if not rule.allow:
            log.info("{name}: deny {ip} ({rules} line {line})", name=self.name, ip=self.remote_ip,
                     rules=self.rules_name, line=rule.lineno)
            self._close()
            return
        admitted = admission(self.controls, rule, self.remote_ip, self.local_ip, remote_host)
        self.env, self.relayclient = dict(admitted.env), admitted.relayclient
        self.databytes = admitted.databytes or UNLIMITED_DATABYTES  # spooled before the envelope is judged
        log.info("{name}: ok {ip} -> {local}", name=self.name, ip=self.remote_ip, local=self.local_ip)
        self._admitted = True
        self._wait_for_message()
        self._process()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.setTimeout(None)
        self._message_whole()
        committing = self._state == _COMMITTING
        self._state = _CLOSED
        if self._counted:
            self._counted = False
            self.ctx.limiter.release(counted_address(self.transport, self.remote_ip))
        if self._lookup is not None:
            self._lookup.cancel()
        # a commit in flight is left to finish (the message is then queued, as with any lost reply)
        if self._message is not None and not committing:
            self._message.writer.abort()
        self._message = None

    def timeoutConnection(self) -> None:
        log.info("{name}: {ip}: timeout", name=self.name, ip=self.remote_ip)
        self._drop_message()
        self._close()

    def _close(self) -> None:
        self._state = _CLOSED
        self.setTimeout(None)
        self._message_whole()
        self.transport.abortConnection()

    # -- each message's deadline -------------------------------------------

    def _wait_for_message(self) -> None:
        """The server waits for the next message: its deadline starts (the bytes already here count)."""
        self._deadline = MessageDeadline(self.clock, self.timeout, self.controls.mindatarate, self._message_late)
        self._deadline.received(self._parser.pending())
        self._deadline.start()

    def _message_whole(self) -> None:
        """The message has come whole (or the connection is gone): no deadline until the server waits again."""
        if self._deadline is not None:
            self._deadline.stop()
            self._deadline = None

    def _message_late(self) -> None:
        log.info("{name}: {ip}: timeout ({unit} not complete within its deadline)", name=self.name,
                 ip=self.remote_ip, unit=self.deadline_unit)
        self._drop_message()
        self._close()

    def _protocol_error(self, why: str) -> None:
        log.info("{name}: {ip}: not {proto}, closing: {why}", name=self.name, ip=self.remote_ip,
                 proto=self.name[:4].upper(), why=why)
        self._drop_message()
        self._close()

    def _drop_message(self) -> None:
        message, self._message = self._message, None
        if message is not None:
            message.writer.abort()

    # -- input -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._state == _CLOSED:
            return
        self.resetTimeout()
        if self._deadline is not None:
            self._deadline.received(len(data))
        self._parser.feed(data)
        self._process()

    def _process(self) -> None:
        try:
            while self._admitted and self._state not in (_COMMITTING, _CLOSED) and self._step():
                pass
        except FramingError as e:
            self._protocol_error(str(e))
        self._flow_control()

    def _flow_control(self) -> None:
        held = not self._admitted or self._state == _COMMITTING
        waiting = held and self._parser.pending() > PIPELINE_BUFFER
        if waiting != self._paused and self._state != _CLOSED:
            self._paused = waiting
            (self.transport.pauseProducing if waiting else self.transport.resumeProducing)()

    def _step(self) -> bool:
        """Advance by one piece of input; False when more input is needed."""
        parser = self._parser
        if self._state == _LENGTH:
            length = parser.next_length()
            if length is None:
                return False
            if length == 0:
                raise FramingError("empty message")
            self._remaining, self._state = length, _FIRST
        elif self._state == _FIRST:
            first = parser.take(1)
            if not first:
                return False
            if first not in (b"\n", b"\r"):
                raise FramingError(f"message starts with {first!r}, not LF or CR")
            self._remaining -= 1
            self._start_message(crlf=first == b"\r")
            self._state = _BODY if self._remaining else _COMMA
        elif self._state == _BODY:
            if not self._stream_body():
                return False
            if not self._remaining:
                self._state = _COMMA
        elif self._state == _COMMA:
            if not parser.take_comma():
                return False
            parser.max_length, self._state = MAX_SENDER, _SENDER
        elif self._state == _SENDER:
            sender = parser.next()
            if sender is None:
                return False
            self._sender = sender
            parser.max_length, self._state = MAX_RECIPIENT_LIST, _RECIPIENTS
        elif self._state == _RECIPIENTS:
            payload = parser.next()
            if payload is None:
                return False
            recipients = split_netstrings(payload)
            parser.max_length = _MAX_MESSAGE
            self._end_message(recipients)
        return True

    # -- one message -------------------------------------------------------

    def _start_message(self, crlf: bool) -> None:
        message = self._message = IncomingMessage(self.ctx.sink_for(self.env).open_message, self.databytes, crlf)
        message.writer.write(
            received_line(
                remote_host=self.env.get("TCPREMOTEHOST", "unknown"),
                remote_ip=self.remote_ip,
                local_host=self.controls.me or self.local_ip,
                helo=None,
                when=self.clock.seconds(),
                protocol=self.received_protocol,
            )
        )

    def _stream_body(self) -> bool:
        """Move up to a chunk of the message's remaining bytes into the spool; False when none has arrived."""
        chunk = self._parser.take(min(self._remaining, CHUNK))
        if not chunk:
            return False
        self._remaining -= len(chunk)
        assert self._message is not None
        self._message.write(chunk, last=not self._remaining)
        return True

    def _end_message(self, recipients: list[bytes]) -> None:
        message, self._message = self._message, None
        assert message is not None
        self._message_whole()
        decision = decide(self.controls, self._sender, recipients, relayclient=self.relayclient,
                          local_ips=self.ctx.local_ips | {self.local_ip})
        refusal = decision.refusal
        if refusal is None and message.too_big:
            refusal = TEXT_DATABYTES
        if refusal is not None or not decision.recipients:
            message.writer.abort()
            replies = decision.replies(refusal or "")  # without an accepted recipient, every reply is a refusal
            log.info("qmtpd: {ip}: message refused: {reply}", ip=self.remote_ip,
                     reply=replies[0] if replies else "no recipients")
            self._answer(replies)
            self._state = _LENGTH
            self._wait_for_message()
            return
        facts = SessionFacts(self.remote_ip, None, decision.sender, relay_client=True)
        transaction = self.ctx.end_of_data.start(facts) if self.relayclient is not None else NO_STEPS
        self._state = _COMMITTING
        self.setTimeout(None)  # the server's own work does not count against the client
        d = message.commit(decision, transaction)
        d.addCallbacks(self._queued, self._refused).addCallback(self._committed, decision)

    def _queued(self, receipt: QueueReceipt) -> str:
        log.info("{name}: {ip}: message {id} queued, qp {qp}", name=self.name, ip=self.remote_ip,
                 id=receipt.message_id, qp=receipt.qp)
        return f"Kok {int(self.clock.seconds())} qp {receipt.qp}"

    def _refused(self, failure: Failure) -> str:
        error = failure.value
        if isinstance(error, QueueRefused):
            return ("D" if error.permanent else "Z") + error.text
        log.failure("{name}: queue failure", failure, name=self.name)
        return "Zqq temporary problem (#4.3.0)"

    def _committed(self, result: str, decision: EnvelopeDecision) -> None:
        if self._state == _CLOSED:
            return
        self._answer(decision.replies(result))
        self._state = _LENGTH
        self.setTimeout(self.timeout)
        self._wait_for_message()
        self._process()

    def _answer(self, replies: list[str]) -> None:
        """One reply netstring per recipient, in order, written at once."""
        self.transport.write(b"".join(netstring(reply.encode("utf-8", "replace")) for reply in replies))
