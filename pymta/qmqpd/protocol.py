# -*- test-case-name: tests.qmqpd.test_protocol -*-
"""
One QMQP connection (qmail-qmqpd): one message in, one reply out, then
the server closes.

The client sends one netstring holding the message's netstring, the
sender's and one netstring per recipient::

    netstring( netstring(message) netstring(sender) netstring(rcpt)... )

The message is taken as it is (its lines end in LF, as a null client's
queue would store them), below a C{Received:} line with the word C{QMQP}.
The answer is one netstring: C{Kok <time> qp <qp>} once the queue has made
the message durable, or the queue's C{Z} (try again later) or C{D}
(refused for good) text; then the connection is closed.

This is L{pymta.qmtpd.protocol.QMTPServerProtocol} with QMQP's framing and
envelope: the connection limits, the wait for the client's name when a
rule needs it, databytes (control/databytes, or a rule's C{DATABYTES}),
the spool (L{pymta.qmtpd.incoming}), the commit, the idle timeout, the
deadline of a message as a whole (here the packet: L{pymta.messagedeadline})
and flow control are QMTP's.  What differs: clients are let in by ROOT/etc/tcp.qmqp
(L{pymta.qmqpd.access}: no file, nobody), every admitted client is
trusted (no rcpthosts or badmailfrom, L{pymta.qmqpd.envelope}; smtpd's
end-of-data steps for trusted sessions, i.e. DKIM signing, run for every
message), and the envelope after the message is at most
L{MAX_ENVELOPE} bytes.  Anything that is not QMQP closes the connection
without a reply, as qmail-qmqpd does; the message is dropped.
"""

from __future__ import annotations

from twisted.logger import Logger

from pymta.qmqpd.access import QMQPRules
from pymta.qmqpd.envelope import decide
from pymta.qmtpd.envelope import EnvelopeDecision
from pymta.qmtpd.protocol import (
    MAX_RECIPIENT_LIST,
    MAX_SENDER,
    TEXT_DATABYTES,
    QMTPServerProtocol,
    _CLOSED,
    _COMMITTING,
)
from pymta.queue.framing import FramingError, netstring, split_netstrings
from pymta.smtpd.access import AccessRules
from pymta.smtpd.context import SMTPDContext
from pymta.smtpd.endofdata import SessionFacts

__all__ = ["QMQPServerProtocol", "MAX_ENVELOPE"]

log = Logger(namespace="pymta.qmqpd")

#: the longest envelope (sender and recipients' netstrings) after the message
MAX_ENVELOPE = MAX_SENDER + MAX_RECIPIENT_LIST

# states of the connection besides QMTP's _COMMITTING and _CLOSED
_PACKET, _LENGTH, _BODY, _COMMA, _ENVELOPE = range(10, 15)


class QMQPServerProtocol(QMTPServerProtocol):
    """One QMQP session; see the module's description.  Built by L{pymta.qmqpd.service.QMQPFactory}."""

    name = "qmqpd"
    rules_name = "tcp.qmqp"
    received_protocol = "QMQP"
    deadline_unit = "packet"

    def __init__(self, context: SMTPDContext, rules: QMQPRules) -> None:
        super().__init__(context)
        self._qmqp_rules = rules
        self._state = _PACKET
        self._packet_left = 0  # bytes of the outer netstring not yet taken

    def access_rules(self) -> AccessRules:
        return self._qmqp_rules.current()

    def _step(self) -> bool:
        """Advance by one piece of input; False when more input is needed."""
        parser = self._parser
        if self._state == _PACKET:
            length = parser.next_length()
            if length is None:
                return False
            self._packet_left, self._state = length, _LENGTH
        elif self._state == _LENGTH:
            length = parser.next_length()
            if length is None:
                return False
            self._packet_left -= len(b"%d:" % length) + length + 1
            if self._packet_left < 0:
                raise FramingError("message longer than the packet")
            if self._packet_left > MAX_ENVELOPE:
                raise FramingError(f"envelope of {self._packet_left} bytes exceeds {MAX_ENVELOPE}")
            self._remaining = length
            self._start_message(crlf=False)
            self._state = _BODY if length else _COMMA
        elif self._state == _BODY:
            if not self._stream_body():
                return False
            if not self._remaining:
                self._state = _COMMA
        elif self._state == _COMMA:
            if not parser.take_comma():
                return False
            self._state = _ENVELOPE
        elif self._state == _ENVELOPE:
            if parser.pending() < self._packet_left + 1:
                return False
            envelope = parser.take(self._packet_left)
            if not parser.take_comma():
                raise FramingError("packet does not end with a comma")
            parts = split_netstrings(envelope)
            if not parts:
                raise FramingError("no sender")
            self._end_envelope(parts[0], parts[1:])
        return True

    def _end_envelope(self, sender: bytes, recipients: list[bytes]) -> None:
        message, self._message = self._message, None
        assert message is not None
        self._message_whole()
        decision = decide(sender, recipients)
        refusal = decision.refusal
        if refusal is None and message.too_big:
            refusal = TEXT_DATABYTES
        if refusal is not None:
            message.writer.abort()
            log.info("qmqpd: {ip}: message refused: {reply}", ip=self.remote_ip, reply=refusal)
            self._reply(refusal)
            return
        # every QMQP client is trusted: the steps of a relay client's session (DKIM signing)
        facts = SessionFacts(self.remote_ip, None, decision.sender, relay_client=True)
        self._state = _COMMITTING
        self.setTimeout(None)  # the server's own work does not count against the client
        d = message.commit(decision, self.ctx.end_of_data.start(facts))
        d.addCallbacks(self._queued, self._refused).addCallback(self._committed, decision)

    def _committed(self, result: str, decision: EnvelopeDecision) -> None:
        if self._state != _CLOSED:
            self._reply(result)

    def _reply(self, reply: str) -> None:
        """The one reply; then the server closes, as qmail-qmqpd exits."""
        self._state = _CLOSED
        self.setTimeout(None)
        self._message_whole()
        self.transport.write(netstring(reply.encode("utf-8", "replace")))
        self.transport.loseConnection()
