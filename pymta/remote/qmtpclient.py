# -*- test-case-name: tests.remote.test_qmtpclient -*-
"""
pymta's QMTP client: one connection, one message (qmail-remote's QMTP).

L{QMTPClientProtocol} sends the stored message (LF line ends, as QMTP
carries them) in a netstring that starts with C{LF}, streamed from its
file, then the sender and the recipients in netstrings, and reads one
reply netstring per recipient, in the order they were sent: C{K}
(accepted), C{Z} (try again later) or C{D} (refused for good) and the
server's text.  It reports one L{QMTPOutcome} per recipient with the
status letter and a text in qmail-remote's wording (C{ADDR accepted
message.} / C{ADDR failed after I sent the message.} and C{Remote host
said: ...}); the recipients a connection ends without answering are
deferred (C{Possible duplicate!} once the whole message went out).

C{timeout} (control/timeoutremote) bounds every wait for the server; a
reply over L{MAX_REPLY} bytes or one that is not a netstring drops the
connection (a deferral).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO, Any, Callable, Sequence

from twisted.internet import interfaces
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.protocols.basic import FileSender
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from pymta.interfaces import DEFERRAL, FAILURE, SUCCESS
from pymta.queue.envelope import address_bytes
from pymta.queue.framing import FramingError, NetstringParser, netstring
from pymta.remote.reply import Reply, said

__all__ = ["QMTPClientProtocol", "QMTPOutcome", "MAX_REPLY"]

#: the longest reply netstring read
MAX_REPLY = 64 * 1024

_STATUS = {b"K": SUCCESS, b"Z": DEFERRAL, b"D": FAILURE}


@dataclass(frozen=True)
class QMTPOutcome:
    """One recipient's status letter (K, Z or D) and the report text (ends with LF)."""

    status: str
    text: str


class QMTPClientProtocol(Protocol, TimeoutMixin):
    """
    One QMTP client connection.

    @param address: the server's IP address as text (used in report texts).
    @param sender: envelope sender (C{""} for bounces).
    @param recipients: envelope recipients, each answered by its own reply.
    @param message: the stored message, opened for binary reading; sent from its position.
    @param timeout: seconds to wait for any progress (timeoutremote).
    @param callLater: the scheduler for the timeout (a Clock in tests).
    """

    transport: interfaces.ITCPTransport  # the methods below run once connected

    def __init__(
        self,
        address: str,
        sender: str,
        recipients: Sequence[str],
        message: IO[bytes],
        timeout: float,
        callLater: Callable[..., Any] | None = None,
    ) -> None:
        self.address = address
        self.sender = sender
        self.recipients = list(recipients)
        self.message = message
        self.timeout = timeout
        if callLater is not None:
            self.callLater = callLater  # type: ignore[method-assign]  # TimeoutMixin's scheduler, a Clock in tests
        self.finished: Deferred[list[QMTPOutcome]] = Deferred()  # one per recipient, in order
        self._parser = NetstringParser(MAX_REPLY)
        self._sent = False
        self._outcomes: list[QMTPOutcome] = []
        self._done = False
        self._problem = ""
        self._left = 0  # message bytes still to send

    def connectionMade(self) -> None:
        self.setTimeout(self.timeout)
        try:  # from where the file stands: a held Maildir message starts after its envelope lines
            size = os.fstat(self.message.fileno()).st_size - self.message.tell()
        except (OSError, ValueError):
            self._end_all(DEFERRAL, "Unable to read message. (#4.3.0)\n")
            return
        self.transport.write(b"%d:\n" % (size + 1))
        self._left = size
        d = FileSender().beginFileTransfer(self.message, self.transport, self._counted)
        d.addCallbacks(self._message_sent, self._unreadable)

    def _counted(self, chunk: bytes) -> bytes:
        """FileSender's transform: keeps the timeout running while the server reads and stops at the size announced."""
        self.resetTimeout()
        chunk = chunk[: self._left]
        self._left -= len(chunk)
        return chunk

    def _message_sent(self, _: object) -> None:
        if self._done or not self.connected:
            return
        if self._left:
            self._end_all(DEFERRAL, "Unable to read message. (#4.3.0)\n")  # shorter than fstat said
            return
        envelope = b"".join(netstring(address_bytes(r)) for r in self.recipients)
        self.transport.write(b"," + netstring(address_bytes(self.sender)) + netstring(envelope))
        self._sent = True

    def _unreadable(self, failure: Failure) -> None:
        if not self._done and failure.check(OSError):
            self._end_all(DEFERRAL, "Unable to read message. (#4.3.0)\n")
        # otherwise the connection went away and connectionLost reports it

    def dataReceived(self, data: bytes) -> None:
        if self._done:
            return
        self.resetTimeout()
        self._parser.feed(data)
        while len(self._outcomes) < len(self.recipients):
            try:
                payload = self._parser.next()
            except FramingError as e:
                self._problem = f"bad reply: {e}"
                self.transport.abortConnection()
                return
            if payload is None:
                return
            self._outcomes.append(self._outcome(payload))
        self._done = True
        self.setTimeout(None)
        self.transport.loseConnection()

    def _outcome(self, payload: bytes) -> QMTPOutcome:
        """One recipient's outcome from its reply."""
        status = _STATUS.get(payload[:1], DEFERRAL)
        text = said(Reply(0, (payload[1:] if payload[:1] in _STATUS else payload,)))
        if status == SUCCESS:
            return QMTPOutcome(status, f"{self.address} accepted message.\n{text}")
        return QMTPOutcome(status, f"{self.address} failed after I sent the message.\n{text}")

    def timeoutConnection(self) -> None:
        self._problem = "timeout"
        self.transport.abortConnection()

    def _end_all(self, status: str, text: str) -> None:
        """Every recipient not yet answered gets C{status} and C{text}; the connection is closed."""
        self._outcomes += [QMTPOutcome(status, text)] * (len(self.recipients) - len(self._outcomes))
        self._done = True
        self.setTimeout(None)
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.setTimeout(None)
        if len(self._outcomes) < len(self.recipients):
            duplicate = "Possible duplicate! " if self._sent else ""
            why = f" ({self._problem})" if self._problem not in ("", "timeout") else ""
            died = QMTPOutcome(DEFERRAL, f"Connected to {self.address} but connection died{why}. {duplicate}(#4.4.2)\n")
            self._outcomes += [died] * (len(self.recipients) - len(self._outcomes))
        self._done = True
        if not self.finished.called:
            self.finished.callback(self._outcomes)
